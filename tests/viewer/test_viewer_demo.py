"""What --demo finds (no Qt): the recipe read as `lsms segment --demo` reads it, and honest fallbacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsms_core.data.demo import DEMO_EXPRESSION
from lsms_core.volume import Volume, save_volume
from lsms_viewer.demo import PHANTOM_EXPRESSION, find_demo


@pytest.fixture
def resources(tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    save_volume(Volume(np.zeros((4, 8, 8), np.int16), (1, 1, 2), (0, 0, 0)), demo / "ct.nii.gz")
    return tmp_path


def test_the_recipe_gives_the_words_slice_window_and_reference(resources):
    save_volume(Volume(np.zeros((4, 8, 8), np.uint8), (1, 1, 2), (0, 0, 0)), resources / "demo" / "lesion.nii.gz")
    (resources / "demo" / "demo.json").write_text(json.dumps({
        "ct": "ct.nii.gz", "expression": " the cyst near the dome ", "lesion_mask": "lesion.nii.gz", "slice": 2,
        "window": [350, 50]}))
    demo = find_demo(resources)
    assert demo.ct_path == resources / "demo" / "ct.nii.gz" and demo.expression == "the cyst near the dome"
    assert (demo.slice_index, demo.window) == (2, (350.0, 50.0))
    assert demo.reference_mask == resources / "demo" / "lesion.nii.gz" and demo.case_notes == []


def test_a_slice_or_window_of_the_wrong_type_is_left_to_the_view(resources):
    (resources / "demo" / "demo.json").write_text(json.dumps({"expression": "the lesion", "slice": "4",
                                                              "window": [1]}))
    demo = find_demo(resources)
    assert demo.expression == "the lesion" and demo.slice_index is None and demo.window is None


@pytest.mark.parametrize("text", ["{not json", "[]", json.dumps({"ct": "ct.nii.gz"}), json.dumps({"expression": " "})])
def test_an_unreadable_recipe_shows_the_demo_ct_with_its_own_words(resources, text):
    (resources / "demo" / "demo.json").write_text(text)
    demo = find_demo(resources)
    assert demo.ct_path == resources / "demo" / "ct.nii.gz"
    assert demo.expression == DEMO_EXPRESSION
    assert "demo.json" in demo.case_notes[0]


def test_without_a_recipe_the_demo_ct_keeps_its_own_words(resources):
    demo = find_demo(resources)
    assert demo.expression == DEMO_EXPRESSION and "demo.json is missing" in demo.case_notes[0]


def test_a_recipe_naming_a_missing_ct_falls_back_to_the_phantom(resources):
    (resources / "demo" / "demo.json").write_text(json.dumps({"ct": "other.nii.gz", "expression": "the lesion"}))
    demo = find_demo(resources)
    assert demo.ct_path is None and demo.expression == PHANTOM_EXPRESSION
    assert "not installed" in demo.case_notes[0] and "other.nii.gz" in demo.case_notes[0]

"""The editing tools' shared state: which slices were drawn by hand, and the key slices of interpolation."""

from __future__ import annotations

import numpy as np
from viewer_helpers import phantom_volume

from lsms_viewer.editing import paint_stroke
from lsms_viewer.state.document import Document
from lsms_viewer.state.edit_context import EditContext
from lsms_viewer.state.history import UndoHistory


def _draw(context: EditContext, label, z: int, point=(30, 30), radius=3.0) -> None:
    context.apply(label, paint_stroke(label.mask, z, [point], radius, context.spacing_yx()))


def _context(document: Document) -> EditContext:
    return EditContext(document, UndoHistory(document))


def test_interpolation_keys_are_the_last_two_slices_drawn_at_least_one_apart(document):
    context = _context(document)
    label = document.add_label(np.zeros(document.volume.shape, bool))
    for z in (2, 8, 9):
        _draw(context, label, z)
    assert context.edited_slices[label.id] == [2, 8, 9]
    assert context.interpolation_keys(label, 5) == (2, 9)  # 8 is next to 9: no slice between them
    _draw(context, label, 2)  # drawn again: the most recent
    assert context.interpolation_keys(label, 5) == (2, 9)
    label.mask[9] = False  # a key slice emptied afterwards no longer counts
    assert context.interpolation_keys(label, 5) == (2, 8)


def test_without_two_drawn_slices_the_keys_are_the_gap_around_the_shown_slice(document):
    context = _context(document)
    mask = np.zeros(document.volume.shape, bool)
    mask[[1, 4, 10], 20:30, 20:30] = True
    label = document.add_label(mask)
    assert context.interpolation_keys(label, 6) == (4, 10)
    assert context.interpolation_keys(label, 2) == (1, 4)
    assert context.interpolation_keys(label, 11) is None  # nothing above the last slice
    assert context.interpolation_keys(label, 4) == (1, 10)  # on a filled slice: the slices around it


def test_slices_drawn_on_another_study_are_forgotten(document):
    # Bug: the drawn slices outlived the study and label ids restart at 1, so interpolating after opening
    # a shorter study indexed slice 10 of a 6-slice label (IndexError).
    context = _context(document)
    label = document.add_label(np.zeros(document.volume.shape, bool))
    _draw(context, label, 10)
    document.set_volume(phantom_volume(shape=(6, 64, 80), seed=3))
    again = document.add_label(np.zeros(document.volume.shape, bool))
    assert again.id == label.id
    _draw(context, again, 2)
    assert context.edited_slices == {again.id: [2]}
    assert context.interpolation_keys(again, 0) is None


def test_a_deleted_label_takes_its_drawn_slices_with_it(document):
    context = _context(document)
    label = document.add_label(np.zeros(document.volume.shape, bool))
    _draw(context, label, 3)
    document.remove_label(label.id)
    assert context.edited_slices == {}

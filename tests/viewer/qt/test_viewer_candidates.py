"""The Candidates panel: every lesion the network saw in a run, the one the words chose, the others on the
image, and taking another one as one undo step (demo weights on the demo case, in a real window)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from lsms_core.resources import resources_dir
from lsms_viewer.app import build_viewer
from lsms_viewer.inference import EngineHost

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_case():
    from lsms_core.volume import load_volume

    folder = resources_dir() / "demo"
    recipe = json.loads((folder / "demo.json").read_text())
    return load_volume(folder / recipe["ct"]), recipe


def _run(viewer, qtbot, words: str) -> None:
    bar = viewer.window.expression_bar
    with qtbot.waitSignal(viewer.segmentation.done, timeout=120000) as blocker:
        bar.set_scope("slice")
        bar.edit.setText(words)
        QTest.keyClick(bar.edit, Qt.Key.Key_Return)
    assert blocker.args[0] == "finished"


@pytest.fixture
def demo_viewer(qtbot, demo_case):
    volume, recipe = demo_case
    viewer = build_viewer(engine=EngineHost("demo", device="cpu", threads=1, refine="off"))
    qtbot.addWidget(viewer.window)
    viewer.window.resize(1200, 800)
    viewer.window.show()
    viewer.opening.set_volume(volume)
    viewer.window.slice_view.set_slice(recipe["slice"])
    return viewer


def test_a_run_lists_its_candidates_and_marks_the_chosen_one(demo_viewer, qtbot, demo_case):
    viewer = demo_viewer
    _, recipe = demo_case
    _run(viewer, qtbot, recipe["expression"])
    ctl = viewer.candidates
    result = ctl.result
    assert result is not None and len(result.candidates) >= 2 and result.chosen is not None
    table = ctl.panel.table
    assert table.rowCount() == len(result.candidates)
    marks = [table.item(r, 0).text() for r in range(table.rowCount())]
    assert f"{result.chosen} ✓" in marks
    assert ctl.panel.status.text().startswith(("<b>Chosen", "<b>Ambiguous"))
    # Every candidate crossing the shown slice is outlined and numbered on the image.
    k = viewer.window.current_slice() - result.request.start
    on_slice = sorted(c.number for c in result.candidates if c.on_slice(k).any())
    assert sorted(ctl.outlines.drawn_numbers) == on_slice and result.chosen in on_slice
    # The label holds the chosen candidate; the run says what made it.
    label = viewer.document.labels[0]
    chosen = next(c for c in result.candidates if c.number == result.chosen)
    assert np.array_equal(label.mask[recipe["slice"]] & ~chosen.on_slice(k), np.zeros_like(chosen.on_slice(k)))
    assert label.run.stages == ["lsms", "liver zoom", "candidates"]


def test_taking_another_candidate_is_one_undo_step(demo_viewer, qtbot, demo_case):
    viewer = demo_viewer
    _, recipe = demo_case
    _run(viewer, qtbot, recipe["expression"])
    ctl = viewer.candidates
    result = ctl.result
    label = viewer.document.labels[0]
    before = label.mask.copy()
    other = next(c for c in result.candidates if c.number != result.chosen)
    window_before = viewer.window.slice_view.window
    ctl.panel.table.setFocus()
    QTest.keyClick(ctl.panel.table, str(other.number))  # its number key takes it (not a window preset)
    qtbot.waitUntil(lambda: not np.array_equal(label.mask, before), timeout=60000)
    ctl.wait()
    assert viewer.window.slice_view.window == window_before
    k = result.request.start
    assert np.array_equal(label.mask[k], other.full_mask[0])
    assert "taken by hand" in label.run.notes[0] and str(other.number) in label.run.notes[0]
    assert label.run.stages == result.stages  # found the same way as the words' choice
    assert ctl.panel.table.item([c.number for c in result.candidates].index(other.number), 0).text().endswith("✓")
    assert f"candidate #{other.number}" in viewer.history.undo_text
    viewer.history.undo()  # one step back: the words' choice, with its own run info
    assert np.array_equal(label.mask, before)
    assert not any("taken by hand" in n for n in label.run.notes)


def test_refine_is_a_remembered_tools_switch(demo_viewer, qtbot):
    viewer = demo_viewer
    action = viewer.segmentation.refine_action
    assert not action.isChecked()  # the engine handed over says off
    action.trigger()
    assert viewer.segmentation.engine.refine == "auto"
    again = build_viewer()
    qtbot.addWidget(again.window)
    assert again.segmentation.refine_action.isChecked()
    again.segmentation.refine_action.trigger()
    third = build_viewer()
    qtbot.addWidget(third.window)
    assert not third.segmentation.refine_action.isChecked()


def test_with_refine_on_the_refiner_redraws_the_chosen_candidate(qtbot, demo_case):
    from lsms_viewer.inference import refiner_installed

    if not refiner_installed():
        pytest.skip("the LiteMedSAM refiner's weights are not installed")
    volume, recipe = demo_case
    viewer = build_viewer(engine=EngineHost("demo", device="cpu", threads=2, refine="auto"))
    qtbot.addWidget(viewer.window)
    viewer.window.show()
    viewer.opening.set_volume(volume)
    viewer.window.slice_view.set_slice(recipe["slice"])
    _run(viewer, qtbot, recipe["expression"])
    result = viewer.candidates.result
    label = viewer.document.labels[0]
    assert result.stages == ["lsms", "liver zoom", "candidates", "medsam-lite"] and label.run.stages == result.stages
    k = recipe["slice"]
    assert not np.array_equal(label.mask[k], result.raw_mask[k])  # redrawn, not the network's region
    assert np.array_equal(label.mask, result.mask)
    assert "outlined by medsam-lite" in viewer.window.expression_bar.message.text()

"""A real model run in the main window is one undo step, keeps its mask for provenance, and is autosaved."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_viewer.app import build_viewer
from lsms_viewer.state.session import read_session

pytestmark = pytest.mark.slow

WORDS = "the low-density nodule in the right lobe"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A real Segmenter on a random checkpoint (64 px input), thresholded at its median probability."""
    from lsms_core.checkpoint import create_random_checkpoint
    from lsms_viewer.demo import synthetic_abdomen
    from lsms_viewer.inference import EngineHost

    folder = create_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random", input_size=64, seed=0)
    host = EngineHost(folder, device="cpu", threads=1)
    volume, _ = synthetic_abdomen(shape=(2, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    host.threshold = float(np.median(host.get().predict(volume.array[0], WORDS).probs))
    return host


def test_model_run_and_rerun_are_single_undo_steps(qtbot, engine, tmp_path, monkeypatch):
    from lsms_viewer.demo import synthetic_abdomen

    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    viewer = build_viewer(engine=engine)
    win = viewer.window
    qtbot.addWidget(win)
    win.show()
    editing = viewer.editing
    volume, _ = synthetic_abdomen(shape=(6, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    viewer.opening.set_volume(volume)
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000) as done:
        assert viewer.segmentation.segment(WORDS, "slice")
    assert done.args[0] == "finished"
    label = win.document.labels[0]
    first = label.mask.copy()
    assert first.any()
    assert editing.undo_action.text() == f"&Undo model run “{WORDS}”"
    assert np.array_equal(label.run.mask.unpack(), first)  # the model's own mask, kept for provenance
    saved = read_session(viewer.autosaver.last_path)
    assert np.array_equal(saved.labels[0].mask, first)

    # Re-run with other words on the same label: replaced mask, new words and new name in one step.
    win.expression_bar.set_rerun(label.id, label.name, label.expression)
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000):
        assert viewer.segmentation.segment("the larger hypodense lesion", "range")
    second = label.mask.copy()
    assert label.expression == "the larger hypodense lesion"
    assert editing.history.undo_text == "model run “the larger hypodense lesion”"
    editing.undo()
    assert np.array_equal(label.mask, first) and label.expression == WORDS and label.name.startswith("the low")
    editing.undo()
    assert win.document.labels == []
    editing.redo()
    editing.redo()
    restored = win.document.labels[0]
    assert np.array_equal(restored.mask, second) and restored.expression == "the larger hypodense lesion"


def test_a_run_ending_during_a_brush_stroke_waits_for_the_stroke_and_stays_its_own_undo_step(
        qtbot, engine, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from qt_helpers import widget_point

    from lsms_viewer.demo import synthetic_abdomen

    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    viewer = build_viewer(engine=engine)
    win = viewer.window
    qtbot.addWidget(win)
    win.resize(900, 700)
    win.show()
    editing = viewer.editing
    volume, _ = synthetic_abdomen(shape=(6, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    viewer.opening.set_volume(volume)
    editing.set_tool("brush")
    canvas = win.slice_view.canvas.viewport()
    none = Qt.KeyboardModifier.NoModifier
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, none, widget_point(win, 40, 40))
    QTest.mouseMove(canvas, widget_point(win, 44, 46))
    assert editing.history.in_batch
    stroke_label = win.document.active_label
    assert stroke_label is not None and stroke_label.mask.any()

    assert viewer.segmentation.segment(WORDS, "slice")
    run = viewer.segmentation.current_run
    qtbot.waitUntil(lambda: not run.thread.isRunning(), timeout=60000)
    qtbot.wait(100)  # the result and the thread's end reached the window while the button is still down
    assert [label.id for label in win.document.labels] == [stroke_label.id] and viewer.segmentation.is_segmenting()

    with qtbot.waitSignal(viewer.segmentation.done, timeout=10000) as done:
        QTest.mouseMove(canvas, widget_point(win, 48, 50))
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, none, widget_point(win, 48, 50))
    assert done.args[0] == "finished" and len(win.document.labels) == 2 and not viewer.segmentation.is_segmenting()
    stroke_mask = stroke_label.mask.copy()
    assert editing.history.undo_text == f"model run “{WORDS}”"
    editing.undo()  # the run alone
    assert [label.id for label in win.document.labels] == [stroke_label.id]
    assert np.array_equal(win.document.label(stroke_label.id).mask, stroke_mask)
    editing.undo()  # then the whole stroke
    assert win.document.labels == []


def test_the_model_mask_is_kept_once_not_copied_into_each_step_and_save(qtbot, engine, tmp_path, monkeypatch):
    # Bug: the model's mask sat in label.meta as base64 text (tens of KB), deep-copied into the undo
    # history twice per form commit and written into session.json by every autosave.
    import json
    import zipfile

    from lsms_viewer.demo import synthetic_abdomen

    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    viewer = build_viewer(engine=engine)
    qtbot.addWidget(viewer.window)
    volume, _ = synthetic_abdomen(shape=(6, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    viewer.opening.set_volume(volume)
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000):
        assert viewer.segmentation.segment(WORDS, "volume")
    label = viewer.document.labels[0]
    model_mask = label.mask.copy()
    assert "first_model_mask" not in label.meta
    assert np.array_equal(label.run.mask.unpack(), model_mask)  # kept, packed, with the run
    before = viewer.history.nbytes
    for i in range(3):  # three commits of the annotation form
        viewer.document.update_label(label.id, meta={**label.meta, "annotation": {"notes": f"note {i}"}})
    assert viewer.history.nbytes - before < 3 * 1024
    with zipfile.ZipFile(viewer.autosaver.last_path) as zf:
        header = zf.read("session.json")
    assert len(header) < 4096 and b"first_model_mask" not in header
    saved = read_session(viewer.autosaver.last_path)
    assert np.array_equal(saved.labels[0].model_mask.unpack(), model_mask)
    assert json.loads(header)["labels"][0]["meta"]["annotation"] == {"notes": "note 2"}

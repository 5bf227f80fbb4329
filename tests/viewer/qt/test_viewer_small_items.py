"""Issue 15 item 12's smaller ones: 'Cancelled' said once; no stale text under the expression box after an
edit or another study; the image does not jump when the progress row appears; Help lists the editing keys;
export dialogs start in a user folder, never the study's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

WORDS = "the low-density nodule in the right lobe"


def _small_volume():
    from lsms_core.volume import Volume

    return Volume(np.zeros((4, 16, 16), np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))


@pytest.fixture
def seg_viewer(qtbot, engine, study):
    from lsms_viewer.app import build_viewer

    viewer = build_viewer(engine=engine)
    qtbot.addWidget(viewer.window)
    viewer.window.resize(1100, 760)
    viewer.window.show()
    qtbot.waitExposed(viewer.window)
    viewer.opening.set_volume(study[0])
    return viewer


def test_a_cancelled_run_says_cancelled_once_and_the_image_stays_put(seg_viewer, qtbot):
    viewer = seg_viewer
    win = viewer.window
    bar = win.expression_bar
    image_rect = win.slice_view.canvas.geometry()
    heights = []
    with qtbot.waitSignal(viewer.segmentation.started):
        bar.set_scope("volume")
        bar.edit.setText(WORDS)
        bar.run_button.click()
    run = viewer.segmentation.current_run

    def on_progress(done, total):
        heights.append(win.slice_view.canvas.geometry())
        bar.cancel_button.click()

    run.worker.progress.connect(on_progress)
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000):
        pass
    text = bar.message.text()
    assert text.startswith("Cancelled after ") and "cancelled" not in text.lower()[1:], text
    assert heights and all(rect == image_rect for rect in heights)  # no jump when the progress row shows
    assert win.slice_view.canvas.geometry() == image_rect  # nor when it goes
    for scope in ("range", "slice", "volume"):  # nor when the range boxes come and go
        bar.set_scope(scope)
        qtbot.wait(10)
        assert win.slice_view.canvas.geometry() == image_rect, scope


def test_the_line_under_the_box_forgets_the_last_run_after_an_edit_or_another_study(seg_viewer, qtbot, study):
    viewer = seg_viewer
    win = viewer.window
    bar = win.expression_bar
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000):
        bar.edit.setText(WORDS)
        bar.run_button.click()
    assert WORDS in bar.message.text()
    label = viewer.document.labels[0]
    viewer.editing.clear_current_slice()  # an edit: the run's voxel count is no longer the label's
    assert viewer.document.has_label(label.id) and bar.message.text() == ""
    bar.show_message("“x”: 12 voxels")
    viewer.opening.set_volume(study[0].__class__(study[0].array.copy(), study[0].spacing, study[0].origin))
    assert bar.message.text() == ""


def test_help_lists_the_editing_keys(viewer, qtbot):
    win = viewer.window
    rows = dict((what, keys) for keys, what in win.shortcut_rows())
    for what, keys in (("Brush", "B"), ("Eraser", "E"), ("Fill", "F"), ("Keep piece", "K"),
                       ("Remove piece", "Shift+K"), ("New label", "Ctrl+N"), ("Smaller brush", "["),
                       ("Larger brush", "]"), ("Clear slice", "Ctrl+Backspace"),
                       ("Interpolate between edited slices", "Ctrl+Shift+I"), ("Annotation mode", "Ctrl+Shift+A")):
        assert rows.get(what) == keys, (what, rows.get(what))
    viewer.opening.set_volume(_small_volume())
    viewer.editing.new_label()  # the Undo action now names a step: the list still says what the key does
    rows = dict((what, keys) for keys, what in win.shortcut_rows())
    assert rows.get("Undo the last step") == "Ctrl+Z" and rows.get("Redo") == "Ctrl+Shift+Z, Ctrl+Y"
    win.show_shortcuts()  # a window beside the viewer, not a blocking dialog
    qtbot.waitExposed(win.shortcuts_box)
    from PySide6.QtWidgets import QTextBrowser

    shown = win.shortcuts_box.findChild(QTextBrowser).toPlainText()
    assert "Shift+K" in shown and "Remove piece" in shown and "Ctrl+N" in shown
    win.shortcuts_box.close()


def test_export_dialogs_start_in_a_user_folder_not_the_study_s(viewer, volume, tmp_path, monkeypatch):
    from lsms_core.volume.synthetic_dicom import write_ct_series

    write_ct_series(tmp_path / "dicom", slices=3, rows=16, cols=16)
    viewer.opening.open_path(tmp_path / "dicom")
    import time

    from PySide6.QtWidgets import QApplication

    deadline = time.time() + 20
    while viewer.document.volume is None and time.time() < deadline:
        QApplication.processEvents()
    viewer.document.add_label(np.ones(viewer.document.volume.shape, bool), name="all")
    asked = []

    def save_file_name(_parent, _title, start, _filters):
        asked.append(start)
        return "", ""  # the user cancels: only where the dialog started matters here

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_file_name)
    viewer.export.export_dialog()
    start = Path(asked[0])
    assert start.name == "dicom_labels.nii.gz" and tmp_path / "dicom" not in start.parents
    assert start.parent != tmp_path
    out = tmp_path / "exports"
    out.mkdir()
    assert viewer.export.export_labels(out / "mine.nii.gz")
    asked.clear()
    viewer.export.export_dialog()
    assert Path(asked[0]) == out / "dicom_labels.nii.gz"  # the folder the user chose last time

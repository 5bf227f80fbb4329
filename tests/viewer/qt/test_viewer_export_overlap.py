"""A single multi-label file holds one label per voxel: a label lying inside another is never dropped
silently (issue 15 item 1). The export dialog asks which label wins, or offers separate files."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from lsms_core.volume import load_mask, read_label_sidecar
from lsms_viewer.state.export import HiddenLabelsError, export_multilabel


def _nested(viewer, volume):
    """An organ-sized label 1 and, after it, nothing; then a lesion inside it drawn first (label order
    matters): label 1 = lesion (inside), label 2 = the organ around it."""
    viewer.opening.set_volume(volume)
    inner = np.zeros(volume.shape, bool)
    inner[3:6, 20:30, 20:30] = True
    outer = np.zeros(volume.shape, bool)
    outer[2:8, 10:50, 10:60] = True
    doc = viewer.document
    lesion = doc.add_label(inner, name="lesion")
    organ = doc.add_label(outer, name="liver")
    return lesion, organ


def _click_when_shown(qtbot, text: str, seen: list):
    def click():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append((box.text(), [b.text() for b in box.buttons()]))
        for button in box.buttons():
            if button.text() == text:
                button.click()
                return
        box.reject()

    QTimer.singleShot(20, click)


def test_a_label_inside_another_is_refused_not_dropped(viewer, volume, tmp_path):
    lesion, organ = _nested(viewer, volume)
    target = tmp_path / "labels.nii.gz"
    with pytest.raises(HiddenLabelsError, match="“lesion” \\(id 1.*lies entirely under “liver”"):
        export_multilabel(viewer.document, target)
    assert not target.exists()
    # The window's own call says it in a dialog and writes nothing.
    assert not viewer.export.export_labels(target)
    title, message = viewer.window.last_error
    assert title == "Export failed" and "lesion" in message and "one file per label" in message
    assert not target.exists()


def test_the_export_dialog_asks_and_the_smaller_label_wins(viewer, volume, tmp_path, qtbot, monkeypatch):
    lesion, organ = _nested(viewer, volume)
    target = tmp_path / "labels.nii.gz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    seen = []
    _click_when_shown(qtbot, "Smaller label wins", seen)
    viewer.export.export_dialog()
    (text, buttons), = seen
    assert "“lesion” (id 1" in text and "not be in the file at all" in text
    assert "Later label wins" not in buttons  # the choice that hides a label is not offered
    written = load_mask(target, volume)
    assert set(np.unique(written).tolist()) == {0, 1, 2}
    assert np.array_equal(written == 1, lesion.mask)
    infos = {i.id: i for i in read_label_sidecar(target)}
    assert infos[2].extra["voxels_lost_to_overlap"] == int(lesion.mask.sum())
    # What was lost is said in a dialog, not only in the status bar.
    title, message = viewer.window.last_error
    assert "smaller label wins" in message


def test_separate_files_from_the_overlap_dialog(viewer, volume, tmp_path, qtbot, monkeypatch):
    _nested(viewer, volume)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "x.nii.gz"), ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    _click_when_shown(qtbot, "Separate files…", [])
    viewer.export.export_dialog()
    assert not (tmp_path / "x.nii.gz").exists()
    assert sorted(p.name for p in tmp_path.glob("label-*.nii.gz")) == ["label-01-lesion.nii.gz",
                                                                        "label-02-liver.nii.gz"]

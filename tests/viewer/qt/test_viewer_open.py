"""Opening real files in the background: NIfTI from disk, a DICOM folder with two series, recent files,
and a round trip export -> import of labels on a loaded CT's own grid."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_core.volume import Volume, load_volume, save_volume
from lsms_core.volume.synthetic_dicom import write_ct_series
from lsms_viewer import settings as user_settings


def _open(viewer, qtbot, path, **kwargs):
    with qtbot.waitSignal(viewer.opening.volume_opened, timeout=30000):
        assert viewer.opening.open_path(path, **kwargs)
    qtbot.waitUntil(lambda: not viewer.opening.is_loading())


def test_open_nifti_file_shows_it_and_remembers_it(viewer, window, qtbot, tmp_path):
    # A NIfTI stored with flipped rows (anterior at the bottom): the viewer must still show anterior up.
    array = np.arange(4 * 30 * 40, dtype=np.int16).reshape(4, 30, 40)
    stored = Volume(array, (1.0, 1.5, 3.0), (10.0, 20.0, -5.0), np.diag([1.0, -1.0, 1.0]))
    path = save_volume(stored, tmp_path / "ct.nii.gz")
    _open(viewer, qtbot, path)
    shown = window.document.volume
    assert shown.shape == (4, 30, 40)
    assert window.slice_view._letters["top"].text() == "A"
    assert np.array_equal(shown.array[:, ::-1, :], array)  # rows flipped back to radiological order
    assert user_settings.recent_files()[0] == str(path.resolve())
    assert viewer.opening.recent_menu.actions()[0].text() == str(path.resolve())
    assert "ct.nii.gz" in window.windowTitle()


@pytest.mark.slow
def test_folder_with_two_series_asks_which_one(viewer, window, qtbot, tmp_path):
    folder = tmp_path / "study"
    write_ct_series(folder / "a", slices=6, rows=64, cols=64, series_uid="1.2.826.0.1.3680043.8.498.1",
                    description="thin", seed=1)
    write_ct_series(folder / "b", slices=3, rows=64, cols=64, series_uid="1.2.826.0.1.3680043.8.498.2",
                    description="scout", seed=2)
    offered = []

    def choose(choice, parent):
        offered.extend(s.uid for s in choice.series)
        return "1.2.826.0.1.3680043.8.498.2"

    viewer.opening.series_chooser = choose
    with qtbot.waitSignal(viewer.opening.volume_opened, timeout=60000):
        assert viewer.opening.open_path(folder)
    assert offered == ["1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"]  # largest first
    assert window.document.volume.shape == (3, 64, 64)
    qtbot.waitUntil(lambda: not viewer.opening.is_loading())


def test_exported_labels_land_on_the_loaded_ct_grid_and_import_back(viewer, window, qtbot, tmp_path, study):
    # Store the CT in a non-radiological axis order so export has to map back to the file's own grid.
    volume, lesions = study
    stored = Volume(volume.array[:, :, ::-1].copy(), volume.spacing, volume.origin,
                    np.diag([-1.0, 1.0, 1.0]))
    ct_path = save_volume(stored, tmp_path / "ct.nii.gz")
    _open(viewer, qtbot, ct_path)
    loaded = window.document.volume
    mask = lesions["larger lesion"][:, :, ::-1][:, :, ::-1]  # same voxels as the lesion in the loaded layout
    assert np.array_equal(loaded.array, volume.array)
    window.document.add_label(mask, expression="the larger hypodense lesion")
    out = tmp_path / "labels.nii.gz"
    assert viewer.export.export_labels(out)
    # The mask file lies on the CT file's grid: same shape and affine as the CT, and aligned voxels.
    import nibabel as nib

    ct_img, mask_img = nib.load(ct_path), nib.load(out)
    assert mask_img.shape == ct_img.shape
    assert np.allclose(mask_img.affine, ct_img.affine, atol=1e-4)
    on_file_grid = np.asanyarray(mask_img.dataobj).transpose(2, 1, 0) > 0
    assert np.array_equal(on_file_grid, mask[:, :, ::-1])
    reread = load_volume(out)
    assert np.array_equal(reread.array > 0, mask)

    window.document.remove_label(window.document.labels[0].id)
    assert viewer.opening.import_labels(out)
    (label,) = window.document.labels
    assert np.array_equal(label.mask, mask)
    assert label.expression == "the larger hypodense lesion"


def test_import_refuses_a_mask_from_another_grid(viewer, window, tmp_path, study):
    volume, _ = study
    viewer.opening.set_volume(volume)
    other = Volume(np.ones((2, 8, 8), np.uint8), (1, 1, 1), (0, 0, 0))
    path = save_volume(other, tmp_path / "other.nii.gz")
    assert not viewer.opening.import_labels(path)
    assert window.last_error[0] == "Cannot import labels" and "grid" in window.last_error[1]
    assert window.document.labels == []


def test_dropping_a_file_opens_it(viewer, window, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    path = save_volume(Volume(np.zeros((3, 10, 12), np.int16), (1, 1, 1), (0, 0, 0)), tmp_path / "dropped.nii.gz")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()  # the window says it takes files
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(viewer.opening.volume_opened, timeout=30000):
        QApplication.sendEvent(window, drop)
    assert window.document.volume.shape == (3, 10, 12)
    qtbot.waitUntil(lambda: not viewer.opening.is_loading())


def test_a_recent_file_that_disappeared_is_dropped_from_the_list(viewer, window, qtbot, tmp_path):
    path = save_volume(Volume(np.zeros((2, 8, 8), np.int16), (1, 1, 1), (0, 0, 0)), tmp_path / "gone.nii.gz")
    _open(viewer, qtbot, path)
    assert user_settings.recent_files() == [str(path.resolve())]
    path.unlink()
    with qtbot.waitSignal(viewer.opening.open_failed, timeout=20000):
        viewer.opening.recent_menu.actions()[0].trigger()
    assert user_settings.recent_files() == []
    assert not viewer.opening.recent_menu.isEnabled()
    qtbot.waitUntil(lambda: not viewer.opening.is_loading())


def test_real_ct_dicom_shows_hounsfield_units_in_radiological_layout(viewer, window, qtbot):
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm", download=False)
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    _open(viewer, qtbot, path)
    volume = window.document.volume
    # Identity ImageOrientationPatient: rows already run anterior->posterior, columns right->left.
    assert np.array_equal(volume.array[0], hu)
    letters = {k: lab.text() for k, lab in window.slice_view._letters.items()}
    assert letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    info = window.slice_view.cursor_info_at(64.5, 40.5)
    assert info.hu == hu[40, 64]
    expected = np.asarray(ds.ImagePositionPatient, float) + np.array([64, 40, 0]) * [
        float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0]), 0]
    assert np.allclose(info.lps, expected, atol=1e-3)

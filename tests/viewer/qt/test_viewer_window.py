"""The main window on a synthetic study: scrolling, window/level, orientation, cursor read-out, overlay."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from lsms_core.volume import Volume
from lsms_viewer import settings as user_settings
from lsms_viewer.app import build_viewer
from lsms_viewer.display.overlay import EDGE_BIT
from lsms_viewer.display.windowing import Window
from lsms_viewer.main_window import MainWindow, patient_position_text


def _grey(hu: np.ndarray, window: Window) -> np.ndarray:
    """What a window shows, computed independently of the viewer: linear ramp, rounded, clipped."""
    lo, hi = window.levels
    return np.clip((hu.astype(np.float64) - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint8)


def _wheel(widget, notches: int, modifiers=Qt.KeyboardModifier.NoModifier):
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * notches),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget.viewport(), event)


def _screen_point(win: MainWindow, col: float, row: float) -> QPoint:
    """Viewport pixel of voxel (col, row) of the current slice."""
    view = win.slice_view
    sx, sy = win.document.volume.spacing[:2]
    scene = view.view_box.mapViewToScene(QPointF(col * sx, row * sy))
    return view.canvas.mapFromScene(scene)


def test_open_study_shows_middle_slice_and_scrolls(viewer, window, study, qtbot):
    volume, _ = study
    viewer.opening.set_volume(volume)
    view = window.slice_view
    assert view.current_slice == volume.shape[0] // 2
    assert np.array_equal(view.displayed_image(), _grey(volume.array[view.current_slice], view.window))
    start = view.current_slice

    _wheel(view.canvas, -2)  # wheel towards the user = next slices, as in PACS viewers
    assert view.current_slice == start + 2
    assert np.array_equal(view.displayed_image(), _grey(volume.array[start + 2], view.window))
    view.canvas.setFocus()
    QTest.keyClick(view.canvas, Qt.Key.Key_Up)
    assert view.current_slice == start + 1
    QTest.keyClick(view.canvas, Qt.Key.Key_End)
    assert view.current_slice == volume.shape[0] - 1
    QTest.keyClick(view.canvas, Qt.Key.Key_PageUp)
    assert view.current_slice == volume.shape[0] - 2
    view.slider.setValue(3)
    assert view.current_slice == 3
    assert "Slice 4 / 12" in window.slice_label.text()
    assert view.position_label.text().split()[0] == "4"


def test_ctrl_wheel_zooms_and_reset_fits(viewer, window, study):
    volume, _ = study
    viewer.opening.set_volume(volume)
    view = window.slice_view
    before = view.view_box.viewRect()
    _wheel(view.canvas, 2, Qt.KeyboardModifier.ControlModifier)
    zoomed = view.view_box.viewRect()
    assert zoomed.width() < before.width() * 0.9
    assert view.current_slice == volume.shape[0] // 2  # zooming never changes the slice
    window.reset_view_action.trigger()
    assert abs(view.view_box.viewRect().width() - before.width()) < 1e-6 * before.width() + 1e-3


def test_pixels_have_their_physical_shape(viewer, window):
    # 0.5 mm columns, 2 mm rows: one row must be drawn 4 times taller than one column is wide.
    array = np.zeros((3, 20, 80), np.int16)
    viewer.opening.set_volume(Volume(array, (0.5, 2.0, 3.0), (0, 0, 0)))
    a = _screen_point(window, 0, 0)
    b = _screen_point(window, 40, 10)
    assert b.x() - a.x() > 50
    assert abs((b.x() - a.x()) - (b.y() - a.y())) <= 2  # 40 * 0.5 mm == 10 * 2 mm == 20 mm


def test_radiological_orientation_letters(viewer, window, study):
    volume, _ = study
    viewer.opening.set_volume(volume)
    letters = {k: lab.text() for k, lab in window.slice_view._letters.items()}
    # Identity LPS direction: column index runs to the patient's left, row index posterior.
    assert letters == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    # A volume stored with flipped columns is shown with the letters that describe it honestly.
    flipped = Volume(volume.array, volume.spacing, volume.origin, np.diag([-1.0, 1.0, 1.0]))
    viewer.opening.set_volume(flipped)
    assert window.slice_view._letters["left"].text() == "L"


def test_right_drag_changes_window_and_presets_restore_it(viewer, window, study, qtbot):
    volume, _ = study
    viewer.opening.set_volume(volume)
    view = window.slice_view
    assert view.window == Window(400, 40)
    viewport = view.canvas.viewport()
    centre = QPoint(viewport.width() // 2, viewport.height() // 2)
    QTest.mousePress(viewport, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewport, centre + QPoint(60, 30))
    QTest.mouseRelease(viewport, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, centre + QPoint(60, 30))
    assert view.window.width > 400 and view.window.level > 40
    assert np.array_equal(view.displayed_image(), _grey(volume.array[view.current_slice], view.window))

    view.canvas.setFocus()
    QTest.keyClick(view.canvas, Qt.Key.Key_3)  # lung preset shortcut
    assert view.window == Window(1500, -600)
    assert window.preset_actions["lung"].isChecked()
    assert "Lung" in view._corners["bottom_right"].text()


def test_default_preset_persists_between_runs(window, qtbot, isolated_settings):
    window.apply_preset("liver")
    window.save_default_preset()
    assert user_settings.default_preset() == "liver"
    second = build_viewer().window  # the next start
    qtbot.addWidget(second)
    assert second.slice_view.window == Window(150, 90)
    assert list(isolated_settings.rglob("*.ini"))  # really written to disk


def test_status_bar_shows_hu_and_patient_mm_under_the_cursor(viewer, window, study, qtbot):
    volume, _ = study
    viewer.opening.set_volume(volume)
    col, row = 30, 40
    point = _screen_point(window, col + 0.5, row + 0.5)
    QTest.mouseMove(window.slice_view.canvas.viewport(), point)
    k = window.current_slice()
    text = window.cursor_label.text()
    assert f"{volume.array[k, row, col]:.0f} HU" in text
    assert patient_position_text(volume.index_to_world((col, row, k))) in text
    assert f"voxel ({col}, {row}, {k})" in text


def test_patient_position_text_uses_anatomical_letters():
    assert patient_position_text((-12.34, 5.0, -7.0)) == "12.3 R  5.0 P  7.0 I"


def test_overlay_holds_label_and_follows_visibility_and_mode(viewer, window, study):
    volume, lesions = study
    viewer.opening.set_volume(volume)
    mask = lesions["larger lesion"]
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    window.slice_view.set_slice(k)
    label = window.document.add_label(mask, expression="the larger low-density lesion")
    overlay = window.slice_view.overlay_image()
    assert np.array_equal(overlay > 0, mask[k])
    assert np.any(overlay == (label.id | EDGE_BIT)) and np.any(overlay == label.id)
    lut = window.slice_view.overlay_item.lut
    assert lut[label.id, 3] > 0  # filled
    window.overlay_toggle_action.trigger()
    lut = window.slice_view.overlay_item.lut
    assert lut[label.id, 3] == 0 and lut[label.id | EDGE_BIT, 3] > 0  # outline only
    assert user_settings.overlay_mode() == "outline"
    window.document.update_label(label.id, visible=False)
    assert not window.slice_view.overlay_image().any()
    # The label panel lists it with its expression.
    table = window.label_panel.table
    assert table.rowCount() == 1
    assert table.item(0, 2).text() == "the larger low-density lesion"
    assert viewer.export.export_action.isEnabled()


def test_an_unreadable_file_shows_an_error_and_keeps_the_study(viewer, window, study, tmp_path, qtbot):
    volume, lesions = study
    viewer.opening.set_volume(volume)
    window.document.add_label(lesions["smaller lesion"])
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti file at all")
    with qtbot.waitSignal(viewer.opening.open_failed, timeout=20000) as blocker:
        assert viewer.opening.open_path(bad)
    assert blocker.args[0] == "Cannot open this study" and "broken.nii.gz" in blocker.args[1]
    assert window.last_error[0] == "Cannot open this study"
    assert window.document.volume is volume and len(window.document.labels) == 1
    qtbot.waitUntil(lambda: not viewer.opening.is_loading())


def test_float_and_integer_volumes_are_windowed_alike(viewer, window):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1100, 1500, size=(2, 16, 16)).astype(np.int16)
    for array in (hu, hu.astype(np.float32)):
        viewer.opening.set_volume(Volume(array, (1, 1, 1), (0, 0, 0)))
        for key in ("abdomen", "lung", "brain"):
            window.apply_preset(key)
            view = window.slice_view
            assert np.array_equal(view.displayed_image(), _grey(array[view.current_slice], view.window))


def test_middle_drag_pans_by_the_distance_dragged(viewer, window, study):
    volume, _ = study
    viewer.opening.set_volume(volume)
    view = window.slice_view
    viewport = view.canvas.viewport()
    start = QPoint(viewport.width() // 2, viewport.height() // 2)
    before = view.view_box.mapSceneToView(view.canvas.mapToScene(start))
    QTest.mousePress(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, start)
    for step in (10, 20, 40):
        QTest.mouseMove(viewport, start + QPoint(step, step // 2))
    QTest.mouseRelease(viewport, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier,
                       start + QPoint(40, 20))
    # The anatomy that was under the pointer followed it: it is now 40 px right and 20 px down.
    after = view.view_box.mapSceneToView(view.canvas.mapToScene(start + QPoint(40, 20)))
    assert abs(after.x() - before.x()) < 1.0  # mm; a 40 px drag is about 19 mm at this zoom
    assert abs(after.y() - before.y()) < 1.0
    assert view.current_slice == volume.shape[0] // 2 and view.window == Window(400, 40)


def test_left_drag_pans_with_the_default_pan_tool(viewer, window, study):
    # The window starts with the pan tool; it used to be given the left button without being activated,
    # and the first drag raised inside Qt's mouse handler.
    volume, _ = study
    viewer.opening.set_volume(volume)
    view = window.slice_view
    viewport = view.canvas.viewport()
    start = QPoint(viewport.width() // 2, viewport.height() // 2)
    before = view.view_box.mapSceneToView(view.canvas.mapToScene(start))
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in (10, 20, 40):
        QTest.mouseMove(viewport, start + QPoint(step, step // 2))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       start + QPoint(40, 20))
    after = view.view_box.mapSceneToView(view.canvas.mapToScene(start + QPoint(40, 20)))
    assert abs(after.x() - before.x()) < 1.0 and abs(after.y() - before.y()) < 1.0


def test_panel_layout_comes_back_after_the_user_quits(window, qtbot):
    window.label_dock.hide()
    window.quit_action.trigger()
    again = build_viewer().window
    qtbot.addWidget(again)
    again.show()
    assert not again.label_dock.isVisible()
    # A window closed by a script (not the user) leaves the stored layout alone.
    again.label_dock.show()
    again.close()
    third = build_viewer().window
    qtbot.addWidget(third)
    third.show()
    assert not third.label_dock.isVisible()


def test_slice_settled_comes_once_after_a_burst_of_scrolling(viewer, window, study, qtbot):
    volume, _ = study
    viewer.opening.set_volume(volume)
    view = window.slice_view
    settled = []
    view.slice_settled.connect(settled.append)
    with qtbot.waitSignal(view.slice_settled, timeout=5000):
        for _ in range(4):
            view.step(1)
    assert settled == [volume.shape[0] // 2 + 4]

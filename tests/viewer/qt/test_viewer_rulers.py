"""The ruler (R, issue 16): drawn with the mouse in any plane, its length the world distance between its
ends, listed under Measurements, deletable, kept in the session and restored with it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from lsms_core.volume import Volume
from lsms_viewer.state.rulers import Ruler
from lsms_viewer.state.session import read_session

SHAPE = (12, 30, 40)
SPACING = (0.8, 1.1, 2.5)


def _volume(direction=None) -> Volume:
    array = np.zeros(SHAPE, np.int16)
    return Volume(array, SPACING, (-20.0, 15.0, 40.0), np.eye(3) if direction is None else direction)


def _point(view, col: float, row: float):
    px, py = view.geometry.pixel_mm
    return view.canvas.mapFromScene(view.view_box.mapViewToScene(QPointF((col + 0.5) * px, (row + 0.5) * py)))


def _drag(view, a, b) -> None:
    viewport = view.canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(view, *a))
    QTest.mouseMove(viewport, _point(view, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2))
    QTest.mouseMove(viewport, _point(view, *b))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(view, *b))


def _open(viewer, volume):
    viewer.opening.set_volume(volume)
    QTest.qWait(20)
    return viewer.window.planes


def _world_length(volume: Volume, ruler: Ruler) -> float:
    a = volume.index_to_world(np.asarray(ruler.start) - 0.5)
    b = volume.index_to_world(np.asarray(ruler.end) - 0.5)
    return float(np.linalg.norm(b - a))


def _rows(table) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def test_rulers_in_every_plane_measure_the_world_distance(viewer):
    volume = _volume()
    planes = _open(viewer, volume)
    planes.axial.canvas.setFocus()
    QTest.keyClick(planes.axial.canvas, Qt.Key.Key_R)
    assert viewer.editing.active_tool == "ruler"
    _drag(planes.axial, (5, 5), (25, 15))
    _drag(planes.coronal, (4, 2), (4, 10))  # along k: 8 slices of 2.5 mm
    _drag(planes.sagittal, (3, 1), (27, 9))
    axial, coronal, sagittal = list(planes.rulers)
    assert (axial.plane, coronal.plane, sagittal.plane) == ("axial", "coronal", "sagittal")
    assert axial.index == planes.axial.current_slice and coronal.index == planes.coronal.current_slice
    # lengths from the pixel steps and the spacing, computed without the viewer's geometry (the mouse
    # lands on whole screen pixels: within two of them at each view's zoom)
    def tolerance(view) -> float:
        return 2 * max(view.view_box.viewPixelSize())

    assert np.isclose(axial.length_mm(volume), np.hypot(20 * 0.8, 10 * 1.1), atol=tolerance(planes.axial))
    assert np.isclose(coronal.length_mm(volume), 8 * 2.5, atol=tolerance(planes.coronal))
    assert np.isclose(sagittal.length_mm(volume), np.hypot(24 * 1.1, 8 * 2.5), atol=tolerance(planes.sagittal))
    for ruler in (axial, coronal, sagittal):
        assert np.isclose(ruler.length_mm(volume), _world_length(volume, ruler))
    # drawn on their own slice, in their own plane, with their length
    drawn = planes.ruler_items["coronal"].rulers()
    assert len(drawn) == 1 and drawn[0][4] == f"{coronal.length_mm(volume):.1f} mm"
    assert planes.ruler_items["axial"].rulers()[0][4] == f"{axial.length_mm(volume):.1f} mm"
    planes.coronal.step(1)
    assert planes.ruler_items["coronal"].rulers() == []
    # listed under Measurements
    table = _ruler_table(viewer)
    assert [row[1:] for row in _rows(table)] == [
        ["axial", str(planes.axial.numbering.number(axial.index)), f"{axial.length_mm(volume):.1f}"],
        ["coronal", str(coronal.index + 1), f"{coronal.length_mm(volume):.1f}"],
        ["sagittal", str(sagittal.index + 1), f"{sagittal.length_mm(volume):.1f}"]]


def _ruler_table(viewer):
    from lsms_viewer.views.ruler_list import RulerList

    return viewer.measure_panel.findChild(RulerList).table


def test_a_ruler_on_a_sheared_oblique_grid_is_the_world_distance(viewer):
    a = np.radians(14.0)
    direction = np.array([[1, 0, 0], [0, np.cos(a), 0.3], [0, np.sin(a), 0.95]])
    direction /= np.linalg.norm(direction, axis=0)
    volume = _volume(direction)
    planes = _open(viewer, volume)
    viewer.editing.set_tool("ruler")
    _drag(planes.sagittal, (2, 1), (20, 9))
    ruler = next(iter(planes.rulers))
    assert np.isclose(ruler.length_mm(volume), _world_length(volume, ruler))
    # not the naive pixel-size length: the grid is sheared
    assert abs(ruler.length_mm(volume) - np.hypot(18 * 1.1, 8 * 2.5)) > 2.0


def test_rulers_are_deleted_from_the_list_and_come_back_with_the_session(viewer, qtbot):
    volume = _volume()
    planes = _open(viewer, volume)
    mask = np.zeros(SHAPE, bool)
    mask[5, 10:14, 10:14] = True
    viewer.window.document.add_label(mask, name="lesion")  # a session is written once there is work
    viewer.editing.set_tool("ruler")
    _drag(planes.axial, (2, 2), (12, 2))
    _drag(planes.coronal, (1, 1), (9, 1))
    kept = [r.to_json() for r in planes.rulers]
    path = viewer.autosaver.path()
    saved = read_session(path, masks=False).header["view"]["rulers"]
    assert saved == kept
    # Delete the selected (last) one from the list
    table = _ruler_table(viewer)
    table.selectRow(1)
    table.setFocus()
    QTest.keyClick(table, Qt.Key.Key_Delete)
    assert [r.plane for r in planes.rulers] == ["axial"]
    assert [r["plane"] for r in read_session(path, masks=False).header["view"]["rulers"]] == ["axial"]
    from lsms_viewer.views.ruler_list import RulerList

    ruler_list = viewer.measure_panel.findChild(RulerList)
    ruler_list.delete_button.click()
    assert len(planes.rulers) == 0 and not ruler_list.isVisible()
    # a session holding rulers restores them in another viewer
    _drag(planes.sagittal, (5, 3), (15, 3))
    stored = [r.to_json() for r in planes.rulers]
    from lsms_viewer.app import build_viewer

    other = build_viewer()
    qtbot.addWidget(other.window)
    other.window.show()
    other.opening.set_volume(volume)
    assert other.recovery.restore(path)
    assert [r.to_json() for r in other.window.planes.rulers] == stored
    other.window.planes.sagittal.set_slice(stored[0]["index"])
    assert other.window.planes.ruler_items["sagittal"].rulers()[0][4] == \
        f"{other.window.planes.rulers.get(stored[0]['id']).length_mm(volume):.1f} mm"


def test_rulers_on_a_study_without_labels_are_autosaved_and_restored(viewer, qtbot):
    """Measuring without drawing a label is work too: a crash must not lose it."""
    volume = _volume()
    planes = _open(viewer, volume)
    assert not viewer.window.document.labels
    viewer.editing.set_tool("ruler")
    _drag(planes.axial, (3, 4), (15, 4))
    path = viewer.autosaver.path()
    assert path is not None and path.exists()
    saved = read_session(path, masks=False)
    assert saved.header["labels"] == [] and saved.rulers == 1 and saved.has_work
    assert saved.describe().startswith("0 labels and 1 ruler of")
    stored = [r.to_json() for r in planes.rulers]
    from lsms_viewer.app import build_viewer

    other = build_viewer()
    qtbot.addWidget(other.window)
    other.opening.set_volume(volume)
    assert other.recovery.restore(path)
    assert [r.to_json() for r in other.window.planes.rulers] == stored
    assert "1 ruler(s)" in other.window.statusBar().currentMessage()

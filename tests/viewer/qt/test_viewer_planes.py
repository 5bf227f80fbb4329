"""Three planes (issue 16): coronal and sagittal views beside the axial one, the linked crosshair, letters
that agree with world coordinates, shared window and overlay, layouts, cine; real mouse and keys."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from lsms_core.volume import Volume, load_volume
from lsms_viewer import settings as user_settings
from lsms_viewer.display.windowing import Window

SHAPE = (12, 30, 40)  # (k, j, i)


def _coded_volume(direction=None) -> Volume:
    """Every voxel holds its own index as 10000 k + 100 j + i (exact in float32)."""
    k, j, i = np.indices(SHAPE)
    array = (10000 * k + 100 * j + i).astype(np.float32)
    return Volume(array, (0.8, 1.1, 2.5), (-20.0, 15.0, 40.0), np.eye(3) if direction is None else direction)


def _point(view, col: float, row: float) -> QPoint:
    """Widget point of the centre of plane pixel (col, row) in ``view``."""
    px, py = view.geometry.pixel_mm
    scene = view.view_box.mapViewToScene(QPointF((col + 0.5) * px, (row + 0.5) * py))
    return view.canvas.mapFromScene(scene)


def _click(view, col: float, row: float, button=Qt.MouseButton.LeftButton) -> None:
    QTest.mouseClick(view.canvas.viewport(), button, Qt.KeyboardModifier.NoModifier, _point(view, col, row))


def _open(viewer, volume):
    viewer.opening.set_volume(volume)
    QTest.qWait(20)  # the layout fits the views to their new sizes on the next turn of the event loop
    return viewer.window.planes


def test_the_three_planes_are_shown_beside_each_other_with_the_volume_s_sections(viewer):
    volume = _coded_volume()
    planes = _open(viewer, volume)
    assert planes.layout_key == "1+2" and all(v.isVisible() for v in planes.views.values())
    ax, co, sa = planes.axial, planes.coronal, planes.sagittal
    assert ax.width() > 1.5 * co.width() and abs(co.width() - sa.width()) <= 2 and co.y() < sa.y()
    assert (ax.current_slice, co.current_slice, sa.current_slice) == (6, 15, 20)
    assert planes.point == (20, 15, 6)
    window = ax.window
    lo, hi = window.levels
    grey = np.clip((volume.array[::-1, 15, :] - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(co.displayed_image(), grey)  # head up: the last slice is the top row
    assert co._letters["top"].text() == "S" and sa._letters["left"].text() == "A"


def test_clicking_and_dragging_in_one_plane_moves_the_two_others_to_that_voxel(viewer, qtbot):
    volume = _coded_volume()
    planes = _open(viewer, volume)
    ax, co, sa = planes.axial, planes.coronal, planes.sagittal
    # coronal pixel (col 7, row 2) shows voxel i = 7, k = 11 - 2 = 9 on coronal slice j = 15
    _click(co, 7, 2)
    assert planes.point == (7, 15, 9)
    assert ax.current_slice == 9 and ax.slider.value() == 9
    assert sa.current_slice == 7 and sa.slider.value() == 7
    assert co.current_slice == 15
    x, y = co.crosshair_item.position()
    assert co.crosshair_item.isVisible() and np.allclose((x, y), (7.5 * 0.8, 2.5 * 2.5))
    # sagittal pixel (col = j 22, row 5 -> k 6)
    _click(sa, 22, 5)
    assert planes.point == (7, 22, 6) and co.current_slice == 22 and ax.current_slice == 6
    # a drag in the coronal view carries the crosshair along
    viewport = co.canvas.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(co, 3, 4))
    assert planes.point == (3, 22, 7)
    QTest.mouseMove(viewport, _point(co, 30, 8))
    assert planes.point == (30, 22, 3) and ax.current_slice == 3 and sa.current_slice == 30
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(co, 30, 8))
    # in the axial view (no editing tool) a click moves the crosshair; a drag pans, as it always has
    _click(ax, 30, 25)
    assert planes.point == (30, 25, 3) and (sa.current_slice, co.current_slice) == (30, 25)
    viewport = ax.canvas.viewport()
    before = ax.view_box.viewRect()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(ax, 10, 10))
    QTest.mouseMove(viewport, _point(ax, 20, 15))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _point(ax, 20, 15))
    assert planes.point == (30, 25, 3) and ax.view_box.viewRect() != before
    # scrolling a plane moves its line in the others
    co.canvas.setFocus()
    QTest.keyClick(co.canvas, Qt.Key.Key_Down)
    assert planes.point == (30, 26, 3)
    assert np.isclose(ax.crosshair_item.position()[1], 26.5 * 1.1)
    # the readout works in every plane: HU and voxel of what is under the pointer
    QTest.mouseMove(sa.canvas.viewport(), _point(sa, 4, 1))
    text = viewer.window.cursor_label.text()
    assert f"{10000 * 10 + 100 * 4 + 30} HU" in text and "voxel (30, 4, 10)" in text
    assert "4.0 L  19.4 P  65.0 S mm" in text  # origin + spacing * (30, 4, 10)


def test_x_toggles_the_linked_crosshair(viewer, qtbot):
    planes = _open(viewer, _coded_volume())
    ax, co = planes.axial, planes.coronal
    assert planes.linked
    ax.canvas.setFocus()
    QTest.keyClick(ax.canvas, Qt.Key.Key_X)
    assert not planes.linked and not co.crosshair_item.isVisible()
    assert user_settings.crosshair_linked() is False
    before = planes.point
    _click(co, 3, 3)  # the left button pans now; the planes stay where they are
    assert planes.point == before and ax.current_slice == before[2]
    QTest.keyClick(ax.canvas, Qt.Key.Key_X)
    assert planes.linked and co.crosshair_item.isVisible()


def test_editing_stays_axial_and_shows_in_the_other_planes(viewer, qtbot):
    planes = _open(viewer, _coded_volume())
    ax, co = planes.axial, planes.coronal
    planes.set_point((10, 12, 5))
    viewer.editing.set_tool("brush")
    _click(ax, 10, 12)  # paints: the crosshair does not move
    assert planes.point == (10, 12, 5)
    label = viewer.window.document.labels[-1]
    assert label.mask[5, 12, 10]
    # the coronal view at j = 12 shows the stroke on its row for k = 5 (row 11 - 5 = 6)
    assert co.overlay_image()[6, 10] != 0
    assert np.array_equal(co.overlay_image() > 0, label.mask[::-1, 12, :])
    _click(co, 4, 4)  # the coronal view only moves the crosshair, and says where editing works
    assert planes.point == (4, 12, 7)
    assert "axial view" in viewer.window.statusBar().currentMessage()
    assert label.mask.sum() == label.mask[5].sum()  # nothing painted by the coronal click


def test_window_and_overlay_mode_are_shared(viewer):
    planes = _open(viewer, _coded_volume())
    viewport = planes.sagittal.canvas.viewport()
    centre = QPoint(viewport.width() // 2, viewport.height() // 2)
    QTest.mousePress(viewport, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewport, centre + QPoint(40, 20))
    QTest.mouseRelease(viewport, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, centre + QPoint(40, 20))
    window = planes.sagittal.window
    assert window != Window(400, 40)
    assert planes.axial.window == window == planes.coronal.window
    assert viewer.window.width_box.value() == round(window.width)
    viewer.window.set_overlay_mode("outline")
    assert all(v.overlay_mode == "outline" for v in planes.views.values())


def _world_letter(vector) -> str:
    axis = int(np.argmax(np.abs(vector)))
    return ("LPS" if vector[axis] > 0 else "RAI")[axis]


def _check_view_letters(view) -> None:
    """Letters printed at the view's edges against the world positions its readout gives one pixel apart."""
    h, w = view.geometry.size
    c, r = w // 2 + 0.5, h // 2 + 0.5
    at = np.array(view.cursor_info_at(c, r).lps)
    right = np.array(view.cursor_info_at(c + 1, r).lps) - at
    down = np.array(view.cursor_info_at(c, r + 1).lps) - at
    opposite = dict(zip("LPSRAI", "RAILPS", strict=True))
    letters = {key: label.text() for key, label in view._letters.items()}
    assert letters["right"][0] == _world_letter(right) and letters["left"][0] == opposite[_world_letter(right)]
    assert letters["bottom"][0] == _world_letter(down) and letters["top"][0] == opposite[_world_letter(down)]
    # and the pixel shown there is the voxel the readout names
    info = view.cursor_info_at(c, r)
    lo, hi = view.window.levels
    assert view.displayed_image()[int(r), int(c)] == np.clip(round((info.hu - lo) / (hi - lo) * 255), 0, 255)


def _rotation(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0]), np.diag([1.0, 1.0, -1.0]),
                                       _rotation(18.0)], ids=["lps", "ras-in-memory", "feet-first", "oblique"])
def test_letters_agree_with_world_coordinates_in_every_view(viewer, direction):
    planes = _open(viewer, _coded_volume(direction))
    for view in planes.views.values():
        _check_view_letters(view)
    oblique = not np.allclose(direction, np.diag(np.diag(direction)))
    assert ("oblique: voxel plane i–k" in planes.coronal._corners["top_left"].text()) == oblique


@pytest.mark.parametrize("affine_ras", [np.diag([0.8, 1.1, 2.5, 1.0]), np.diag([-0.8, -1.1, 2.5, 1.0]),
                                        np.diag([0.8, 1.1, -2.5, 1.0])], ids=["ras", "lps", "flipped-z"])
def test_nifti_files_are_shown_radiologically_in_every_plane(viewer, tmp_path, affine_ras):
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(40 * 30 * 12, dtype=np.int16).reshape(40, 30, 12), affine_ras), str(path))
    planes = _open(viewer, load_volume(path))
    expected = {"axial": "RLAP", "coronal": "RLSI", "sagittal": "APSI"}
    for plane, view in planes.views.items():
        _check_view_letters(view)
        assert "".join(view._letters[e].text() for e in ("left", "right", "top", "bottom")) == expected[plane]


def test_layouts_from_the_view_menu_are_remembered(viewer, qtbot):
    planes = _open(viewer, _coded_volume())
    planes.layout_actions["1x1"].trigger()
    assert planes.axial.isVisible() and not planes.coronal.isVisible() and not planes.sagittal.isVisible()
    planes.layout_actions["2x2"].trigger()
    assert all(v.isVisible() for v in planes.views.values()) and planes.info.isVisible()
    assert "voxel (20, 15, 6)" in planes.info.text() and f"{10000 * 6 + 100 * 15 + 20} HU" in planes.info.text()
    planes.layout_actions["1x3"].trigger()
    ax, co, sa = planes.axial, planes.coronal, planes.sagittal
    assert ax.y() == co.y() == sa.y() and ax.x() < co.x() < sa.x()
    assert user_settings.plane_layout() == "1x3"
    from lsms_viewer.app import build_viewer

    again = build_viewer()
    qtbot.addWidget(again.window)
    assert again.window.planes.layout_key == "1x3" and again.window.planes.layout_actions["1x3"].isChecked()


def test_space_plays_the_axial_slices_in_a_loop_and_stops(viewer, qtbot):
    planes = _open(viewer, _coded_volume())
    ax = planes.axial
    planes.cine_rate_actions[30].trigger()
    assert planes.cine_rate == 30 and user_settings.cine_fps() == 30
    ax.set_slice(SHAPE[0] - 3)
    seen = []
    ax.slice_changed.connect(seen.append)
    ax.canvas.setFocus()
    QTest.keyClick(ax.canvas, Qt.Key.Key_Space)
    assert planes.is_playing() and planes.cine_action.isChecked()
    qtbot.waitUntil(lambda: len(seen) >= 5, timeout=5000)
    assert seen[:5] == [SHAPE[0] - 2, SHAPE[0] - 1, 0, 1, 2]  # one slice per step, back to the first
    assert planes.point[2] == ax.current_slice  # the other planes' lines follow
    QTest.keyClick(ax.canvas, Qt.Key.Key_Space)
    assert not planes.is_playing() and not planes.cine_action.isChecked()
    stopped = ax.current_slice
    QTest.qWait(200)
    assert ax.current_slice == stopped


def test_bench_render_scrolls_the_plane_asked_for(capsys):
    import argparse
    import json

    from lsms_viewer.bench import render as bench_render

    parser = argparse.ArgumentParser()
    bench_render.register(parser.add_subparsers())
    args = parser.parse_args(["render", "--size", "48", "--slices", "6", "--passes", "1", "--labels", "2",
                              "--plane", "sagittal", "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["plane"] == "sagittal" and result["shape"] == [6, 48, 48] and result["steps"] == 48
    assert result["ms_per_slice"] > 0 and result["baseline_ms_per_slice"] > 0


def test_help_lists_the_plane_keys(viewer):
    rows = dict((what, keys) for keys, what in viewer.window.shortcut_rows())
    assert rows.get("Linked crosshair") == "X" and rows.get("Play / pause cine") == "Space"
    assert rows.get("Ruler") == "R" and not viewer.editing.dropped_shortcuts
    assert any("linked crosshair" in what for what in rows)


def test_space_and_x_typed_in_the_words_box_stay_text(viewer):
    planes = _open(viewer, _coded_volume())
    edit = viewer.window.expression_bar.edit
    edit.setFocus()
    QTest.keyClicks(edit, "a box")
    assert edit.text() == "a box"
    assert not planes.is_playing() and planes.linked


def test_candidate_outlines_are_drawn_in_every_plane(viewer):
    from lsms_core.referring.candidates import Candidate

    planes = _open(viewer, _coded_volume())
    run = np.zeros((4, 30, 40), bool)  # a run over slices 5..8
    run[1:3, 10:14, 20:25] = True  # slices 6-7, rows j 10-13, columns i 20-24
    other = np.zeros_like(run)
    other[0, 2:4, 2:4] = True
    outlines = viewer.candidates.outlines
    outlines.set_candidates([Candidate(1, run, 1, None, 0.0), Candidate(2, other, 0, None, 0.0)], 5, 1)
    planes.set_point((22, 11, 6))
    assert outlines.drawn_numbers_in(planes.axial) == [1]
    assert outlines.drawn_numbers_in(planes.coronal) == [1] and outlines.drawn_numbers_in(planes.sagittal) == [1]
    coronal = outlines._section(planes.coronal, Candidate(1, run, 1, None, 0.0))
    expected = np.zeros((12, 40), bool)
    expected[6:8, 20:25] = True  # run slices 6-7 of the volume, head up: rows 11 - 7 .. 11 - 6
    assert np.array_equal(coronal, expected[::-1])
    planes.set_point((3, 3, 5))  # the second candidate only, in all three planes
    assert [outlines.drawn_numbers_in(v) for v in planes.views.values()] == [[2], [2], [2]]
    planes.coronal.set_slice(20)
    assert outlines.drawn_numbers_in(planes.coronal) == []


def test_plane_views_made_for_an_open_study_show_it(qtbot):
    from lsms_viewer.state.document import Document
    from lsms_viewer.views.plane_views import PlaneViews

    volume = _coded_volume()
    document = Document(volume)
    planes = PlaneViews(document)
    qtbot.addWidget(planes)
    assert planes.point == (20, 15, 6) and planes.sagittal.geometry.count == 40
    document.add_label(volume.array > 60000)
    planes.set_point((3, 4, 7))
    assert planes.coronal.current_slice == 4 and planes.coronal.overlay_image().any()
    assert "Sagittal" in planes.sagittal._corners["top_left"].text()

"""The editing tools driven with real mouse events in the real main window (offscreen Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from qt_helpers import drag

from lsms_viewer.editing.brush import footprint


@pytest.fixture
def viewer(make_viewer):
    return make_viewer(900, 700)


@pytest.fixture
def window(viewer):
    return viewer.window


def test_brush_stroke_paints_a_label_and_one_ctrl_z_undoes_it(viewer, qtbot, window):
    editing = viewer.editing
    editing.set_tool("brush")
    editing.panel.radius.setValue(2.0)
    z = window.current_slice()
    drag(window, [(20, 20), (20, 30), (20, 40)])
    label = window.document.active_label
    assert label is not None
    painted = label.mask[z]
    assert painted[20, 20:41].all() and label.mask.sum() == painted.sum()
    assert editing.undo_action.text() == "&Undo brush stroke"
    qtbot.keyClick(window.slice_view.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.document.labels  # the stroke created the label: both go
    qtbot.keyClick(window.slice_view.canvas, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.document.active_label.mask[z, 20, 30]


def test_click_paints_exactly_the_footprint_in_mm(viewer, qtbot, window):
    viewer.editing.set_tool("brush")
    viewer.editing.panel.radius.setValue(3.0)
    drag(window, [(30, 40)])
    mask = window.document.active_label.mask[window.current_slice()]
    sx, sy, _ = window.document.volume.spacing
    fp = footprint(3.0, (sy, sx))
    ry, rx = fp.shape[0] // 2, fp.shape[1] // 2
    expected = np.zeros_like(mask)
    expected[30 - ry : 30 + ry + 1, 40 - rx : 40 + rx + 1] = fp
    assert np.array_equal(mask, expected)


def test_threshold_brush_stays_inside_the_dark_lesion(viewer, qtbot, window, volume):
    editing = viewer.editing
    editing.set_tool("brush")
    editing.panel.radius.setValue(15.0)
    editing.panel.threshold.setChecked(True)
    editing.panel.hu_low.setValue(-20)
    editing.panel.hu_high.setValue(35)
    z = window.current_slice()
    drag(window, [(32, 20)])
    mask = window.document.active_label.mask[z]
    image = volume.array[z]
    assert mask.sum() > 50 and (image[mask] < 35).all()


def test_eraser_and_fill_and_pieces(viewer, qtbot, window):
    editing = viewer.editing
    doc = window.document
    z = window.current_slice()
    mask = np.zeros(doc.volume.shape, bool)
    mask[z, 10:20, 10:20] = True
    mask[z, 14:16, 14:16] = False  # a hole
    mask[z, 40:45, 60:65] = True  # a second piece
    label = doc.add_label(mask, name="lesion")
    editing.set_tool("fill")
    drag(window, [(15, 15)])
    assert label.mask[z, 10:20, 10:20].all()
    editing.set_tool("remove")
    drag(window, [(42, 62)])
    assert not label.mask[z, 40:45, 60:65].any()
    editing.set_tool("eraser")
    editing.panel.radius.setValue(1.0)
    drag(window, [(15, 10), (15, 19)])
    assert not label.mask[z, 15, 10:20].any()
    assert editing.history.undo_text == "eraser stroke"
    for _ in range(3):
        editing.undo()
    assert np.array_equal(label.mask, mask)


def test_interpolate_between_two_drawn_slices(viewer, qtbot, window):
    editing = viewer.editing
    editing.set_tool("brush")
    editing.panel.radius.setValue(4.0)
    view = window.slice_view
    view.set_slice(2)
    drag(window, [(30, 30)])
    view.set_slice(8)
    drag(window, [(30, 30)])
    label = window.document.active_label
    assert not label.mask[3:8].any()
    editing.interpolate_action.trigger()
    assert label.mask[3:8, 30, 30].all()
    assert editing.history.undo_text.startswith("interpolate slices 3–9")


def test_threshold_range_follows_the_window_until_typed(viewer, window):
    from lsms_viewer.display.windowing import Window

    panel = viewer.editing.panel
    settings = viewer.editing.context.settings
    window.slice_view.set_window(Window(150, 60))
    assert settings.hu_range == (-15.0, 135.0)
    panel.hu_low.setValue(0)
    window.slice_view.set_window(Window(400, 40))
    assert settings.hu_range == (0.0, 135.0)
    panel.threshold.setChecked(True)
    panel.from_window.click()
    assert settings.hu_range == (-160.0, 240.0)


def test_no_shortcut_is_ambiguous(viewer, window):
    from PySide6.QtGui import QAction

    seen = {}
    for action in set(window.findChildren(QAction)):
        for seq in action.shortcuts():
            assert seq.toString() not in seen, (action.text(), seen.get(seq.toString()))
            seen[seq.toString()] = action.text()
    assert viewer.editing.dropped_shortcuts == []


def test_brush_cursor_is_the_footprint_and_hides_when_the_pointer_leaves(viewer, qtbot, window):
    from PySide6.QtCore import QEvent
    from PySide6.QtTest import QTest
    from qt_helpers import widget_point

    editing = viewer.editing
    editing.set_tool("brush")
    editing.panel.radius.setValue(4.0)
    canvas = window.slice_view.canvas.viewport()
    QTest.mouseMove(canvas, widget_point(window, 30, 40))
    outline = editing.tools["brush"].outline_item
    assert outline.isVisible()
    sx, sy, _ = window.document.volume.spacing
    rect = outline.path().boundingRect()
    assert rect.width() == pytest.approx((2 * int(4.0 / sx) + 1) * sx)  # whole pixels, in mm
    assert outline.pos().x() == pytest.approx(40.5 * sx) and outline.pos().y() == pytest.approx(30.5 * sy)
    window.slice_view.canvas.leaveEvent(QEvent(QEvent.Type.Leave))
    assert not outline.isVisible()
    editing.set_tool("pan")
    assert editing.tools["brush"].outline_item is None


def test_tool_keys_and_bracket_keys_change_tool_and_radius(viewer, qtbot, window):
    canvas = window.slice_view.canvas
    canvas.setFocus()
    editing = viewer.editing
    for key, name in ((Qt.Key.Key_B, "brush"), (Qt.Key.Key_E, "eraser"), (Qt.Key.Key_F, "fill"),
                      (Qt.Key.Key_K, "keep"), (Qt.Key.Key_H, "pan")):
        qtbot.keyClick(canvas, key)
        assert editing.active_tool == name and editing.tool_actions[name].isChecked()
    editing.panel.radius.setValue(5.0)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert editing.context.settings.radius_mm == 6.0
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(canvas, Qt.Key.Key_BracketLeft)
    assert editing.context.settings.radius_mm == 4.0


def test_interpolating_after_opening_a_shorter_study_does_not_index_the_old_one(qtbot, viewer):
    # Bug: slices drawn on the first study (slice 10 of 12) were still key slices in the second (6 slices).
    from viewer_helpers import phantom_volume

    editing = viewer.editing
    editing.set_tool("brush")
    viewer.window.slice_view.set_slice(10)
    drag(viewer.window, [(30, 30)])
    assert viewer.opening.set_volume(phantom_volume(shape=(6, 64, 80), seed=3))
    viewer.window.slice_view.set_slice(2)
    drag(viewer.window, [(30, 30)])
    assert not editing.interpolate()  # one drawn slice: nothing to interpolate, and no IndexError

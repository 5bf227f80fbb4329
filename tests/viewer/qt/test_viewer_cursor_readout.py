"""The HU/mm readout under a still mouse follows the slice (issue 15 item 5): it showed slice 21's value
on slice 96 after scrolling with the wheel or keys; and no message hides it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from qt_helpers import widget_point

from lsms_core.volume import Volume


def _ramp_volume() -> Volume:
    arr = np.zeros((12, 40, 50), np.float32)
    for k in range(12):
        arr[k] = 10.0 * k  # every slice its own HU
    return Volume(arr, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))


def test_the_readout_follows_slice_changes_under_a_still_mouse(viewer, qtbot):
    viewer.opening.set_volume(_ramp_volume())
    win = viewer.window
    view = win.slice_view
    view.set_slice(3)
    canvas = view.canvas.viewport()
    QTest.mouseMove(canvas, widget_point(win, 20, 25))
    assert "30 HU" in win.cursor_label.text() and "(25, 20, 3)" in win.cursor_label.text()
    view.canvas.setFocus()
    QTest.keyClick(view.canvas, Qt.Key.Key_Down)  # keys: the mouse has not moved
    assert view.current_slice == 4
    assert "40 HU" in win.cursor_label.text() and "(25, 20, 4)" in win.cursor_label.text()
    pos = QPointF(widget_point(win, 20, 25))
    wheel = QWheelEvent(pos, view.canvas.mapToGlobal(pos), QPoint(), QPoint(0, -360), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    view.canvas.wheelEvent(wheel)  # three notches down: three slices on
    assert view.current_slice == 7
    assert "70 HU" in win.cursor_label.text() and "(25, 20, 7)" in win.cursor_label.text()
    # A message in the status bar (or a menu's status tip) leaves the readout on screen.
    win.statusBar().showMessage("Detection threshold: 0.40 (applies to the next run).", 5000)
    qtbot.wait(10)
    assert win.cursor_label.isVisible() and "70 HU" in win.cursor_label.text()


def test_leaving_the_image_stops_following(viewer):
    viewer.opening.set_volume(_ramp_volume())
    win = viewer.window
    view = win.slice_view
    QTest.mouseMove(view.canvas.viewport(), widget_point(win, 20, 25))
    from PySide6.QtCore import QEvent

    QApplication.sendEvent(view.canvas, QEvent(QEvent.Type.Leave))
    view.step(1)
    assert win.cursor_label.text() == ""

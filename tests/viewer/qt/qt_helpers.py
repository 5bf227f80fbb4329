"""Real mouse input on the main window's slice canvas (offscreen Qt)."""

from __future__ import annotations


def widget_point(win, row: float, col: float):
    """Widget coordinates of the centre of pixel (row, col) on the main window's slice canvas."""
    from PySide6.QtCore import QPointF

    sx, sy, _ = win.document.volume.spacing
    view = win.slice_view
    scene = view.view_box.mapViewToScene(QPointF((col + 0.5) * sx, (row + 0.5) * sy))
    return view.canvas.mapFromScene(scene)


def drag(win, points, modifier=None):
    """A left-button drag through pixel centres (row, col), as real mouse events on the canvas."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    modifier = modifier if modifier is not None else Qt.KeyboardModifier.NoModifier
    canvas = win.slice_view.canvas.viewport()
    pts = [widget_point(win, r, c) for r, c in points]
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, modifier, pts[0])
    for p in pts[1:]:
        QTest.mouseMove(canvas, p)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, modifier, pts[-1])

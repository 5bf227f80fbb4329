"""Small real volumes for the editing tests (a phantom with a bright and a dark disc)."""

from __future__ import annotations

import numpy as np

from lsms_core.volume import Volume


def phantom_volume(shape=(12, 64, 80), spacing=(0.8, 0.7, 2.5), seed: int = 0) -> Volume:
    """A liver-like 60 HU block, a hypodense disc (10 HU) left on screen and a hyperdense one (140 HU)."""
    rng = np.random.default_rng(seed)
    z, h, w = shape
    arr = np.full(shape, -900.0, dtype=np.float32)
    arr[:, 8 : h - 8, 6 : w - 6] = 60.0
    yy, xx = np.mgrid[0:h, 0:w]
    dark = (yy - h // 2) ** 2 + (xx - w // 4) ** 2 <= 7**2
    bright = (yy - h // 2) ** 2 + (xx - 3 * w // 4) ** 2 <= 5**2
    arr[:, dark] = 10.0
    arr[:, bright] = 140.0
    arr += rng.normal(0, 2.0, size=shape).astype(np.float32)
    return Volume(arr, spacing, (0.0, 0.0, 0.0))


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

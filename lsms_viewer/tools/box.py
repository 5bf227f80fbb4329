"""The Box tool: drag a rectangle around a lesion; the refiner (LiteMedSAM) draws the lesion inside it.

The tool only draws the rectangle and hands the box over (voxel corners, inclusive, on the shown slice);
the refining controller runs the network in a worker thread and writes the label, so a tool never waits
for a model.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from lsms_viewer.tools.base import Tool, ToolEvent

#: a box narrower than this many pixels is a click, not a box
MIN_SIDE_PX = 3


class BoxTool(Tool):
    name = "box"
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, on_box: Callable[[int, tuple[int, int, int, int]], None], shape_of: Callable[[], tuple]):
        """``on_box(slice, (x0, y0, x1, y1))`` receives each box; ``shape_of()`` is the volume's (Z, H, W)."""
        self.on_box = on_box
        self.shape_of = shape_of
        self._start: ToolEvent | None = None
        self._rect: QGraphicsRectItem | None = None

    def activate(self, host) -> None:
        super().activate(host)
        self._rect = QGraphicsRectItem()
        pen = QPen(QColor(80, 220, 120), 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._rect.setPen(pen)
        self._rect.setZValue(30)
        self._rect.setVisible(False)
        host.view_box.addItem(self._rect)

    def deactivate(self) -> None:
        if self._rect is not None:
            self.host.view_box.removeItem(self._rect)
            self._rect = None
        self._start = None

    def press(self, event: ToolEvent) -> None:
        self._start = event
        self._show(event)

    def move(self, event: ToolEvent) -> None:
        if self._start is not None:
            self._show(event)

    def release(self, event: ToolEvent) -> None:
        start, self._start = self._start, None
        if self._rect is not None:
            self._rect.setVisible(False)
        if start is None:
            return
        box = self.box_between(start, event)
        if box is not None:
            self.on_box(start.slice_index, box)

    def box_between(self, a: ToolEvent, b: ToolEvent) -> tuple[int, int, int, int] | None:
        """The pixels the drag covers, clipped to the image; None for a click or a box outside it."""
        _, h, w = self.shape_of()
        x0, x1 = sorted((int(a.col), int(b.col)))
        y0, y1 = sorted((int(a.row), int(b.row)))
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, w - 1), min(y1, h - 1)
        if x1 - x0 + 1 < MIN_SIDE_PX or y1 - y0 + 1 < MIN_SIDE_PX:
            return None
        return x0, y0, x1, y1

    def _show(self, event: ToolEvent) -> None:
        if self._rect is None or self._start is None:
            return
        s = self._start
        self._rect.setRect(QRectF(min(s.x_mm, event.x_mm), min(s.y_mm, event.y_mm),
                                  abs(event.x_mm - s.x_mm), abs(event.y_mm - s.y_mm)))
        self._rect.setVisible(True)

"""The ruler tool (R): drag a line in any plane; on release the caller keeps it as a ruler.

While dragging, a dashed line follows the pointer (removed on release). ``on_done(start, end)`` gets the
press and release ``ToolEvent``s (plane coordinates of the view the drag happened in); a click without a
drag measures nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QLineF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsLineItem

from lsms_viewer.tools.base import Tool, ToolEvent, ToolHost

MIN_PX = 3  # shorter drags (in screen pixels) are clicks, not rulers


class RulerTool(Tool):
    name = "ruler"
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, on_done: Callable[[ToolEvent, ToolEvent], None]) -> None:
        self._on_done = on_done
        self._start: ToolEvent | None = None
        self._line: QGraphicsLineItem | None = None

    def activate(self, host: ToolHost) -> None:
        super().activate(host)
        self._line = QGraphicsLineItem()
        pen = QPen(QColor(255, 230, 90))
        pen.setCosmetic(True)
        pen.setWidth(2)
        pen.setStyle(Qt.PenStyle.DashLine)
        self._line.setPen(pen)
        self._line.setZValue(40)
        self._line.hide()
        host.view_box.addItem(self._line)

    def deactivate(self) -> None:
        if self._line is not None:
            self.host.view_box.removeItem(self._line)
            self._line = None
        self._start = None

    def press(self, event: ToolEvent) -> None:
        self._start = event
        self._line.setLine(QLineF(event.x_mm, event.y_mm, event.x_mm, event.y_mm))
        self._line.show()

    def move(self, event: ToolEvent) -> None:
        if self._start is not None:
            self._line.setLine(QLineF(self._start.x_mm, self._start.y_mm, event.x_mm, event.y_mm))

    def release(self, event: ToolEvent) -> None:
        start, self._start = self._start, None
        self._line.hide()
        if start is None:
            return
        px, py = self.host.view_box.viewPixelSize()
        dx, dy = (event.x_mm - start.x_mm) / px, (event.y_mm - start.y_mm) / py
        if dx * dx + dy * dy >= MIN_PX * MIN_PX:
            self._on_done(start, event)

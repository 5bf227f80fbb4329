"""Brush and eraser as slice-view tools: a disc of radius r mm painted along the mouse's path.

The pixel work is ``lsms_viewer.editing.paint_stroke``; this module adds the Qt part, the footprint drawn
under the pointer. Every stroke edits the *active* label through ``Document.write_region`` inside one undo
batch, so a whole stroke is one Ctrl+Z; painting with no active label creates one (in the same step).
Shift while painting erases (the right button is the window/level drag).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from lsms_viewer.editing.brush import footprint_outline, paint_stroke
from lsms_viewer.state.document import Label
from lsms_viewer.state.edit_context import EditContext
from lsms_viewer.tools.base import Tool, ToolEvent, ToolHost


def _pixel(event: ToolEvent) -> tuple[float, float]:
    """(row, col) of the pixel under the pointer, in the pixel-centre coordinates the logic uses."""
    return (float(np.floor(event.row)), float(np.floor(event.col)))


class BrushTool(Tool):
    """Paint (or, ``erase=True`` or Shift held, erase) the active label with a disc of radius r mm."""

    cursor = Qt.CursorShape.BlankCursor

    def __init__(self, context: EditContext, erase: bool = False):
        self.context = context
        self.erase = erase
        self.name = "eraser" if erase else "brush"
        self._outline: QGraphicsPathItem | None = None
        self._outline_key: tuple | None = None
        self._label: Label | None = None
        self._last: tuple[float, float] | None = None
        self._erasing = erase

    # -- cursor ---------------------------------------------------------------------------------------
    def activate(self, host: ToolHost) -> None:
        super().activate(host)
        self._outline = QGraphicsPathItem()
        pen = QPen(QColor(255, 80, 80) if self.erase else QColor(255, 255, 0))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self._outline.setPen(pen)
        self._outline.setZValue(20)
        self._outline.setVisible(False)
        host.view_box.addItem(self._outline)
        host.cursor_moved.connect(self._on_cursor)

    def deactivate(self) -> None:
        self._finish()
        self.host.cursor_moved.disconnect(self._on_cursor)
        if self._outline is not None:
            self.host.view_box.removeItem(self._outline)
            self._outline = None

    def _on_cursor(self, info) -> None:
        if info is None and self._outline is not None:  # the pointer left the image: no stale footprint
            self._outline.setVisible(False)

    def _update_outline(self, event: ToolEvent) -> None:
        volume = self.context.document.volume
        if self._outline is None or volume is None:
            return
        sx, sy, _ = volume.spacing
        key = (self.context.settings.radius_mm, sx, sy)
        if key != self._outline_key:
            pts = footprint_outline(self.context.settings.radius_mm, (sy, sx))
            path = QPainterPath()
            path.moveTo(QPointF(pts[0][0] * sx, pts[0][1] * sy))
            for x, y in pts[1:]:
                path.lineTo(QPointF(x * sx, y * sy))
            path.closeSubpath()
            self._outline.setPath(path)
            self._outline_key = key
        row, col = _pixel(event)
        self._outline.setPos(QPointF((col + 0.5) * sx, (row + 0.5) * sy))
        self._outline.setVisible(True)

    @property
    def outline_item(self) -> QGraphicsPathItem | None:
        return self._outline

    # -- painting -------------------------------------------------------------------------------------
    def press(self, event: ToolEvent) -> None:
        ctx = self.context
        self._erasing = self.erase or event.shift
        what = "eraser stroke" if self._erasing else "brush stroke"
        if ctx.settings.threshold:
            what = "threshold " + what
        ctx.history.begin_batch(what)
        self._label = ctx.target_label(create=not self._erasing)
        self._last = _pixel(event)
        self._paint([self._last], event)
        self._update_outline(event)

    def move(self, event: ToolEvent) -> None:
        self._update_outline(event)
        if self._last is None:
            return
        point = _pixel(event)
        if point != self._last:
            self._paint([self._last, point], event)
            self._last = point

    def release(self, event: ToolEvent) -> None:
        self._finish()

    def hover(self, event: ToolEvent) -> None:
        self._update_outline(event)

    def _finish(self) -> None:
        if self._last is not None:
            self._last = None
            self._label = None
            self.context.history.end_batch()

    def _paint(self, points, event: ToolEvent) -> None:
        ctx, label = self.context, self._label
        if label is None or not ctx.document.has_label(label.id):
            return
        volume = ctx.document.volume
        hu_range = ctx.hu_range(self.host.window.levels)
        change = paint_stroke(
            label.mask,
            event.slice_index,
            points,
            ctx.settings.radius_mm,
            ctx.spacing_yx(),
            erase=self._erasing,
            image=volume.array if hu_range is not None else None,
            hu_range=hu_range,
        )
        ctx.apply(label, change)

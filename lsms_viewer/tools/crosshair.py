"""The linked crosshair's tool: a left click or drag puts the crosshair on the voxel under the pointer.

The slice view hands it the left button while its active tool is only the pan tool (every plane view
when no editing tool is chosen; the coronal and sagittal views always, since editing is axial only).
What the crosshair does with the point (moving the other planes) is the caller's ``on_pick``. With
``drag_pans`` (the axial view, whose left-drag has always panned) a click picks and a drag pans.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt

from lsms_viewer.tools.base import PanTool, Tool, ToolEvent, ToolHost

DRAG_PX = 4  # a press that moves further than this many screen pixels is a drag, not a click


class CrosshairTool(Tool):
    name = "crosshair"
    cursor = Qt.CursorShape.CrossCursor

    def __init__(self, on_pick: Callable[[ToolEvent], None], drag_pans: bool = False) -> None:
        self._on_pick = on_pick
        self._drag_pans = drag_pans
        self._pan = PanTool()
        self._pressed: ToolEvent | None = None
        self._dragging = False

    def activate(self, host: ToolHost) -> None:
        super().activate(host)
        self._pan.activate(host)

    def press(self, event: ToolEvent) -> None:
        self._pressed, self._dragging = event, False
        if self._drag_pans:
            self._pan.press(event)
        else:
            self._on_pick(event)

    def move(self, event: ToolEvent) -> None:
        if self._pressed is None:
            return
        if not self._drag_pans:
            self._on_pick(event)
            return
        if not self._dragging:
            px, py = self.host.view_box.viewPixelSize()  # millimetres per screen pixel
            dx, dy = (event.x_mm - self._pressed.x_mm) / px, (event.y_mm - self._pressed.y_mm) / py
            self._dragging = dx * dx + dy * dy > DRAG_PX * DRAG_PX
        if self._dragging:
            self._pan.move(event)

    def release(self, event: ToolEvent) -> None:
        if self._drag_pans and self._pressed is not None and not self._dragging:
            self._on_pick(self._pressed)
        self._pan.release(event)
        self._pressed, self._dragging = None, False

    def deactivate(self) -> None:
        self._pressed, self._dragging = None, False

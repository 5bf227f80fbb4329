"""What a slice-view tool is: ``Tool`` with its ``ToolEvent``s, the ``ToolHost`` it works in, and ``PanTool``.

The slice view owns the mouse: the middle button always pans (with a ``PanTool`` of its own), the right
button always sets the window, the wheel scrolls slices (Ctrl+wheel zooms). The LEFT button goes to the
active tool, as ``press``/``move``/``release`` with a ``ToolEvent`` that already carries voxel and
millimetre coordinates, so a tool never maps Qt coordinates itself. ``hover`` is called on every mouse
move without buttons (a brush draws its footprint there). A tool may add graphics items to
``host.view_box`` in ``activate`` and must remove them in ``deactivate``.

Tools know their host only through :class:`ToolHost`, never the slice view's class, so the view imports
the tools and not the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import Qt


@dataclass(frozen=True)
class ToolEvent:
    """A mouse event on the slice view, in image terms."""

    col: float  # fractional voxel column (i); pixel centres sit at integer + 0.5
    row: float  # fractional voxel row (j)
    slice_index: int  # k
    x_mm: float  # position inside the displayed slice in millimetres from its top-left corner
    y_mm: float
    shift: bool = False
    ctrl: bool = False
    alt: bool = False

    @property
    def voxel(self) -> tuple[int, int, int]:
        """(k, j, i) index of the voxel under the pointer, for ``array[k, j, i]`` (may be outside)."""
        return self.slice_index, int(np.floor(self.row)), int(np.floor(self.col))


class ToolHost(Protocol):
    """What a tool may use of the view it works in."""

    #: the pyqtgraph ViewBox holding the slice, in millimetres from the slice's top-left corner
    view_box: Any
    #: Qt signal ``cursor_moved(CursorInfo | None)``: None when the pointer leaves the image
    cursor_moved: Any

    @property
    def window(self) -> Any:
        """The display window (``lsms_viewer.display.windowing.Window``) on screen."""

    def pan_mm(self, dx: float, dy: float) -> None:
        """Move the visible area by (dx, dy) millimetres."""


class Tool:
    """Base class: every method is optional. Override what the tool needs."""

    name = "tool"
    #: the mouse cursor shown while the tool is active
    cursor = Qt.CursorShape.ArrowCursor

    def activate(self, host: ToolHost) -> None:
        self.host = host

    def deactivate(self) -> None:
        pass

    def press(self, event: ToolEvent) -> None:
        pass

    def move(self, event: ToolEvent) -> None:
        pass

    def release(self, event: ToolEvent) -> None:
        pass

    def hover(self, event: ToolEvent) -> None:
        pass


class PanTool(Tool):
    """Left-drag pans the image; the slice view's middle button uses one too."""

    name = "pan"
    cursor = Qt.CursorShape.OpenHandCursor

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def press(self, event: ToolEvent) -> None:
        self._last = (event.x_mm, event.y_mm)

    def move(self, event: ToolEvent) -> None:
        if self._last is None:
            return
        # The press point stays the anchor: once the view has moved by (last - now), the pointer's screen
        # position maps to the pressed millimetres again, so the next event pans by the new difference.
        self.host.pan_mm(self._last[0] - event.x_mm, self._last[1] - event.y_mm)

    def release(self, event: ToolEvent) -> None:
        self._last = None

"""The interface between the slice view and interactive tools (pan here; brush, eraser, fill, measure in
``lsms_viewer.editing``).

The slice view owns the mouse: the middle button always pans, the right button always sets the window,
the wheel scrolls slices (Ctrl+wheel zooms). The LEFT button goes to the active tool, as
``press``/``move``/``release`` with a ``ToolEvent`` that already carries voxel and world coordinates,
so a tool never maps Qt coordinates itself. ``hover`` is called on every mouse move without buttons (a
brush draws its footprint there). A tool may add graphics items to ``view.view_box`` in ``activate``
and must remove them in ``deactivate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the view imports this module; avoid the cycle at run time
    from lsms_viewer.views.slice_view import SliceView


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


class Tool:
    """Base class: every method is optional. Override what the tool needs."""

    name = "tool"
    #: Qt cursor shape name (``Qt.CursorShape`` member name) shown while the tool is active.
    cursor = "ArrowCursor"

    def activate(self, view: SliceView) -> None:
        self.view = view

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
    """The default tool: left-drag pans the image (like the middle button)."""

    name = "pan"
    cursor = "OpenHandCursor"

    def press(self, event: ToolEvent) -> None:
        self._last = (event.x_mm, event.y_mm)

    def move(self, event: ToolEvent) -> None:
        # The view has moved under the pointer by the time the next event arrives, so pan by the
        # difference in *screen* terms: the view provides it in mm of the current zoom.
        last = getattr(self, "_last", None)
        if last is None:
            return
        self.view.pan_mm(last[0] - event.x_mm, last[1] - event.y_mm)
        # After panning, the same screen point maps to the old mm position again.

    def release(self, event: ToolEvent) -> None:
        self._last = None

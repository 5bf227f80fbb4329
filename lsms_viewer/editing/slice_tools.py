"""The editing tools as slice-view tools (``lsms_viewer.tools.Tool``): brush, eraser, fill, pieces.

This is the only module of ``lsms_viewer.editing`` that touches Qt (the brush cursor is a graphics item);
the pixel work is done by the Qt-free functions of the package. Every tool edits the *active* label
through ``Document.write_region``, inside one undo batch per mouse gesture, so a whole stroke is one
Ctrl+Z. Painting with no active label creates one (in the same undo step).

Conventions: Shift while painting erases with the brush (the right button is the window/level drag);
Ctrl+click with the piece tools works on the 3D lesion instead of the slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsPathItem

from lsms_viewer.editing.brush import footprint_outline, paint_stroke
from lsms_viewer.editing.change import Change, EditError
from lsms_viewer.editing.components import keep_component, remove_component
from lsms_viewer.editing.fill import flood_fill
from lsms_viewer.state.document import Document, Label
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.tools import Tool, ToolEvent

MIN_RADIUS_MM, MAX_RADIUS_MM = 0.25, 100.0


@dataclass
class EditSettings:
    """What the editing panel sets; shared by all tools."""

    radius_mm: float = 5.0
    threshold: bool = False  # limit brush and fill to an HU range
    hu_range: tuple[float, float] | None = None  # None: the view's current window (level +- width/2)
    three_d: bool = False  # piece tools work on the 3D lesion


class EditContext:
    """What tools need besides the view: the document, the undo history, settings, and two callbacks."""

    def __init__(
        self,
        document: Document,
        history: UndoHistory,
        settings: EditSettings | None = None,
        message: Callable[[str], None] | None = None,
    ):
        self.document = document
        self.history = history
        self.settings = settings or EditSettings()
        self.message = message or (lambda text: None)
        #: slices touched by the user's own edits, per label, most recent last (for interpolation)
        self.edited_slices: dict[int, list[int]] = {}

    def spacing_yx(self) -> tuple[float, float]:
        sx, sy, _ = self.document.volume.spacing
        return (sy, sx)

    def target_label(self, create: bool) -> Label | None:
        label = self.document.active_label
        if label is None and create and self.document.volume is not None:
            label = self.document.add_label(np.zeros(self.document.volume.shape, dtype=bool))
        return label

    def hu_range(self, view) -> tuple[float, float] | None:
        if not self.settings.threshold:
            return None
        if self.settings.hu_range is not None:
            return self.settings.hu_range
        return tuple(float(v) for v in view.window.levels)

    def apply(self, label: Label, change: Change) -> bool:
        """Write a change into the label (the history records it); False when it changed nothing."""
        if change.empty:
            return False
        self.document.write_region(label.id, change.bbox, change.after)
        if len(change.slices_touched) == 1:  # a slice drawn by hand: a key slice for interpolation
            z = change.slices_touched[0]
            slices = self.edited_slices.setdefault(label.id, [])
            if z in slices:
                slices.remove(z)
            slices.append(z)
        return True


def _pixel(event: ToolEvent) -> tuple[float, float]:
    """(row, col) of the pixel under the pointer, in the pixel-centre coordinates the logic uses."""
    return (float(np.floor(event.row)), float(np.floor(event.col)))


class BrushTool(Tool):
    """Paint (or, ``erase=True`` or Shift held, erase) the active label with a disc of radius r mm."""

    cursor = "BlankCursor"

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
    def activate(self, view) -> None:
        super().activate(view)
        self._outline = QGraphicsPathItem()
        pen = QPen(QColor(255, 80, 80) if self.erase else QColor(255, 255, 0))
        pen.setCosmetic(True)
        pen.setWidthF(1.5)
        self._outline.setPen(pen)
        self._outline.setZValue(20)
        self._outline.setVisible(False)
        view.view_box.addItem(self._outline)
        if hasattr(view, "cursor_moved"):
            view.cursor_moved.connect(self._on_cursor)

    def deactivate(self) -> None:
        self._finish()
        if hasattr(self.view, "cursor_moved"):
            self.view.cursor_moved.disconnect(self._on_cursor)
        if self._outline is not None:
            self.view.view_box.removeItem(self._outline)
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
        hu_range = ctx.hu_range(self.view)
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


class _ClickTool(Tool):
    """A tool that does one edit per click, inside the volume."""

    cursor = "CrossCursor"
    description = "edit"

    def __init__(self, context: EditContext):
        self.context = context

    def press(self, event: ToolEvent) -> None:
        ctx = self.context
        volume = ctx.document.volume
        k, j, i = event.voxel
        if volume is None or not (0 <= j < volume.shape[1] and 0 <= i < volume.shape[2]):
            return
        with ctx.history.batch(self.describe(event)):
            try:
                self.click(event, (j, i))
            except EditError as exc:
                ctx.message(str(exc))

    def describe(self, event: ToolEvent) -> str:
        return self.description

    def click(self, event: ToolEvent, seed: tuple[int, int]) -> None:
        raise NotImplementedError


class FillTool(_ClickTool):
    """Flood fill on the slice, bounded by the label's own outline (and the HU range when limited)."""

    name = "fill"
    description = "flood fill"

    def click(self, event, seed) -> None:
        ctx = self.context
        hu_range = ctx.hu_range(self.view)
        if ctx.document.active_label is None and hu_range is None:
            ctx.message("Fill needs the active label's outline, or an HU range: draw an outline or limit to HU")
            return
        label = ctx.target_label(create=True)
        change = flood_fill(
            label.mask,
            event.slice_index,
            seed,
            image=ctx.document.volume.array if hu_range is not None else None,
            hu_range=hu_range,
            bounded_by_label=True,
        )
        if change.changed_voxels > 0.5 * label.mask.shape[1] * label.mask.shape[2]:
            # Leaking through a gap in the outline fills most of the slice: almost never intended.
            ctx.message("Fill would cover more than half the slice: close the outline or limit it to an HU range")
            return
        if not ctx.apply(label, change):
            ctx.message("Nothing to fill here")


class PieceTool(_ClickTool):
    """Click a piece of the active label to keep only it (``keep=True``) or to remove it."""

    def __init__(self, context: EditContext, keep: bool):
        super().__init__(context)
        self.keep = keep
        self.name = "keep piece" if keep else "remove piece"

    def describe(self, event) -> str:
        three_d = self.context.settings.three_d or event.ctrl
        return f"{'keep' if self.keep else 'remove'} {'3D lesion' if three_d else 'piece'}"

    def click(self, event, seed) -> None:
        ctx = self.context
        label = ctx.target_label(create=False)
        if label is None:
            ctx.message("No active label: select one in the label list")
            return
        op = keep_component if self.keep else remove_component
        change = op(label.mask, event.slice_index, seed, three_d=ctx.settings.three_d or event.ctrl)
        if not ctx.apply(label, change):
            ctx.message("Click inside the label to pick a piece")

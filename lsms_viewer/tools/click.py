"""Tools that make one edit per click: flood fill, and keeping or removing a piece of the label.

Each click is one undo step; Ctrl+click with the piece tools works on the 3D lesion instead of the slice.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from lsms_viewer.editing.change import EditError
from lsms_viewer.editing.components import keep_component, remove_component
from lsms_viewer.editing.fill import flood_fill
from lsms_viewer.state.edit_context import EditContext
from lsms_viewer.tools.base import Tool, ToolEvent


class ClickTool(Tool):
    """A tool that does one edit per click, inside the volume."""

    cursor = Qt.CursorShape.CrossCursor
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


class FillTool(ClickTool):
    """Flood fill on the slice, bounded by the label's own outline (and the HU range when limited)."""

    name = "fill"
    description = "flood fill"

    def click(self, event, seed) -> None:
        ctx = self.context
        hu_range = ctx.hu_range(self.host.window.levels)
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


class PieceTool(ClickTool):
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

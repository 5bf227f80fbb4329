"""Pixel logic of the editing tools (Slicer's "Logic" layer): pure numpy/scipy, no Qt.

Every operation works on a (Z, Y, X) label target - a boolean mask or a uint8/uint16 multi-label volume -
and returns a :class:`Change` (bounding box + voxels before/after) without modifying the target; the viewer
writes it through ``Document.write_region`` (``state.edit_context.EditContext.apply``), where the undo
history records it; other callers use ``change.apply(target)``.
The tools that drive these functions from the mouse are in ``lsms_viewer.tools``.
"""

from lsms_viewer.editing.brush import footprint, footprint_outline, paint_stroke, stroke_mask
from lsms_viewer.editing.change import (
    BBox,
    Change,
    EditError,
    change_from_patches,
    combine_changes,
    empty_change,
)
from lsms_viewer.editing.components import keep_component, remove_component
from lsms_viewer.editing.fill import clear_slice, fill_holes, flood_fill
from lsms_viewer.editing.interpolate import interpolate_between, interpolate_masks

__all__ = [
    "BBox",
    "Change",
    "EditError",
    "change_from_patches",
    "clear_slice",
    "combine_changes",
    "empty_change",
    "fill_holes",
    "flood_fill",
    "footprint",
    "footprint_outline",
    "interpolate_between",
    "interpolate_masks",
    "keep_component",
    "paint_stroke",
    "remove_component",
    "stroke_mask",
]

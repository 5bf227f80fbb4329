"""What the editing tools share, without Qt: the document, the undo history, the brush settings, and the
slices drawn by hand (the key slices of interpolation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lsms_viewer.editing.change import Change
from lsms_viewer.state.document import Document, Label
from lsms_viewer.state.history import UndoHistory

MIN_RADIUS_MM, MAX_RADIUS_MM = 0.25, 100.0


@dataclass
class EditSettings:
    """What the editing panel sets; shared by all tools."""

    radius_mm: float = 5.0
    threshold: bool = False  # limit brush and fill to an HU range
    hu_range: tuple[float, float] | None = None  # None: the view's current window (level +- width/2)
    three_d: bool = False  # piece tools work on the 3D lesion


class EditContext:
    """What tools need besides the view: the document, the undo history, settings, and a message callback."""

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
        #: slices touched by the user's own edits, per label, most recent last (for interpolation). They
        #: belong to the label and its study: label ids are reused, so both going forgets them.
        self.edited_slices: dict[int, list[int]] = {}
        document.events.volume_changed.connect(self.edited_slices.clear)
        document.events.label_removed.connect(lambda label: self.edited_slices.pop(label.id, None))

    def spacing_yx(self) -> tuple[float, float]:
        sx, sy, _ = self.document.volume.spacing
        return (sy, sx)

    def target_label(self, create: bool) -> Label | None:
        label = self.document.active_label
        if label is None and create and self.document.volume is not None:
            label = self.document.add_label(np.zeros(self.document.volume.shape, dtype=bool))
        return label

    def hu_range(self, window_levels: tuple[float, float]) -> tuple[float, float] | None:
        """The HU range brush and fill are limited to (None: unlimited); ``window_levels`` is the shown
        window's (low, high), the range used until the user types one."""
        if not self.settings.threshold:
            return None
        if self.settings.hu_range is not None:
            return self.settings.hu_range
        return tuple(float(v) for v in window_levels)

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

    def interpolation_keys(self, label: Label, current_slice: int) -> tuple[int, int] | None:
        """The two key slices to interpolate between: the last two slices drawn by hand (at least one
        slice apart), else the nearest slices holding the label on both sides of ``current_slice``."""
        edited = [z for z in self.edited_slices.get(label.id, []) if label.mask[z].any()]
        if len(edited) >= 2:
            a = edited[-1]
            others = [z for z in reversed(edited[:-1]) if abs(z - a) >= 2]
            if others:
                return tuple(sorted((a, others[0])))
        filled = np.flatnonzero(label.mask.any(axis=(1, 2)))
        below, above = filled[filled < current_slice], filled[filled > current_slice]
        if below.size and above.size:
            return int(below[-1]), int(above[0])
        return None

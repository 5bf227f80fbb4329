"""The change record every editing operation returns: a bounding box plus the voxels before and after.

An operation never copies the whole volume; it describes what it would change, and the caller applies the
record (and hands it to the undo history). Records are cropped to the voxels that really changed, so a
brush stroke on one slice costs a few kilobytes whatever the volume's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lsms_core.errors import LSMSError

BBox = tuple[slice, slice, slice]


class EditError(LSMSError):
    """An edit cannot be done as asked (a seed outside the image, an empty key slice, a wrong shape)."""


@dataclass
class Change:
    """Voxels ``before`` and ``after`` an edit inside ``bbox`` of the (Z, Y, X) target array.

    ``bbox`` is a tuple of three ``slice`` objects with explicit start/stop. An empty change (nothing to do)
    has zero-sized patches.
    """

    bbox: BBox
    before: np.ndarray
    after: np.ndarray
    description: str = "edit"

    @property
    def empty(self) -> bool:
        return self.before.size == 0

    @property
    def nbytes(self) -> int:
        return int(self.before.nbytes + self.after.nbytes)

    @property
    def changed_voxels(self) -> int:
        return int(np.count_nonzero(self.before != self.after))

    @property
    def slices_touched(self) -> range:
        return range(self.bbox[0].start, self.bbox[0].stop)

    def apply(self, target: np.ndarray) -> None:
        """Write the ``after`` patch into ``target`` in place."""
        if not self.empty:
            target[self.bbox] = self.after

    def revert(self, target: np.ndarray) -> None:
        """Write the ``before`` patch back into ``target`` in place."""
        if not self.empty:
            target[self.bbox] = self.before


def empty_change(dtype: np.dtype, description: str = "edit") -> Change:
    """A change that does nothing (an eraser stroke over background, a click outside the label)."""
    zero = np.zeros((0, 0, 0), dtype=dtype)
    bbox = (slice(0, 0), slice(0, 0), slice(0, 0))
    return Change(bbox, zero, zero.copy(), description)


def change_from_patches(
    before: np.ndarray, after: np.ndarray, offset: Sequence[int], description: str = "edit"
) -> Change:
    """Build a change from a region's old and new voxels, cropped to where they differ.

    ``offset`` is the (z, y, x) position of the region's first voxel in the full volume.
    """
    if before.shape != after.shape or before.ndim != 3:
        raise EditError("change", f"patches must be two 3D arrays of one shape, got {before.shape} and {after.shape}")
    differs = before != after
    if not differs.any():
        return empty_change(before.dtype, description)
    bounds = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(differs.any(axis=other))
        bounds.append((int(hit[0]), int(hit[-1]) + 1))
    local = tuple(slice(a, b) for a, b in bounds)
    bbox = tuple(slice(o + a, o + b) for o, (a, b) in zip(offset, bounds, strict=True))
    # Copies, so the record stays valid after the caller's arrays change.
    return Change(bbox, before[local].copy(), after[local].copy(), description)


def combine_changes(changes: Sequence[Change], current: np.ndarray, description: str | None = None) -> Change:
    """Merge changes already applied to ``current`` (in that order) into one record, e.g. the pieces of a
    brush stroke painted while the mouse moved, so that one Ctrl+Z undoes the whole stroke."""
    real = [c for c in changes if not c.empty]
    if not real:
        return empty_change(current.dtype, description or (changes[0].description if changes else "edit"))
    lo = [min(c.bbox[a].start for c in real) for a in range(3)]
    hi = [max(c.bbox[a].stop for c in real) for a in range(3)]
    union = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    after = current[union].copy()
    before = after.copy()
    # Undo the pieces newest first inside the union box: what remains is the state before the first one.
    for c in reversed(real):
        local = tuple(slice(s.start - o, s.stop - o) for s, o in zip(c.bbox, lo, strict=True))
        before[local] = c.before
    return change_from_patches(before, after, lo, description or real[0].description)

"""Label overlay of one slice as a uint8 index image plus a 256-entry RGBA lookup table (no Qt).

An index image is cheap to compose in numpy and never needs a per-pixel colour blend in Python; the slice
view turns it into premultiplied ARGB32 with one table lookup (``views.slice_items.LabelOverlayItem``).
Code ``id`` is a label's interior, ``id | 0x80`` its edge, so a filled label still shows a crisp border
and outline mode simply hides the interior.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from lsms_viewer.display.planes import PlaneGeometry
from lsms_viewer.state.document import Label

EDGE_BIT = 0x80


def edge_of(mask: np.ndarray) -> np.ndarray:
    """Pixels of a 2-D mask with at least one 4-neighbour outside it (the inner contour)."""
    interior = mask.copy()
    interior[1:, :] &= mask[:-1, :]
    interior[:-1, :] &= mask[1:, :]
    interior[:, 1:] &= mask[:, :-1]
    interior[:, :-1] &= mask[:, 1:]
    # Pixels on the image border count as edges: the mask ends there too.
    interior[0, :] = interior[-1, :] = False
    interior[:, 0] = interior[:, -1] = False
    return mask & ~interior


def compose_slice(labels: Sequence[Label], k: int, out: np.ndarray, plane: PlaneGeometry | None = None,
                  reaches: Callable[[Label], bool] | None = None) -> tuple[slice, slice] | None:
    """Fill ``out`` (uint8, one slice's shape) with the index image of slice ``k`` (axial, or of ``plane``).

    Later labels are drawn over earlier ones; hidden labels are skipped. Returns the (rows, cols) bounding
    box of everything drawn, or None when the slice shows no label: the view then draws only that crop
    (or nothing), which is most of the cost of an overlay on a 512x512 slice.
    """
    out[...] = 0
    box = None
    for label in labels:
        if not label.visible or (reaches is not None and not reaches(label)):
            continue
        mask = label.mask[k] if plane is None else plane.section(label.mask, k)
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(mask[rows[0]: rows[-1] + 1].any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        crop = mask[r0:r1, c0:c1]
        target = out[r0:r1, c0:c1]
        target[crop] = label.id
        # Edges of the crop are edges of the mask only where the mask ends at the image border.
        edges = edge_of(np.pad(crop, 1))[1:-1, 1:-1]
        if r0 == 0:
            edges[0] |= crop[0]
        if c0 == 0:
            edges[:, 0] |= crop[:, 0]
        if r1 == mask.shape[0]:
            edges[-1] |= crop[-1]
        if c1 == mask.shape[1]:
            edges[:, -1] |= crop[:, -1]
        target[edges] = label.id | EDGE_BIT
        if box is None:
            box = [r0, r1, c0, c1]
        else:
            box = [min(box[0], r0), max(box[1], r1), min(box[2], c0), max(box[3], c1)]
    if box is None:
        return None
    return slice(box[0], box[1]), slice(box[2], box[3])


def lookup_table(labels: Iterable[Label], mode: str = "fill") -> np.ndarray:
    """256x4 RGBA table for ``compose_slice`` codes. ``mode`` is ``"fill"`` or ``"outline"``."""
    if mode not in ("fill", "outline"):
        raise ValueError(f"unknown overlay mode {mode!r}")
    lut = np.zeros((256, 4), np.uint8)
    for label in labels:
        r, g, b = label.color
        fill_alpha = 0 if mode == "outline" else round(255 * label.opacity)
        # The border stays visible even at low fill opacity, so a faint tint never hides the extent.
        edge_alpha = round(255 * max(label.opacity, 0.85 if mode == "outline" else min(1.0, label.opacity + 0.35)))
        lut[label.id] = (r, g, b, fill_alpha)
        lut[label.id | EDGE_BIT] = (r, g, b, edge_alpha)
    return lut


class LabelExtents:
    """Which slices of a coronal or sagittal plane each label may reach, so such a view skips the labels its
    slice does not cross without reading their masks (a strided section of a 3-D mask costs milliseconds).

    An extent is a superset: it is computed from the whole mask once, then only grows with the axial
    slices an edit changed (an erased voxel may leave a slice marked, which costs a read, never a miss).
    """

    def __init__(self, normal_axis: int):
        self._axis = 2 - normal_axis  # the plane's normal as an axis of a (Z, Y, X) mask
        self._axes = tuple(a for a in range(3) if a != self._axis)  # reduced over the two others
        self._extents: dict[int, np.ndarray] = {}

    def clear(self) -> None:
        self._extents.clear()

    def forget(self, label: Label) -> None:
        self._extents.pop(label.id, None)

    def grow(self, label: Label, slices: range) -> None:
        """``label``'s mask changed on axial ``slices``."""
        extent = self._extents.get(label.id)
        if extent is None or not len(slices):
            return  # computed in full when next asked
        extent |= label.mask[slices.start:slices.stop].any(axis=self._axes)

    def reaches(self, label: Label, index: int) -> bool:
        extent = self._extents.get(label.id)
        if extent is None or extent.shape[0] != label.mask.shape[self._axis]:
            extent = self._extents[label.id] = label.mask.any(axis=self._axes)
        return bool(extent[index])

"""Outlines of a region on one slice, as polylines in the slice view's millimetre coordinates (Qt-free).

The view places pixel (row, col) on the square [col * sx, (col + 1) * sx] x [row * sy, (row + 1) * sy], so
a contour traced through pixel centres is shifted by half a pixel before scaling.
"""

from __future__ import annotations

import numpy as np


def outline_mm(mask: np.ndarray, spacing_xy: tuple[float, float]) -> list[np.ndarray]:
    """Closed polylines ((K, 2) arrays of x, y in mm) around every piece of a 2-D bool ``mask``."""
    from skimage.measure import find_contours

    m = np.asarray(mask, bool)
    if not m.any():
        return []
    rows, cols = np.nonzero(m)
    r0, c0 = max(rows.min() - 1, 0), max(cols.min() - 1, 0)
    crop = np.pad(m[r0:rows.max() + 2, c0:cols.max() + 2], 1)  # padded so pieces at the border close
    sx, sy = spacing_xy
    out = []
    for contour in find_contours(crop.astype(np.float32), 0.5):
        r = contour[:, 0] - 1 + r0 + 0.5
        c = contour[:, 1] - 1 + c0 + 0.5
        out.append(np.stack([c * sx, r * sy], axis=1))
    return out


def label_anchor_mm(mask: np.ndarray, spacing_xy: tuple[float, float]) -> tuple[float, float] | None:
    """Where a region's number is written: just above its top-left corner, in mm (None for an empty mask)."""
    rows, cols = np.nonzero(mask)
    if not rows.size:
        return None
    sx, sy = spacing_xy
    return float(cols.min()) * sx, float(rows.min()) * sy

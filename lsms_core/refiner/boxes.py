"""Boxes for a box-prompted delineation network, from the coarse masks the referring network draws.

Pure numpy, no model: what is measured (README, "Two-stage referring") is which box a slice gets.
Boxes are (x0, y0, x1, y1) on the native pixel grid, corners inclusive, as the CLI's ``--box`` reads them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]


def mask_box(mask: np.ndarray) -> Box | None:
    """The tight box of a 2-D mask, or None when it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def pad_box(box: Box, margin_px: tuple[float, float], shape: tuple[int, int]) -> Box:
    """``box`` widened by (rows, columns) pixels on every side, clipped to the image."""
    my, mx = int(round(margin_px[0])), int(round(margin_px[1]))
    h, w = shape
    x0, y0, x1, y1 = box
    return max(0, x0 - mx), max(0, y0 - my), min(w - 1, x1 + mx), min(h - 1, y1 + my)


def check_box(box, shape: tuple[int, int], what: str = "box") -> Box:
    """A box as four ints inside an image of ``shape``, or ValueError saying what is wrong."""
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected four integers x0, y0, x1, y1, got {box!r}") from None
    h, w = shape
    if not (0 <= x0 <= x1 < w and 0 <= y0 <= y1 < h):
        raise ValueError(f"{what}: ({x0}, {y0}, {x1}, {y1}) is not inside the {w}x{h} image "
                         f"(need 0 <= x0 <= x1 < {w} and 0 <= y0 <= y1 < {h}, corners inclusive)")
    return x0, y0, x1, y1


def grown_region(raw: np.ndarray, probs: np.ndarray, low: float) -> np.ndarray:
    """``raw`` plus the parts of ``probs > low`` connected to it.

    A coarse referring map is confident only at the lesion's core; its lower contour still follows the
    lesion, so a box around the connected low-threshold region covers more of it than the raw box."""
    low_mask = probs > low
    labels, _ = ndimage.label(low_mask | raw)
    keep = np.unique(labels[raw])
    keep = keep[keep > 0]
    return np.isin(labels, keep) if keep.size else raw.copy()


def box_iou(a: Box, b: Box) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / area


def component_in_box(mask: np.ndarray, box: Box) -> np.ndarray:
    """The connected parts of ``mask`` that reach into ``box`` (a decoder sometimes adds a far-away blob of
    similar tissue; re-boxing around it would make the box run away)."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    x0, y0, x1, y1 = box
    inside = np.unique(labels[y0:y1 + 1, x0:x1 + 1])
    inside = inside[inside > 0]
    return np.isin(labels, inside)

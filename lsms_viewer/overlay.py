"""Label overlay of one slice as a uint8 index image plus a 256-entry RGBA lookup table (no Qt).

A uint8 image with a colour table is the cheapest thing pyqtgraph can draw (an indexed QImage), and it
never needs a per-pixel colour blend in Python. Code ``id`` is a label's interior, ``id | 0x80`` its
edge, so a filled label still shows a crisp border and outline mode simply hides the interior.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lsms_viewer.document import Label

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


def compose_slice(labels: Sequence[Label], k: int, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (uint8, one slice's shape) with the index image of slice ``k``.

    Later labels are drawn over earlier ones; hidden labels are skipped. Returns ``out``.
    """
    out[...] = 0
    for label in labels:
        if not label.visible:
            continue
        mask = label.mask[k]
        if not mask.any():
            continue
        out[mask] = label.id
        out[edge_of(mask)] = label.id | EDGE_BIT
    return out


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

"""Interpolation of a label between two edited (key) slices.

Shape-based interpolation (Raya & Udupa 1990; Herman et al. 1992): each key slice's mask becomes a signed
distance map in millimetres (negative inside), the maps are blended linearly along z, and the blend's
negative part is the mask of each slice in between. It reproduces both key slices exactly, morphs one
outline into the other (a lesion growing or shrinking), and needs only scipy. The key shapes are aligned on
their centroids first, so a lesion drifting between the key slices moves rather than fading out. ITK's
MorphologicalContourInterpolator would be the alternative, but it is not part of the SimpleITK wheel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from lsms_viewer.editing import _target as tg
from lsms_viewer.editing.change import Change, EditError, change_from_patches, empty_change


def _signed_distance(mask: np.ndarray, spacing_yx: Sequence[float]) -> np.ndarray:
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing_yx)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing_yx)
    return outside - inside


def interpolate_masks(
    mask0: np.ndarray, mask1: np.ndarray, steps: int, spacing_yx: Sequence[float] = (1.0, 1.0)
) -> np.ndarray:
    """``steps`` boolean slices evenly between ``mask0`` and ``mask1`` (both excluded), shape (steps, Y, X).

    The key shapes are first moved onto their common centroid and the blend is moved back along the line
    between the centroids, so a lesion that drifts from one slice to the next (even without overlap)
    moves smoothly instead of vanishing halfway, as with plain shape-based interpolation.
    """
    mask0, mask1 = np.asarray(mask0, bool), np.asarray(mask1, bool)
    out = np.zeros((steps, *mask0.shape), dtype=bool)
    if steps <= 0:
        return out[:0]
    union = mask0 | mask1
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    # Every intermediate shape lies in the union's box (plus a margin): compute only there.
    margin = 2
    box = (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, mask0.shape[0])),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, mask0.shape[1])),
    )
    m0, m1 = mask0[box], mask1[box]
    d0 = _signed_distance(m0, spacing_yx)
    d1 = _signed_distance(m1, spacing_yx)
    delta = np.array(ndimage.center_of_mass(m1)) - np.array(ndimage.center_of_mass(m0))
    far = float(np.hypot(*(np.array(m0.shape) * np.asarray(spacing_yx, float))))
    for i in range(steps):
        t = (i + 1) / (steps + 1)
        # Key shapes moved to where the lesion is at t: mask0 forward by t*delta, mask1 back by (1-t)*delta.
        a = ndimage.shift(d0, t * delta, order=1, mode="constant", cval=far) if delta.any() else d0
        b = ndimage.shift(d1, -(1 - t) * delta, order=1, mode="constant", cval=far) if delta.any() else d1
        out[i][box] = (1.0 - t) * a + t * b < 0
    return out


def interpolate_between(
    target: np.ndarray,
    z0: int,
    z1: int,
    spacing_yx: Sequence[float],
    value: int | bool = True,
    *,
    overwrite: bool = True,
) -> Change:
    """Replace label ``value`` on the slices strictly between key slices ``z0`` and ``z1`` by the
    interpolation of its masks on those two slices. Both key slices must hold the label."""
    tg.check_target(target, value)
    z0, z1 = sorted((tg.check_slice(target, z0), tg.check_slice(target, z1)))
    what = "interpolation"
    if z1 - z0 < 2:
        return empty_change(target.dtype, what)
    m0, m1 = tg.is_label(target[z0], value), tg.is_label(target[z1], value)
    for z, m in ((z0, m0), (z1, m1)):
        if not m.any():
            raise EditError("interpolation", f"key slice {z} holds none of the label; draw it there first")
    filled = interpolate_masks(m0, m1, z1 - z0 - 1, spacing_yx)
    before = target[z0 + 1 : z1]
    after = before.copy()
    after[tg.is_label(before, value)] = tg.background(target)
    after[filled & tg.paintable(before, value, overwrite)] = tg.fill_value(target, value)
    return change_from_patches(before, after, (z0 + 1, 0, 0), what)

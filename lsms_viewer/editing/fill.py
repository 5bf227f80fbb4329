"""In-slice flood fill, fill holes and clear slice."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lsms_viewer.editing import _target as tg
from lsms_viewer.editing.change import Change, EditError, change_from_patches, empty_change

# 4-connectivity for filling: a contour drawn with the brush touches itself diagonally, and an
# 8-connected fill would leak through those diagonal gaps.
_FOUR = ndimage.generate_binary_structure(2, 1)


def flood_fill(
    target: np.ndarray,
    z: int,
    seed_yx,
    value: int | bool = True,
    *,
    image: np.ndarray | None = None,
    hu_range: tuple[float, float] | None = None,
    bounded_by_label: bool = True,
    overwrite: bool = True,
) -> Change:
    """Fill the 4-connected region around ``seed_yx`` on slice ``z`` with label ``value``.

    The region grows through voxels inside ``hu_range`` (if given, needs ``image``) and, when
    ``bounded_by_label``, stops at the label itself (fill the inside of an outline). At least one of the two
    must limit it. Seeding on a voxel that cannot be filled changes nothing.
    """
    tg.check_target(target, value)
    z = tg.check_slice(target, z)
    tg.check_image(image, target, hu_range)
    y, x = tg.check_seed(target, seed_yx)
    if hu_range is None and not bounded_by_label:
        raise EditError("flood fill", "needs an HU range or the label as its border, else it fills the whole slice")
    region = target[z]
    fillable = tg.paintable(region, value, overwrite)
    if bounded_by_label:
        fillable &= ~tg.is_label(region, value)
    limit = tg.in_hu_range(image[z], hu_range) if hu_range is not None else None
    if limit is not None:
        fillable &= limit
    what = "flood fill"
    if not fillable[y, x]:
        return empty_change(target.dtype, what)
    components, _ = ndimage.label(fillable, structure=_FOUR)
    grown = components == components[y, x]
    after = region.copy()
    after[grown] = tg.fill_value(target, value)
    return change_from_patches(region[None], after[None], (z, 0, 0), what)


def fill_holes(
    target: np.ndarray, value: int | bool = True, z: int | None = None, *, overwrite: bool = False
) -> Change:
    """Fill the holes of label ``value`` slice by slice, on slice ``z`` or (``z=None``) on every slice.

    Holes are judged in 2D on axial slices, as the annotator sees them; a 3D fill would miss a ring whose
    inside opens to the next slice. By default voxels of other labels inside a hole are kept (a lesion
    inside a lesion's ring stays itself).
    """
    tg.check_target(target, value)
    what = "fill holes"
    if z is not None:
        zs = [tg.check_slice(target, z)]
    else:
        zs = [int(k) for k in np.flatnonzero(tg.is_label(target, value).any(axis=(1, 2)))]
    if not zs:
        return empty_change(target.dtype, what)
    z0, z1 = zs[0], zs[-1] + 1
    before = target[z0:z1]
    after = before.copy()
    for k in zs:
        region = after[k - z0]
        label = tg.is_label(region, value)
        holes = ndimage.binary_fill_holes(label, structure=_FOUR) & ~label
        region[holes & tg.paintable(region, value, overwrite)] = tg.fill_value(target, value)
    return change_from_patches(before, after, (z0, 0, 0), what)


def clear_slice(target: np.ndarray, z: int, value: int | bool = True) -> Change:
    """Remove label ``value`` from slice ``z`` (other labels stay)."""
    tg.check_target(target, value)
    z = tg.check_slice(target, z)
    region = target[z : z + 1]
    after = region.copy()
    after[tg.is_label(region, value)] = tg.background(target)
    return change_from_patches(region, after, (z, 0, 0), "clear slice")

"""Click to keep, or to remove, one connected component of a label."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lsms_viewer.editing import _target as tg
from lsms_viewer.editing.change import Change, change_from_patches, empty_change


def _label_bounds(label: np.ndarray) -> tuple[slice, ...] | None:
    objects = ndimage.find_objects(label.astype(np.uint8))
    return objects[0] if objects else None


def _component_edit(target, z, seed_yx, value, three_d: bool, keep: bool) -> Change:
    tg.check_target(target, value)
    z = tg.check_slice(target, z)
    y, x = tg.check_seed(target, seed_yx)
    what = "keep component" if keep else "remove component"
    if not bool(tg.is_label(target[z, y, x], value)):
        return empty_change(target.dtype, what)
    if three_d:
        # Work inside the label's bounding box: labelling a whole 512x512x300 volume would cost ~1 s.
        box = _label_bounds(tg.is_label(target, value))
        offset = tuple(s.start for s in box)
        region = target[box]
        seed = (z - offset[0], y - offset[1], x - offset[2])
        structure = ndimage.generate_binary_structure(3, 3)
    else:
        region = target[z : z + 1]
        offset = (z, 0, 0)
        seed = (0, y, x)
        # In-slice connectivity only: zero planes around the slice's 2D structure, so slices never join.
        structure = np.zeros((3, 3, 3), dtype=bool)
        structure[1] = ndimage.generate_binary_structure(2, 2)
    label = tg.is_label(region, value)
    components, _ = ndimage.label(label, structure=structure)
    clicked = components == components[seed]
    drop = label & ~clicked if keep else clicked
    after = region.copy()
    after[drop] = tg.background(target)
    return change_from_patches(region, after, offset, what)


def keep_component(
    target: np.ndarray, z: int, seed_yx, value: int | bool = True, *, three_d: bool = False
) -> Change:
    """Keep only the connected piece of label ``value`` under the click, removing its other pieces.

    ``three_d=False``: pieces are judged on slice ``z`` and only that slice changes. ``three_d=True``: the
    piece is the 3D (26-connected) lesion through the slices, and every other piece in the volume goes.
    A click outside the label changes nothing.
    """
    return _component_edit(target, z, seed_yx, value, three_d, keep=True)


def remove_component(
    target: np.ndarray, z: int, seed_yx, value: int | bool = True, *, three_d: bool = False
) -> Change:
    """Remove the connected piece of label ``value`` under the click (on slice ``z``, or in 3D)."""
    return _component_edit(target, z, seed_yx, value, three_d, keep=False)

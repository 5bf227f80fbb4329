"""How an edit writes one label into a target: a boolean mask, or a uint8/uint16 multi-label volume.

In a multi-label volume each voxel holds one label value (0 = background); painting label 3 must not
erase label 5 unless the user allows overwriting, and erasing label 3 must leave label 5 alone.
"""

from __future__ import annotations

import numpy as np

from lsms_viewer.editing.change import EditError


def check_target(target: np.ndarray, value: int | bool) -> None:
    if target.ndim != 3:
        raise EditError("label volume", f"expected a (Z, Y, X) array, got shape {target.shape}")
    if target.dtype == np.bool_:
        if not value:
            raise EditError("label value", "a boolean mask is painted with True, not False")
        return
    if target.dtype not in (np.uint8, np.uint16):
        raise EditError("label volume", f"expected bool, uint8 or uint16 voxels, got {target.dtype}")
    info = np.iinfo(target.dtype)
    if not 1 <= int(value) <= info.max:
        raise EditError("label value", f"{value} is not a label value of a {target.dtype} volume (1..{info.max})")


def fill_value(target: np.ndarray, value: int | bool):
    return True if target.dtype == np.bool_ else target.dtype.type(value)


def background(target: np.ndarray):
    return False if target.dtype == np.bool_ else target.dtype.type(0)


def is_label(region: np.ndarray, value: int | bool) -> np.ndarray:
    """Voxels of ``region`` that belong to the label."""
    return region if region.dtype == np.bool_ else region == value


def paintable(region: np.ndarray, value: int | bool, overwrite: bool) -> np.ndarray:
    """Voxels the label may be painted on: all of them, or (no overwrite) background and itself only."""
    if overwrite or region.dtype == np.bool_:
        return np.ones(region.shape, dtype=bool)
    return (region == 0) | (region == value)


def in_hu_range(image_region: np.ndarray, hu_range: tuple[float, float] | None) -> np.ndarray | None:
    if hu_range is None:
        return None
    lo, hi = float(hu_range[0]), float(hu_range[1])
    if lo > hi:
        raise EditError("HU range", f"lower bound {lo:g} is above upper bound {hi:g}")
    return (image_region >= lo) & (image_region <= hi)


def check_image(image: np.ndarray | None, target: np.ndarray, hu_range) -> None:
    if hu_range is None:
        return
    if image is None:
        raise EditError("HU range", "a threshold needs the CT image, none was given")
    if image.shape != target.shape:
        raise EditError("CT image", f"shape {image.shape} differs from the label volume's {target.shape}")


def check_slice(target: np.ndarray, z: int) -> int:
    z = int(z)
    if not 0 <= z < target.shape[0]:
        raise EditError("slice", f"index {z} is outside the volume's 0..{target.shape[0] - 1}")
    return z


def check_seed(target: np.ndarray, seed_yx) -> tuple[int, int]:
    y, x = (int(round(float(c))) for c in seed_yx)
    if not (0 <= y < target.shape[1] and 0 <= x < target.shape[2]):
        raise EditError("seed", f"point (row {y}, column {x}) is outside the {target.shape[1]}x{target.shape[2]} slice")
    return y, x

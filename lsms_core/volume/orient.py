"""Exact reorientation between a file's own voxel grid and the radiological (nearest-LPS) layout.

Only axis permutations and flips are used, never resampling, so every voxel keeps its value and its
world position (like SimpleITK's ``DICOMOrient(image, "LPS")``). In the LPS layout ``array[k]`` is an
axial slice as a radiologist views it: rows run anterior -> posterior, columns patient right -> left.
"""

from __future__ import annotations

import itertools

import numpy as np

from lsms_core.volume.volume import SourceGrid, Volume


def nearest_lps_axes(direction: np.ndarray) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """For each world axis (x=L, y=P, z=S) the index axis closest to it, and whether it points backwards.

    The permutation maximises the summed |cosines| over all six candidates, so oblique grids (even at
    45 degrees) always get a consistent, deterministic assignment.
    """
    direction = np.asarray(direction, dtype=np.float64)
    best = max(itertools.permutations(range(3)),
               key=lambda p: (sum(abs(direction[a, p[a]]) for a in range(3)), tuple(-v for v in p)))
    flips = tuple(bool(direction[a, best[a]] < 0) for a in range(3))
    return tuple(best), flips


def _permute_array(array: np.ndarray, permutation, flips) -> np.ndarray:
    # numpy axis n holds index axis 2-n (array is [k, j, i]).
    out = np.transpose(array, [2 - permutation[2], 2 - permutation[1], 2 - permutation[0]])
    for a in range(3):
        if flips[a]:
            out = np.flip(out, axis=2 - a)
    return out


def reorient_to_lps(volume: Volume, files=()) -> Volume:
    """Return ``volume`` in nearest-LPS layout, with ``source_grid`` describing ``volume``'s own grid.

    The array is made contiguous so slicing ``array[k]`` is cheap; if no change is needed the array is
    shared, not copied.
    """
    permutation, flips = nearest_lps_axes(volume.direction)
    grid = SourceGrid(permutation=permutation, flips=flips, shape=volume.shape, spacing=volume.spacing,
                      origin=volume.origin, direction=volume.direction.copy(),
                      files=tuple(files))
    if grid.is_identity:
        out = Volume(volume.array, volume.spacing, volume.origin, volume.direction.copy(), volume.meta,
                     volume.source, volume.warnings, grid)
        return out
    array = np.ascontiguousarray(_permute_array(volume.array, permutation, flips))
    src_sizes = volume.shape[::-1]  # (X, Y, Z) = sizes of i, j, k
    corner = np.zeros(3)
    for a in range(3):
        if flips[a]:
            corner[permutation[a]] = src_sizes[permutation[a]] - 1
    origin = volume.index_to_world(corner)
    direction = np.empty((3, 3))
    for a in range(3):
        direction[:, a] = volume.direction[:, permutation[a]] * (-1.0 if flips[a] else 1.0)
    spacing = tuple(volume.spacing[permutation[a]] for a in range(3))
    return Volume(array, spacing, tuple(origin), direction, volume.meta, volume.source, volume.warnings,
                  grid)


def to_source_array(array: np.ndarray, grid: SourceGrid) -> np.ndarray:
    """Map an array on the loaded (LPS) grid back onto the file's own grid: exact inverse, no copy if
    nothing moves (callers that need a contiguous buffer copy it themselves)."""
    inverse = [0, 0, 0]
    for a, p in enumerate(grid.permutation):
        inverse[p] = a
    out = array
    for a in range(3):
        if grid.flips[a]:
            out = np.flip(out, axis=2 - a)
    out = np.transpose(out, [2 - inverse[2], 2 - inverse[1], 2 - inverse[0]])
    if tuple(out.shape) != tuple(grid.shape):
        raise ValueError(f"array shape {array.shape} does not map onto the source grid {grid.shape}")
    return out


def from_source_array(array: np.ndarray, grid: SourceGrid) -> np.ndarray:
    """Map an array on the file's own grid onto the loaded (LPS) grid (the inverse of to_source_array)."""
    if tuple(array.shape) != tuple(grid.shape):
        raise ValueError(f"array shape {array.shape} differs from the source grid {grid.shape}")
    return _permute_array(array, grid.permutation, grid.flips)


def source_volume(volume: Volume, array: np.ndarray | None = None) -> Volume:
    """``volume`` (or another array on its grid) expressed on its file's own grid, with that geometry."""
    data = volume.array if array is None else array
    grid = volume.source_grid
    if grid is None:
        return volume.with_array(data) if array is not None else volume
    return Volume(to_source_array(data, grid), grid.spacing, grid.origin, grid.direction.copy(),
                  dict(volume.meta), volume.source, [], None)

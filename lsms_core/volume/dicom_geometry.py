"""DICOM geometry: from a series' frames to one exact grid (consistent stack, order along the normal,
duplicates, separate blocks, missing slices, uneven spacing, gantry tilt).

Part of the DICOM reader (``lsms_core.volume.dicom``).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from lsms_core.errors import VolumeError
from lsms_core.volume.dicom_header import _frame_attr, _get, _number
from lsms_core.volume.dicom_series import SeriesInfo, _Frame

# A gantry tilt below this (degrees) is position rounding noise, not a tilt.
_TILT_TOLERANCE_DEG = 0.01


# --------------------------------------------------------------------------------------------- assembly


# Direction cosines closer than this are one orientation (scanners write them with 5-6 decimals).
_ORIENTATION_TOLERANCE = 1e-3


def _orientation_keys(frames: list[_Frame]) -> list[int | None]:
    """A group number per frame: frames whose cosines agree within the tolerance share it (clustering
    against each group's first member, so values straddling a rounding boundary never split a stack)."""
    reps: list[np.ndarray] = []
    keys: list[int | None] = []
    for f in frames:
        if f.orientation is None:
            keys.append(None)
            continue
        for n, rep in enumerate(reps):
            if np.max(np.abs(rep - f.orientation)) < _ORIENTATION_TOLERANCE:
                keys.append(n)
                break
        else:
            reps.append(f.orientation)
            keys.append(len(reps) - 1)
    return keys


def _select_consistent(frames: list[_Frame], warn: list[str]) -> list[_Frame]:
    """Keep the largest group of frames sharing size and orientation; report the others."""
    groups: dict[tuple, list[_Frame]] = defaultdict(list)
    for f, orientation in zip(frames, _orientation_keys(frames), strict=True):
        groups[(f.rows, f.cols, orientation)].append(f)
    if len(groups) == 1:
        return frames
    key = max(groups, key=lambda k: (len(groups[k]), k[0] * k[1]))
    dropped = len(frames) - len(groups[key])
    kinds = []
    if len({k[:2] for k in groups}) > 1:
        kinds.append("image sizes")
    if len({k[2] for k in groups}) > 1:
        kinds.append("orientations")
    warn.append(f"the series mixes {' and '.join(kinds)} ({len(groups)} groups); kept the largest "
                f"consistent stack of {len(groups[key])} images ({key[0]}x{key[1]}) and left out {dropped}")
    return groups[key]


def _sorted_positions(frames: list[_Frame], what, warn: list[str]):
    """Sort frames along the normal, drop duplicates; returns (frames, positions, normal, row, col)."""
    iop = frames[0].orientation
    if iop is None or any(f.position is None for f in frames):
        if len(frames) > 1:
            warn.append("no ImagePositionPatient/ImageOrientationPatient: slices ordered by InstanceNumber, "
                        "patient geometry unknown (axial, origin 0 assumed)")
        frames = sorted(frames, key=lambda f: (f.instance, str(f.path), f.frame or 0))
        return frames, None, np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    if min(np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])) < 1e-6:
        # Written but empty: the rows and columns point nowhere, so no slice can be placed (not the same
        # as a missing tag, which at least leaves the stack order to InstanceNumber).
        raise VolumeError(what, f"ImageOrientationPatient {list(iop)} has a zero direction: the slice "
                                "geometry is undefined")
    row = iop[:3] / np.linalg.norm(iop[:3])
    col = iop[3:] / np.linalg.norm(iop[3:])
    if abs(float(row @ col)) > 1e-3:
        raise VolumeError(what, f"ImageOrientationPatient {list(iop)} is not orthogonal")
    normal = np.cross(row, col)
    proj = np.array([float(f.position @ normal) for f in frames])
    order = sorted(range(len(frames)), key=lambda n: (proj[n], frames[n].instance, str(frames[n].path),
                                                     frames[n].frame or 0))
    frames = [frames[n] for n in order]
    proj = proj[order]
    keep = [0]
    for n in range(1, len(frames)):
        if abs(proj[n] - proj[keep[-1]]) > 1e-3:
            keep.append(n)
    if len(keep) < len(frames):
        dup = len(frames) - len(keep)
        warn.append(f"{dup} duplicate slice(s) at an already-filled position dropped (several acquisitions "
                    "or echoes in one series?)")
        frames = [frames[n] for n in keep]
    positions = np.stack([f.position for f in frames])
    return frames, positions, normal, row, col


def _default_slice_step(info: SeriesInfo) -> float:
    ds = info._header
    for name in ("SpacingBetweenSlices", "SliceThickness"):
        value = _number(_get(ds, name), 0.0) if ds is not None else 0.0
        if value > 0:
            return abs(value)
    value = _frame_attr(ds, 0, "PixelMeasuresSequence", "SliceThickness") if ds is not None else None
    value = _number(value, 0.0)
    return abs(value) if value > 0 else 1.0


_MAX_FILLED_GAP = 5  # a larger hole is two separate blocks of slices, not a few lost files


def _largest_block(frames, positions, normal, warn: list[str]):
    """Split the stack where the step exceeds _MAX_FILLED_GAP missing slices; keep the largest block."""
    if positions is None or len(frames) < 3:
        return frames, positions
    diffs = np.diff(positions @ normal)
    base = float(np.median(diffs))
    cuts = [n + 1 for n, d in enumerate(diffs) if d > (_MAX_FILLED_GAP + 1.5) * base]
    if not cuts:
        return frames, positions
    bounds = [0, *cuts, len(frames)]
    blocks = [(bounds[b], bounds[b + 1]) for b in range(len(bounds) - 1)]
    start, stop = max(blocks, key=lambda b: (b[1] - b[0], -b[0]))
    warn.append(f"the slices form {len(blocks)} separate blocks along the normal; kept the largest "
                f"({stop - start} slices) and left out {len(frames) - (stop - start)}")
    return frames[start:stop], positions[start:stop]


def _lattice(frames, positions, normal, info: SeriesInfo, warn: list[str]):
    """Grid index of every frame, number of grid slices, slice step vector."""
    n = len(frames)
    if positions is None or n == 1:
        step = _default_slice_step(info)
        return list(range(n)), n, normal * step
    proj = positions @ normal
    diffs = np.diff(proj)
    base = float(np.median(diffs))
    index = [0]
    gaps = []
    uneven = False
    for d in diffs:
        ratio = d / base
        whole = int(round(ratio))
        if whole >= 2 and abs(ratio - whole) < 0.1:
            gaps.append(whole - 1)
        elif abs(d - base) > max(0.01 * base, 1e-3):
            uneven = True
        index.append(index[-1] + max(whole, 1))
    count = index[-1] + 1
    if gaps:
        warn.append(f"{sum(gaps)} missing slice(s) in {len(gaps)} gap(s): filled with blank (air) slices so "
                    "the other slices keep their true positions")
    if uneven:
        warn.append(f"uneven slice spacing ({diffs.min():.3f} to {diffs.max():.3f} mm): the volume uses the "
                    f"mean step; slices may be displaced by up to {np.abs(diffs - base).max():.3f} mm")
    step = (positions[-1] - positions[0]) / (count - 1)
    along = float(step @ normal)
    lateral = step - along * normal
    tilt = math.degrees(math.atan2(float(np.linalg.norm(lateral)), along))
    if tilt > _TILT_TOLERANCE_DEG:
        warn.append(f"gantry tilt of {tilt:.2f} degrees: the grid is sheared; kept exactly (NIfTI sform) "
                    "without resampling")
    else:
        step = along * normal
    return index, count, step


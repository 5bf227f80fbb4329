"""DICOM series: the frames of each file, scanning a folder's headers, grouping the images into series and
choosing the series to load.

Part of the DICOM reader (``lsms_core.volume.dicom``).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import Cancelled, VolumeError
from lsms_core.volume.dicom_header import (
    _NATIVE_SYNTAXES,
    _floats,
    _frame_attr,
    _get,
    _image_problem,
    _looks_like_dicom,
    _number,
    _read_header,
    _transfer_syntax,
)

Progress = Callable[[int, int], None] | None
Cancel = Callable[[], bool] | None


class SeriesChoiceError(VolumeError):
    """A folder holds several series and none is the obvious pick; ``series`` lists them."""

    def __init__(self, what, why: str, series: list[SeriesInfo]):
        super().__init__(what, why)
        self.series = series


@dataclass
class _Frame:
    """One 2-D image of a stack: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    frame: int | None
    rows: int
    cols: int
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) mm
    slope: float
    intercept: float
    instance: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    native_order: str | None  # '<' or '>' when pixels can be read straight from the file
    pixel_offset: int | None = None
    bad_slope: str | None = None  # the RescaleSlope as written when it was 0 or not a number (1 is used)


@dataclass
class SeriesInfo:
    """A series (or a multi-frame file) found in a folder, as shown to the user to choose from."""

    uid: str
    description: str
    modality: str
    slices: int
    rows: int
    cols: int
    files: list[Path] = field(default_factory=list, repr=False)
    multi_frame: bool = False
    study_date: str = ""
    _frames: list[_Frame] = field(default_factory=list, repr=False)
    _header: object = field(default=None, repr=False)

    @property
    def voxels(self) -> int:
        return self.slices * self.rows * self.cols

    def summary(self) -> str:
        kind = "multi-frame file" if self.multi_frame else f"{len(self.files)} files"
        desc = self.description or "(no description)"
        return (f"{self.uid}  {self.modality or '?'}  {desc!r}  {self.slices} slices of "
                f"{self.rows}x{self.cols}  ({kind})")


@dataclass
class ScanResult:
    series: list[SeriesInfo]
    notes: list[str]  # files skipped and why


# --------------------------------------------------------------------------------------------- frames


def _slope(value, default: float) -> tuple[float, str | None]:
    """RescaleSlope as used, and the value as written when it had to be replaced by ``default`` (0, NaN,
    not a number): a zero slope would make every voxel the intercept."""
    slope = _number(value, math.nan)
    if value is None:
        return default, None
    if not math.isfinite(slope) or slope == 0:
        return default, str(value)
    return slope, None


def _frames_of(path: Path, ds) -> list[_Frame]:
    rows, cols = int(_number(_get(ds, "Rows"), 0)), int(_number(_get(ds, "Columns"), 0))
    bits = int(_number(_get(ds, "BitsAllocated", 16), 16))
    stored = int(_number(_get(ds, "BitsStored", bits), bits))
    signed = int(_number(_get(ds, "PixelRepresentation", 0), 0)) == 1
    syntax = _transfer_syntax(ds)
    order = _NATIVE_SYNTAXES.get(syntax) if bits in (8, 16, 32) else None
    fast = getattr(ds, "_lsms_pixel", None)
    offset = None
    if fast is not None:
        offset, length = (fast[0] if order is not None else None), fast[1]
    else:
        raw = ds._dict.get(0x7FE00010)
        length = raw.length if raw is not None else 0
        if order is not None and raw is not None and getattr(raw, "value_tell", None) is not None \
                and getattr(raw, "value", None) is None and raw.length not in (0, 0xFFFFFFFF):
            offset = int(raw.value_tell)
    n_frames = int(_number(_get(ds, "NumberOfFrames", 1), 1))
    frame_bytes = rows * cols * bits // 8
    if offset is not None and length < n_frames * frame_bytes:
        raise VolumeError(path, f"pixel data holds {length} bytes, {n_frames} frame(s) of "
                                f"{rows}x{cols}x{bits} bits need {n_frames * frame_bytes}")
    top_ipp = _floats(_get(ds, "ImagePositionPatient"), 3)
    top_iop = _floats(_get(ds, "ImageOrientationPatient"), 6)
    top_ps = _floats(_get(ds, "PixelSpacing") or _get(ds, "ImagerPixelSpacing"), 2)
    top_slope, top_bad = _slope(_get(ds, "RescaleSlope"), 1.0)
    top_inter = _number(_get(ds, "RescaleIntercept", 0.0), 0.0)
    instance = int(_number(_get(ds, "InstanceNumber", 0), 0))
    if n_frames == 1 and _get(ds, "PerFrameFunctionalGroupsSequence") is None:
        return [_Frame(path, None, rows, cols, top_ipp, top_iop,
                       tuple(top_ps) if top_ps is not None else None, top_slope, top_inter, instance,
                       bits, stored, signed, order if offset is not None else None, offset, top_bad)]
    frames = []
    grid_offsets = _get(ds, "GridFrameOffsetVector")  # RT dose: offsets along the normal
    for f in range(n_frames):
        ipp = _floats(_frame_attr(ds, f, "PlanePositionSequence", "ImagePositionPatient"), 3)
        iop = _floats(_frame_attr(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        ps = _floats(_frame_attr(ds, f, "PixelMeasuresSequence", "PixelSpacing"), 2)
        slope = _frame_attr(ds, f, "PixelValueTransformationSequence", "RescaleSlope")
        inter = _frame_attr(ds, f, "PixelValueTransformationSequence", "RescaleIntercept")
        iop = iop if iop is not None else top_iop
        if ipp is None and top_ipp is not None:
            ipp = top_ipp.copy()
            if grid_offsets is not None and iop is not None and len(grid_offsets) == n_frames:
                normal = np.cross(iop[:3], iop[3:])
                ipp = ipp + _number(grid_offsets[f], 0.0) * normal
            elif n_frames > 1:
                ipp = None  # one position for many frames says nothing about where each frame is
        stack_pos = _frame_attr(ds, f, "FrameContentSequence", "InStackPositionNumber")
        frame_slope, frame_bad = _slope(slope, top_slope) if slope is not None else (top_slope, top_bad)
        frames.append(_Frame(
            path, f, rows, cols, ipp, iop, tuple(ps) if ps is not None else (
                tuple(top_ps) if top_ps is not None else None),
            frame_slope,
            _number(inter, top_inter) if inter is not None else top_inter,
            int(_number(stack_pos, f + 1)) if stack_pos is not None else f + 1,
            bits, stored, signed, order if offset is not None else None,
            None if offset is None else offset + f * frame_bytes, frame_bad))
    return frames


# --------------------------------------------------------------------------------------------- scanning


def dicom_files(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` (recursively), hidden files and folders excluded, sorted."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file():
            out.append(path)
    return out


def scan_files(paths: Sequence[Path], progress: Progress = None, cancel: Cancel = None,
               what: object = None) -> ScanResult:
    """Read the headers of ``paths`` and group the images into series."""
    notes: list[str] = []
    # Only the first header of each series is kept (for its description, window, ...): holding every
    # parsed header would cost tens of MB on a 1000-slice series.
    groups: dict[str, list[_Frame]] = defaultdict(list)
    firsts: dict[str, object] = {}
    multi: list[tuple[str, list[_Frame], object]] = []
    total = len(paths)
    for n, path in enumerate(paths):
        if cancel is not None and cancel():
            raise Cancelled(what or path, "loading cancelled")
        if progress is not None:
            progress(n, total)
        if not _looks_like_dicom(path):
            notes.append(f"{path}: skipped, not a DICOM file")
            continue
        try:
            with warnings.catch_warnings():  # pydicom warns on every odd value; we report what matters
                warnings.simplefilter("ignore")
                ds = _read_header(path)
                problem = _image_problem(ds)
                if problem:
                    notes.append(f"{path}: skipped, {problem}")
                    continue
                frames = _frames_of(path, ds)
        except VolumeError as exc:
            notes.append(f"{path}: skipped, {exc.why}")
            continue
        uid = str(_get(ds, "SeriesInstanceUID", "")) or f"no-series-uid:{path.parent}"
        if len(frames) > 1 or frames[0].frame is not None:
            multi.append((uid, frames, ds))
        else:
            groups[uid].append(frames[0])
            firsts.setdefault(uid, ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = _series_infos(groups, firsts, multi)
    if progress is not None:
        progress(total, total)
    series.sort(key=lambda s: (-s.voxels, s.uid))
    return ScanResult(series, notes)


def _series_infos(groups, firsts, multi) -> list[SeriesInfo]:
    series = []
    for uid, items in groups.items():
        first = firsts[uid]
        rows, cols = _common_size(items)
        series.append(SeriesInfo(uid, str(_get(first, "SeriesDescription", "")), str(_get(first, "Modality", "")),
                                 len(items), rows, cols, [f.path for f in items], False,
                                 str(_get(first, "StudyDate", "")), items, first))
    used = set(groups)
    for uid, frames, ds in multi:
        key = uid
        if key in used:
            key = f"{uid}#{frames[0].path.name}"
        used.add(key)
        series.append(SeriesInfo(key, str(_get(ds, "SeriesDescription", "")), str(_get(ds, "Modality", "")),
                                 len(frames), frames[0].rows, frames[0].cols, [frames[0].path], True,
                                 str(_get(ds, "StudyDate", "")), frames, ds))
    return series


def _common_size(frames: Iterable[_Frame]) -> tuple[int, int]:
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for f in frames:
        counts[(f.rows, f.cols)] += 1
    return max(counts, key=lambda k: (counts[k], k))


def choose_series(scan: ScanResult, what: object, series_uid: str | None) -> tuple[SeriesInfo, str | None]:
    """The series to load and, when it was picked automatically among several, a sentence saying so."""
    if not scan.series:
        detail = ""
        if scan.notes:
            shown = "; ".join(n.split(": ", 1)[-1] for n in scan.notes[:3])
            detail = f" ({len(scan.notes)} file(s) skipped: {shown}{'; ...' if len(scan.notes) > 3 else ''})"
        raise VolumeError(what, f"no DICOM image series found{detail}")
    if series_uid is not None:
        matches = [s for s in scan.series if s.uid == series_uid]
        if not matches:
            matches = [s for s in scan.series if s.uid.startswith(series_uid)]
        if len(matches) != 1:
            listing = "; ".join(s.summary() for s in scan.series)
            reason = "matches several series" if matches else "is not in this folder"
            raise SeriesChoiceError(what, f"series {series_uid!r} {reason}; series found: {listing}",
                                    scan.series)
        return matches[0], None
    if len(scan.series) == 1:
        return scan.series[0], None
    cts = [s for s in scan.series if s.modality.upper() == "CT" and s.slices > 1] or \
        [s for s in scan.series if s.modality.upper() == "CT"]
    listing = "; ".join(s.summary() for s in scan.series)
    if not cts:
        raise SeriesChoiceError(what, f"holds {len(scan.series)} series and none is CT; choose one: {listing}",
                                scan.series)
    best = max(cts, key=lambda s: s.voxels)
    ties = [s for s in cts if s.voxels == best.voxels]
    if len(ties) > 1:
        raise SeriesChoiceError(what, f"holds {len(ties)} CT series of the same size; choose one: {listing}",
                                scan.series)
    note = (f"{what} holds {len(scan.series)} series; loaded the largest CT series {best.uid} "
            f"({best.description or 'no description'}, {best.slices} slices)")
    return best, note

"""DICOM series: scanning folders, grouping series, and assembling one exact 3-D grid.

How a stack becomes a grid (the rules every serious reader follows, spelled out):
- Slices are ordered by ImagePositionPatient projected on the slice normal (row x column cosines),
  never by file name; InstanceNumber only breaks ties and orders position-less stacks.
- The slice step is measured from the positions, not taken from SliceThickness. Whole missing slices
  are re-inserted as blank (air) slices so every real slice keeps its true world position; uneven
  spacing that is not a whole number of slices, duplicate positions, mixed orientations or sizes and
  gantry tilt are reported as warnings. A tilted stack keeps its exact sheared geometry (the k axis
  follows the real slice-to-slice step), which NIfTI's sform stores without resampling.
- Stored values become Hounsfield units through RescaleSlope/RescaleIntercept (per slice, or per frame
  in Enhanced CT). The array stays int16 when that is exact (integer slope and intercept and the
  result fits), else float32: half the memory of float32 for ordinary CT, values identical.
- Uncompressed little/big-endian pixels are read straight from the file into the output array (the
  header is parsed with the pixel data deferred); compressed transfer syntaxes (JPEG lossless,
  JPEG-LS, JPEG 2000, RLE, deflate) decode through pydicom's pixel handlers and the pylibjpeg plugins.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import Cancelled, VolumeError
from lsms_core.volume.volume import Volume

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_SEG_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}  # SEG, label map SEG
_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": "<",  # implicit VR little endian
    "1.2.840.10008.1.2.1": "<",  # explicit VR little endian
    "1.2.840.10008.1.2.2": ">",  # explicit VR big endian (retired, still found)
}
# A gantry tilt below this (degrees) is position rounding noise, not a tilt.
_TILT_TOLERANCE_DEG = 0.01
DEFAULT_CT_WINDOW = (40.0, 400.0)  # (centre, width) HU: soft tissue

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


# --------------------------------------------------------------------------------------------- reading


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A third-party exception as one short line (pydicom's decoder errors span several lines)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _looks_like_dicom(path: Path) -> bool:
    """Part-10 files have 'DICM' at byte 128; raw datasets (no preamble) start with a group 0002/0008
    tag. Anything else is not worth handing to a forgiving parser."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True  # named as DICOM: let the parser try, and say why if it fails
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00", b"\x00\x08", b"\x00\x02")


def _past_image_groups(tag, vr, length) -> bool:
    return tag > 0x0028FFFF


def _pixel_data_at_end(fp, size: int, syntax: str, ds) -> tuple[int, int] | None:
    """(offset, length) of PixelData when it is the file's last element and holds exactly one native frame
    of ``ds``'s size: its element header is read back just before the value, so nothing is assumed.
    None when anything differs (trailing padding, several frames, encapsulated data...)."""
    order = _NATIVE_SYNTAXES.get(syntax)
    rows, cols = _get(ds, "Rows"), _get(ds, "Columns")
    bits = _get(ds, "BitsAllocated")
    if order is None or rows is None or cols is None or bits not in (8, 16, 32):
        return None
    nbytes = int(rows) * int(cols) * int(bits) // 8
    nbytes += nbytes & 1  # values are padded to an even length
    explicit = syntax != "1.2.840.10008.1.2"
    head = 12 if explicit else 8
    offset = size - nbytes
    if nbytes == 0 or offset - head < 0:
        return None
    fp.seek(offset - head)
    raw = fp.read(head)
    if len(raw) != head:
        return None
    group, element = struct.unpack(order + "HH", raw[:4])
    if (group, element) != (0x7FE0, 0x0010):
        return None
    if explicit:
        if raw[4:6] not in (b"OW", b"OB") or raw[6:8] != b"\0\0":
            return None
        length = struct.unpack(order + "I", raw[8:12])[0]
    else:
        length = struct.unpack(order + "I", raw[4:8])[0]
    return (offset, length) if length == nbytes else None


def _read_header(path: Path):
    """The dataset with pixel data deferred (value offset kept), or raise VolumeError.

    Fast path for single-frame native images (nearly every CT series): the header is parsed up to group
    0x0028 only (everything the loader reads lives there), and PixelData is found at the end of the file
    by reading its element header back (``_pixel_data_at_end``); its (offset, length) is kept as
    ``ds._lsms_pixel``. Scanner headers carry hundreds of private and protocol elements after group 0x0028;
    not parsing them is most of the time a series takes to load. Anything else (multi-frame, encapsulated
    or trailing data) is parsed whole, as before.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_partial

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open(path, "rb") as fp:
                ds = read_partial(fp, _past_image_groups, defer_size=4096, force=True)
                # A classic image has its position at the top level; an enhanced one (even single-frame) in
                # its functional groups, after group 0x0028: that needs the whole header.
                if int(_number(_get(ds, "NumberOfFrames", 1), 1)) == 1 and "ImagePositionPatient" in ds:
                    pixel = _pixel_data_at_end(fp, os.fstat(fp.fileno()).st_size, _transfer_syntax(ds), ds)
                    if pixel is not None:
                        ds._lsms_pixel = pixel
                        return ds
            return pydicom.dcmread(path, defer_size=4096, force=True)
    except (InvalidDicomError, EOFError) as exc:
        raise VolumeError(path, f"not a readable DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises many types on corrupt input; none may escape raw
        raise VolumeError(path, f"cannot parse the DICOM header ({one_line(exc)})") from exc


# Elements the loader reads from every file, whose raw bytes are decoded here without building pydicom's
# element objects (the per-file cost of a series is mostly that): value representation -> decoder.
_FAST_VRS = frozenset({"US", "DS", "IS", "UI", "CS"})
_FAST_TAGS = {
    "Rows": 0x00280010, "Columns": 0x00280011, "BitsAllocated": 0x00280100, "BitsStored": 0x00280101,
    "PixelRepresentation": 0x00280103, "SamplesPerPixel": 0x00280002, "PhotometricInterpretation": 0x00280004,
    "ImagePositionPatient": 0x00200032, "ImageOrientationPatient": 0x00200037, "PixelSpacing": 0x00280030,
    "RescaleSlope": 0x00281053, "RescaleIntercept": 0x00281052, "InstanceNumber": 0x00200013,
    "NumberOfFrames": 0x00280008, "SeriesInstanceUID": 0x0020000E, "SOPClassUID": 0x00080016,
}
_MISSING = object()


def _raw_value(ds, name: str):
    """The value of a still-raw explicit-VR element of _FAST_TAGS, decoded as pydicom would (a str or an
    int, a list for several values); _MISSING when it must go through pydicom (converted already, implicit
    VR, another VR than the standard's, odd bytes)."""
    tag = _FAST_TAGS.get(name)
    elems = getattr(ds, "_dict", None)
    if tag is None or elems is None:
        return _MISSING
    raw = elems.get(tag, _MISSING)
    if raw is _MISSING:
        return None  # absent
    if type(raw).__name__ != "RawDataElement" or raw.VR not in _FAST_VRS or raw.value is None:
        return _MISSING
    data = raw.value
    if raw.VR == "US":
        if len(data) % 2:
            return _MISSING
        values = struct.unpack(("<" if raw.is_little_endian else ">") + "H" * (len(data) // 2), data)
    else:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            return _MISSING
        values = [v.strip(" \0") for v in text.split("\\")]
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def _get(ds, name: str, default=None):
    value = _raw_value(ds, name)
    if value is not _MISSING:
        return default if value is None or value == "" else value
    try:
        with warnings.catch_warnings():  # pydicom warns on invalid values; they read as they are
            warnings.simplefilter("ignore")
            value = ds.get(name, default)
    except Exception:  # a malformed value (bad VR, bad number) reads as absent
        return default
    return default if value is None or value == "" else value


def _floats(value, n: int) -> np.ndarray | None:
    try:
        out = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.all(np.isfinite(out)) else None


def _number(value, default: float) -> float:
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        out = float(value)
    except (TypeError, ValueError, IndexError):
        return default
    return out if math.isfinite(out) else default


def _sop_class(ds) -> str:
    uid = str(_get(ds, "SOPClassUID", ""))
    meta = getattr(ds, "file_meta", None)
    if not uid and meta is not None:
        uid = str(_get(meta, "MediaStorageSOPClassUID", ""))
    return uid


def _sop_name(ds) -> str:
    uid = _sop_class(ds)
    if not uid:
        return "unknown object"
    try:
        from pydicom.uid import UID

        name = UID(uid).name
    except Exception:
        name = uid
    return name if name != uid else f"object of class {uid}"


def _transfer_syntax(ds) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = str(_get(meta, "TransferSyntaxUID", "")) if meta is not None else ""
    if uid:
        return uid
    # Files without meta: pydicom guessed the encoding while reading.
    if getattr(ds, "is_little_endian", True) is False:
        return "1.2.840.10008.1.2.2"
    return "1.2.840.10008.1.2" if getattr(ds, "is_implicit_VR", True) else "1.2.840.10008.1.2.1"


def _image_problem(ds) -> str | None:
    """Why ``ds`` cannot become a scalar volume, or None if it can."""
    sop = _sop_class(ds)
    if sop == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return "a DICOMDIR index, not an image (open its folder to load the series it lists)"
    if sop in _SEG_CLASSES:
        return "a DICOM SEG segmentation object, not a CT image"
    if "PixelData" not in ds and getattr(ds, "_lsms_pixel", None) is None:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            return "float pixel data (parametric map) is not supported"
        return f"no image in this file ({_sop_name(ds)})"
    spp = int(_number(_get(ds, "SamplesPerPixel", 1), 1))
    photometric = str(_get(ds, "PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if spp != 1 or not photometric.startswith("MONOCHROME"):
        return (f"colour image ({photometric}, {spp} samples per pixel): only greyscale images can hold "
                "Hounsfield units")
    if _get(ds, "Rows") is None or _get(ds, "Columns") is None:
        return "image without Rows/Columns"
    bits = int(_number(_get(ds, "BitsAllocated", 0), 0))
    if bits not in (1, 8, 16, 32):
        return f"unsupported BitsAllocated {bits}"
    return None


def _frame_items(ds, frame: int, sequence: str):
    """The functional-group item of ``sequence`` for ``frame`` (per-frame first, then shared)."""
    for groups_name, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        groups = _get(ds, groups_name)
        if groups is None or len(groups) <= index:
            continue
        seq = _get(groups[index], sequence)
        if seq is not None and len(seq) > 0:
            yield seq[0]


def _frame_attr(ds, frame: int, sequence: str, attr: str):
    for item in _frame_items(ds, frame, sequence):
        value = _get(item, attr)
        if value is not None:
            return value
    return None


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


def _hu_dtype(frames: list[_Frame]) -> tuple[np.dtype, bool]:
    """Output dtype, and whether int16 output must check each slice's range (the stored bit depth
    allows values whose HU would not fit; real CT data almost never uses that range)."""
    check = False
    for f in frames:
        if f.slope != int(f.slope) or f.intercept != int(f.intercept):
            return np.dtype(np.float32), False
        bits = f.bits_stored if 0 < f.bits_stored <= f.bits_allocated else f.bits_allocated
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if f.signed else (0, 2 ** bits - 1)
        ends = (lo * f.slope + f.intercept, hi * f.slope + f.intercept)
        if min(ends) < -32768 or max(ends) > 32767:
            check = True
    return np.dtype(np.int16), check


class _Int16Overflow(Exception):
    pass


def _stored_dtype(f: _Frame) -> np.dtype:
    kind = "i" if f.signed else "u"
    return np.dtype(f"{f.native_order}{kind}{f.bits_allocated // 8}")


def _decoded_frames(path: Path, frame_numbers: set[int | None]):
    """Decode (frame number -> 2-D array) through pydicom's pixel handlers (compressed data)."""
    import pydicom
    from pydicom.pixels import iter_pixels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if frame_numbers == {None}:
                ds = pydicom.dcmread(path, force=True)
                yield None, ds.pixel_array
                return
            for n, arr in enumerate(iter_pixels(path)):
                if n in frame_numbers:
                    yield n, arr
        except VolumeError:
            raise
        except Exception as exc:
            raise VolumeError(path, f"cannot decode the pixel data ({one_line(exc)})") from exc


def _store(out: np.ndarray, k: int, raw: np.ndarray, f: _Frame, check: bool) -> None:
    if raw.shape != out.shape[1:]:
        raise VolumeError(f.path, f"pixel data decodes to shape {raw.shape}, expected {out.shape[1:]}")
    if out.dtype == np.int16:
        if check and raw.size:
            ends = (int(raw.min()) * int(f.slope) + int(f.intercept), int(raw.max()) * int(f.slope) + int(f.intercept))
            if min(ends) < -32768 or max(ends) > 32767:
                raise _Int16Overflow
        if f.slope == 1 and raw.dtype.itemsize <= 2 and -32768 <= f.intercept <= 32767:
            # 8/16-bit pixels: cast into the slice, then add the intercept in int16. The same values as
            # adding in int32 and casting: both are exact modulo 2**16, and the result is known to fit.
            np.copyto(out[k], raw, casting="unsafe")
            if f.intercept:
                out[k] += np.int16(f.intercept)
        elif f.slope == 1:
            np.add(raw, np.int32(f.intercept), out=out[k], casting="unsafe")
        else:
            out[k] = raw.astype(np.int32) * int(f.slope) + int(f.intercept)
    else:
        np.multiply(raw, np.float32(f.slope), out=out[k], casting="unsafe")
        if f.intercept:
            out[k] += np.float32(f.intercept)


def _straight_into(out: np.ndarray, f: _Frame, check: bool) -> bool:
    return (out.dtype == np.int16 and not check and f.slope == 1 and f.bits_allocated == 16
            and f.native_order == ("<" if sys.byteorder == "little" else ">")
            and -32768 <= f.intercept <= 32767 and out.flags.c_contiguous)


def read_pixels(frames: list[_Frame], grid_index: list[int], count: int, dtype: np.dtype, check: bool,
                progress: Progress, cancel: Cancel, what) -> np.ndarray:
    rows, cols = frames[0].rows, frames[0].cols
    out = np.empty((count, rows, cols), dtype)

    def store(k, raw, f):
        nonlocal out
        try:
            _store(out, k, raw, f, check)
        except _Int16Overflow:
            out = out.astype(np.float32)  # rare: values beyond int16 after rescale
            _store(out, k, raw, f, False)

    filled = np.zeros(count, bool)
    total = len(frames)
    done = 0
    buffers: dict[np.dtype, np.ndarray] = {}
    by_file: dict[Path, list[tuple[_Frame, int]]] = defaultdict(list)
    for f, k in zip(frames, grid_index, strict=True):
        by_file[f.path].append((f, k))
    for path, items in by_file.items():
        if cancel is not None and cancel():
            raise Cancelled(what, "loading cancelled")
        direct = [(f, k) for f, k in items if f.native_order is not None]
        decoded = [(f, k) for f, k in items if f.native_order is None]
        if direct:
            try:
                with open(path, "rb", buffering=0) as fp:
                    for f, k in direct:
                        dt = _stored_dtype(f)
                        if _straight_into(out, f, check):
                            # 16-bit pixels, slope 1, int16 output whose range is known to fit: the bytes go
                            # straight into the output slice and the intercept is added in place. Same
                            # values as the general path (int16 arithmetic is exact when the result fits).
                            fp.seek(f.pixel_offset)
                            got = fp.readinto(memoryview(out[k]).cast("B"))
                            if got != out[k].nbytes:
                                raise VolumeError(path, f"pixel data is truncated ({got} of {out[k].nbytes} bytes)")
                            if f.intercept:
                                out[k] += np.int16(f.intercept)
                            filled[k] = True
                            continue
                        buf = buffers.get(dt)
                        if buf is None:
                            buf = buffers[dt] = np.empty((rows, cols), dt)
                        fp.seek(f.pixel_offset)
                        got = fp.readinto(memoryview(buf).cast("B"))
                        if got != buf.nbytes:
                            raise VolumeError(path, f"pixel data is truncated ({got} of {buf.nbytes} bytes)")
                        store(k, buf, f)
                        filled[k] = True
            except OSError as exc:
                raise VolumeError(path, f"cannot read: {exc}") from exc
        if decoded:
            wanted = {f.frame: (f, k) for f, k in decoded}
            for number, arr in _decoded_frames(path, set(wanted)):
                f, k = wanted[number]
                arr = np.asarray(arr)
                if arr.ndim == 3 and arr.shape[0] == 1:
                    arr = arr[0]
                store(k, arr, f)
                filled[k] = True
            missing = [f.frame for f, k in decoded if not filled[k]]
            if missing:
                raise VolumeError(path, f"pixel data holds fewer frames than declared (frame {missing[0]} missing)")
        done += len(items)
        if progress is not None:
            progress(done, total)
    if not filled.all():
        real = out[filled]
        out[~filled] = real.min() if real.size else 0
    return out


def _deidentified_meta(info: SeriesInfo, window_warn: list[str]) -> dict:
    ds = info._header
    meta = {
        "modality": info.modality,
        "series_description": info.description,
        "study_date": info.study_date,
        "series_uid": info.uid,
        "format": "DICOM",
        "sop_class": _sop_name(ds) if ds is not None else "",
        "units": "HU" if info.modality.upper() == "CT" else "",
    }
    for name, key in (("Manufacturer", "manufacturer"), ("ConvolutionKernel", "kernel"),
                      ("SliceThickness", "slice_thickness"), ("KVP", "kvp"), ("BodyPartExamined", "body_part")):
        value = _get(ds, name) if ds is not None else None
        if value is not None:
            meta[key] = str(value) if not isinstance(value, (int, float)) else value
    centre = _number(_get(ds, "WindowCenter"), float("nan")) if ds is not None else float("nan")
    width = _number(_get(ds, "WindowWidth"), float("nan")) if ds is not None else float("nan")
    if ds is not None and (math.isnan(centre) or math.isnan(width)):
        centre = _number(_frame_attr(ds, 0, "FrameVOILUTSequence", "WindowCenter"), float("nan"))
        width = _number(_frame_attr(ds, 0, "FrameVOILUTSequence", "WindowWidth"), float("nan"))
    if math.isfinite(centre) and math.isfinite(width) and width >= 1.0:
        meta["window_center"], meta["window_width"], meta["window_source"] = centre, width, "dicom"
    else:
        meta["window_center"], meta["window_width"] = DEFAULT_CT_WINDOW
        meta["window_source"] = "default"
        if ds is not None and (_get(ds, "WindowWidth") is not None or _get(ds, "WindowCenter") is not None):
            window_warn.append("invalid window tags (WindowCenter/WindowWidth) replaced by the CT soft-tissue "
                               "window 40/400 HU")
    return meta


def build_volume(info: SeriesInfo, what, progress: Progress = None, cancel: Cancel = None) -> Volume:
    """Assemble the series ``info`` into a Volume on the series' own (i=row, j=column, k=normal) grid."""
    warn: list[str] = []
    frames = _select_consistent(list(info._frames), warn)
    frames, positions, normal, row, col = _sorted_positions(frames, what, warn)
    odd = [f for f in frames if f.bad_slope is not None]
    if odd:
        warn.append(f"RescaleSlope is {odd[0].bad_slope!r} in {len(odd)} image(s) (e.g. {odd[0].path.name}): "
                    f"replaced by {odd[0].slope:g}; the Hounsfield units of those slices may be wrong")
    spacings = {f.pixel_spacing for f in frames}
    if None in spacings:
        warn.append("no PixelSpacing: 1 mm pixels assumed")
        spacings.discard(None)
    pixel = next(iter(spacings)) if spacings else (1.0, 1.0)
    if len(spacings) > 1:
        warn.append(f"pixel spacing differs between slices {sorted(spacings)}; used {pixel}")
    if pixel[0] <= 0 or pixel[1] <= 0:
        warn.append(f"invalid PixelSpacing {[float(p) for p in pixel]}: 1 mm pixels assumed")
        pixel = (1.0, 1.0)
    frames, positions = _largest_block(frames, positions, normal, warn)
    grid_index, count, step = _lattice(frames, positions, normal, info, warn)
    step_len = float(np.linalg.norm(step))
    if step_len <= 0:
        raise VolumeError(what, "slices have no extent along their normal")
    direction = np.column_stack([row, col, step / step_len])
    origin = positions[0] if positions is not None else np.zeros(3)
    dtype, check = _hu_dtype(frames)
    array = read_pixels(frames, grid_index, count, dtype, check, progress, cancel, what)
    meta = _deidentified_meta(info, warn)
    meta["files"] = len({f.path for f in frames})
    return Volume(array, (pixel[1], pixel[0], step_len), tuple(origin), direction, meta, None, warn)

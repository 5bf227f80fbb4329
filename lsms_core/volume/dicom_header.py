"""DICOM headers: telling DICOM files apart, parsing a header with its pixel data deferred, and reading
elements (the loader's everyday elements straight from their raw bytes).

Part of the DICOM reader (``lsms_core.volume.dicom``).
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from pathlib import Path

import numpy as np

from lsms_core.errors import VolumeError

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_SEG_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}  # SEG, label map SEG
_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": "<",  # implicit VR little endian
    "1.2.840.10008.1.2.1": "<",  # explicit VR little endian
    "1.2.840.10008.1.2.2": ">",  # explicit VR big endian (retired, still found)
}


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


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

import numpy as np

from lsms_core.errors import VolumeError
from lsms_core.volume.dicom_geometry import _largest_block, _lattice, _select_consistent, _sorted_positions
from lsms_core.volume.dicom_header import (  # noqa: F401  (re-exported)
    DICOMDIR_CLASS,
    _frame_attr,
    _get,
    _number,
    _read_header,
    _sop_name,
    one_line,
)
from lsms_core.volume.dicom_pixels import _hu_dtype, read_pixels
from lsms_core.volume.dicom_series import (  # noqa: F401  (re-exported)
    Cancel,
    Progress,
    ScanResult,
    SeriesChoiceError,
    SeriesInfo,
    choose_series,
    dicom_files,
    scan_files,
)
from lsms_core.volume.volume import Volume

DEFAULT_CT_WINDOW = (40.0, 400.0)  # (centre, width) HU: soft tissue


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

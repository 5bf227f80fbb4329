"""DICOM pixels: the output dtype, native pixels read straight from the file into the volume, compressed
ones decoded through pydicom, and the rescale to Hounsfield units.

Part of the DICOM reader (``lsms_core.volume.dicom``).
"""

from __future__ import annotations

import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from lsms_core.errors import Cancelled, VolumeError
from lsms_core.volume.dicom_header import one_line
from lsms_core.volume.dicom_series import Cancel, Progress, _Frame


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


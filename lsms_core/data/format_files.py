"""Dataset format: image and mask files, read with their headers checked before anything is decoded, encoded
(.npy HU or windowed .png) and written atomically.

Part of the dataset format's reader and writer (``lsms_core.data.format``, whose docstring describes it).
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from lsms_core.data.format_manifest import MAX_IMAGE_SIDE
from lsms_core.errors import DatasetError

# ----------------------------------------------------------------------------------------------- files


def read_image_file(path: Path, where: str = "") -> tuple[np.ndarray, bool]:
    """A dataset image -> (array, windowed). .npy gives float32 HU; .png gives uint8 already windowed."""
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise DatasetError(path, f"{prefix}image file is missing")
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path, prefix, "image")
        if arr.dtype.kind not in "iuf":
            raise DatasetError(
                path, f"{prefix}image must hold numbers (int16 or float32 HU), got {arr.dtype}"
            )
        arr = arr.astype(np.float32, copy=False)
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            # Training would stop on a NaN loss far from here and evaluation would score garbage.
            raise DatasetError(path, f"{prefix}image holds {bad} NaN or infinite value(s); a dataset image "
                                     "must hold finite Hounsfield units")
        return arr, False
    arr = _load_png(path, prefix, "image")
    return arr, True


def read_mask_file(path: Path, where: str = "") -> np.ndarray:
    """A dataset mask -> uint8 array with 1 for the referred lesion and 0 elsewhere."""
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise DatasetError(path, f"{prefix}mask file is missing")
    if path.suffix.lower() == ".npy":
        arr = _load_npy(path, prefix, "mask")
        if arr.dtype.kind not in "iufb":
            raise DatasetError(path, f"{prefix}mask must hold numbers or booleans, got {arr.dtype}")
    else:
        arr = _load_png(path, prefix, "mask")
    return (arr != 0).astype(np.uint8)


def _check_npy_header(path: Path, prefix: str, what: str) -> None:
    """Shape and size from the header, checked against the limits and the file before any allocation."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = fmt.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(path, f"{prefix}{what} is not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise DatasetError(path, f"{prefix}{what} is not a readable .npy array (it holds Python objects, "
                                 "which would need unpickling: never done)")
    if len(shape) != 2:
        raise DatasetError(path, f"{prefix}{what} must be a 2D array (rows, cols), got shape {shape}")
    if max(shape) > MAX_IMAGE_SIDE:
        raise DatasetError(path, f"{prefix}{what} claims shape {shape}: more than {MAX_IMAGE_SIDE} pixels a side "
                                 "is not a CT slice")
    need = offset + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise DatasetError(path, f"{prefix}{what} is truncated: its header claims {need} bytes, the file "
                                 f"holds {size}")


def _load_npy(path: Path, prefix: str, what: str) -> np.ndarray:
    _check_npy_header(path, prefix, what)
    try:
        arr = np.load(path, allow_pickle=False)  # never unpickle a user's file
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(path, f"{prefix}{what} is not a readable .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        raise DatasetError(
            path, f"{prefix}{what} must be a 2D array (rows, cols), got shape {getattr(arr, 'shape', '?')}"
        )
    return arr


def _load_png(path: Path, prefix: str, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # PIL's bomb warning: the size is checked here, before decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            mode = im.mode
            if max(im.size) > MAX_IMAGE_SIDE:  # from the header: nothing is decoded yet
                raise DatasetError(path, f"{prefix}{what} PNG is {im.size[0]}x{im.size[1]}: more than "
                                         f"{MAX_IMAGE_SIDE} pixels a side is not a CT slice")
            if mode == "P" and what == "mask":
                arr = np.asarray(im)  # palette indices: non-zero index = lesion
            elif mode in ("L", "1"):
                arr = np.asarray(im.convert("L"))
            else:
                raise DatasetError(path, f"{prefix}{what} PNG must be 8-bit grayscale, got mode {mode!r}")
    except DatasetError:
        raise
    except Image.DecompressionBombError as exc:  # raised by Image.open itself, before our size check
        raise DatasetError(path, f"{prefix}{what} PNG is too large to be a CT slice ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(path, f"{prefix}{what} is not a readable PNG ({exc})") from None
    return np.ascontiguousarray(arr)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; data files are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_image(arr: np.ndarray, suffix: str) -> bytes:
    """Bytes of a dataset image: .npy keeps int16/float32 HU; .png must be uint8 (already windowed)."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise DatasetError("image", f"must be 2D (rows, cols), got shape {arr.shape}")
    if suffix == ".npy":
        if arr.dtype not in (np.int16, np.float32):
            if np.issubdtype(arr.dtype, np.integer) and arr.min() >= -32768 and arr.max() <= 32767:
                arr = arr.astype(np.int16)
            else:
                arr = arr.astype(np.float32)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
        return buf.getvalue()
    if arr.dtype != np.uint8:
        raise DatasetError("image", f"a .png image must be uint8 (already windowed), got {arr.dtype}")
    return _png_bytes(arr)


def encode_mask(mask: np.ndarray, suffix: str = ".png") -> bytes:
    m = (np.asarray(mask) != 0).astype(np.uint8)
    if m.ndim != 2:
        raise DatasetError("mask", f"must be 2D (rows, cols), got shape {m.shape}")
    if suffix == ".npy":
        buf = io.BytesIO()
        np.save(buf, m, allow_pickle=False)
        return buf.getvalue()
    # 255 rather than 1 so a person opening the PNG sees the lesion.
    return _png_bytes(m * 255)


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    # compress_level 1: masks and windowed slices compress well already, and level 6 costs 3x the time.
    Image.fromarray(np.ascontiguousarray(arr), mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()



"""``load_volume``: one entry point for DICOM folders/files, NIfTI, NRRD and MetaImage.

Every volume comes back in radiological (nearest-LPS) layout with its exact geometry, plus
``source_grid`` describing the file's own grid so masks can be written back onto it (see write.py).
Every failure is a ``VolumeError`` naming the file and the reason; third-party exceptions never escape.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np

from lsms_core.errors import Cancelled, VolumeError
from lsms_core.volume.dicom import (
    DEFAULT_CT_WINDOW,
    Cancel,
    Progress,
    ScanResult,
    SeriesChoiceError,
    SeriesInfo,
    build_volume,
    choose_series,
    dicom_files,
    one_line,
    scan_files,
)
from lsms_core.volume.orient import reorient_to_lps
from lsms_core.volume.volume import Volume
from lsms_core.volume.write import volume_extension

_ITK_EXTENSIONS = (".nrrd", ".nhdr", ".mha", ".mhd")
_HEADER_READ_LIMIT = 1 << 20  # a detached header is text of a few KiB; never read a huge file to find out
_MAX_DATA_FILES = 100000
_NIFTI_EXTENSIONS = (".nii", ".nii.gz")
SUPPORTED = "a DICOM folder or file, NIfTI (.nii/.nii.gz), NRRD (.nrrd/.nhdr) or MetaImage (.mha/.mhd)"


def _input_kind(path: Path) -> str:
    if path.is_dir():
        return "dicom-folder"
    name = path.name.lower()
    if name.endswith(".nii.gz") or name.endswith(".nii"):
        return "nifti"
    if name.endswith(_ITK_EXTENSIONS):
        return "itk"
    return "dicom-file"


def list_series(folder: Path | str, progress: Progress = None, cancel: Cancel = None) -> list[SeriesInfo]:
    """The image series of a DICOM folder (recursively), largest first. Files that are not images (SR,
    RTSTRUCT, DICOMDIR, SEG, colour images, non-DICOM files) are skipped."""
    return scan_folder(folder, progress, cancel).series


# The last folder scan, reused while no file in the folder changed: callers list the series, let the user
# choose, then load (the viewer does), and parsing every header twice would double the wait.
_last_scan: tuple[tuple, ScanResult] | None = None


def _fingerprint(folder: Path, files: list[Path]) -> tuple:
    stats = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            return ()
        stats.append((str(path), st.st_size, st.st_mtime_ns))
    return (str(folder.resolve()), tuple(stats))


def scan_folder(folder: Path | str, progress: Progress = None, cancel: Cancel = None) -> ScanResult:
    """Like ``list_series`` but also returns the notes on every skipped file."""
    global _last_scan
    folder = Path(folder)
    if not folder.exists():
        raise VolumeError(folder, "does not exist")
    if folder.is_file():
        return scan_files([folder], progress, cancel, folder)
    files = dicom_files(folder)
    if not files:
        raise VolumeError(folder, "the folder is empty")
    key = _fingerprint(folder, files)
    cached = _last_scan
    if key and cached is not None and cached[0] == key:
        if progress is not None:
            progress(len(files), len(files))
        return cached[1]
    result = scan_files(files, progress, cancel, folder)
    if key:
        _last_scan = (key, result)
    return result


def load_volume(path: Path | str, series_uid: str | None = None, progress: Progress = None,
                cancel: Cancel = None) -> Volume:
    """Load a CT (or any scalar) volume with exact geometry, in radiological (nearest-LPS) layout.

    ``path``: a DICOM folder (searched recursively), one DICOM file (single- or multi-frame, Enhanced CT),
    a NIfTI, NRRD or MetaImage file. ``series_uid`` picks a series of a folder (see ``list_series``);
    by default the only series, or the largest CT series (the choice is added to ``warnings``); a
    folder whose pick is ambiguous raises ``SeriesChoiceError`` listing the series.
    ``progress(done, total)`` is called while reading; ``cancel()`` returning True raises Cancelled.

    The array is int16 when the HU values are exactly integers that fit (ordinary CT), else float32.
    ``warnings`` lists everything the user should know (gaps, uneven spacing, tilt, dropped slices; they
    are not also raised as Python warnings: show them);
    ``meta`` is a de-identified summary (modality, series description, study date, window...).
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(path, "does not exist")
    kind = _input_kind(path)
    if progress is not None and kind in ("nifti", "itk"):
        progress(0, 1000)  # one read call, no finer progress to give
    try:
        if kind == "nifti":
            vol, files = _load_nifti(path), (path,)
        elif kind == "itk":
            vol, files = _load_itk(path)
        else:
            vol, files = _load_dicom(path, series_uid, progress, cancel)
    except (VolumeError, Cancelled):
        raise
    except MemoryError as exc:
        raise VolumeError(path, "not enough memory to load this volume") from exc
    except Exception as exc:  # the promise: no raw third-party traceback reaches the user
        raise VolumeError(path, f"cannot load ({one_line(exc)})") from exc
    vol.source = path
    if "window_center" not in vol.meta:
        _default_window(vol)
    out = reorient_to_lps(vol, files)
    out.meta["source_orientation"] = orientation_code(vol.direction)
    if progress is not None:
        progress(1000, 1000)
    return out


def orientation_code(direction: np.ndarray) -> str:
    """Three-letter code of the directions the i, j, k axes point to, e.g. 'LPS' or 'RAS' (ITK style)."""
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    out = ""
    for a in range(3):
        col = np.asarray(direction)[:, a]
        axis = int(np.argmax(np.abs(col)))
        out += letters[axis][0 if col[axis] > 0 else 1]
    return out


def _default_window(vol: Volume) -> None:
    if vol.meta.get("units") == "HU" or vol.meta.get("modality", "").upper() == "CT" or _looks_like_ct(vol.array):
        vol.meta["window_center"], vol.meta["window_width"] = DEFAULT_CT_WINDOW
    else:
        sample = vol.array[:: max(1, vol.array.shape[0] // 16)]
        lo, hi = (float(v) for v in np.percentile(sample, [1, 99])) if sample.size else (0.0, 1.0)
        vol.meta["window_center"], vol.meta["window_width"] = (lo + hi) / 2, max(hi - lo, 1.0)
    vol.meta["window_source"] = "default"


def _looks_like_ct(array: np.ndarray) -> bool:
    if array.size == 0 or not np.issubdtype(array.dtype, np.number):
        return False
    sample = array[:: max(1, array.shape[0] // 8)]
    return float(sample.min()) <= -900 and float(sample.max()) <= 5000


def _load_dicom(path: Path, series_uid, progress, cancel) -> tuple[Volume, tuple[Path, ...]]:
    # Scanning headers is ~10% of the work, pixels the rest: report progress as one 0..1000 scale.
    def scan_progress(done, total):
        if progress is not None:
            progress(int(100 * done / max(total, 1)), 1000)

    def pixel_progress(done, total):
        if progress is not None:
            progress(100 + int(900 * done / max(total, 1)), 1000)

    if path.is_file() and path.name.upper() == "DICOMDIR":
        # A DICOMDIR only indexes the files around it: read those (their headers are the truth anyway).
        try:
            vol, files = _load_dicom(path.parent, series_uid, progress, cancel)
        except SeriesChoiceError as exc:
            raise SeriesChoiceError(path, f"indexes {exc.why}", exc.series) from exc
        except VolumeError as exc:
            raise VolumeError(path, f"is an index of {path.parent}, which cannot be loaded: {exc.why}") from exc
        vol.warnings.insert(0, f"{path.name} is an index: loaded the images of its folder {path.parent}")
        return vol, files
    if path.is_file():
        scan = scan_files([path], scan_progress, cancel, path)
        if not scan.series:
            reason = scan.notes[0].split(": skipped, ", 1)[-1] if scan.notes else "no image found"
            raise VolumeError(path, reason)
    else:
        scan = scan_folder(path, scan_progress, cancel)
        if not scan.series:
            others = sorted(p.name for p in path.iterdir() if p.is_file() and _input_kind(p) in ("nifti", "itk"))
            if others:
                shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                raise VolumeError(path, f"no DICOM image series in this folder; it holds {shown}: open that file")
    info, note = choose_series(scan, path, series_uid)
    with warnings.catch_warnings():  # pydicom's warnings on odd values; ours go to vol.warnings
        warnings.simplefilter("ignore")
        vol = build_volume(info, path, pixel_progress, cancel)
    if note:
        vol.warnings.insert(0, note)
    skipped = [n for n in scan.notes]
    vol.meta["skipped_files"] = len(skipped)
    vol.meta["skipped_notes"] = skipped[:50]
    vol.meta["series_count"] = len(scan.series)
    return vol, tuple(info.files)


def _affine_to_geometry(affine_lps: np.ndarray, path: Path):
    linear = affine_lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(affine_lps)):
        raise VolumeError(path, f"invalid voxel-to-world matrix (voxel sizes {spacing.tolist()})")
    direction = linear / spacing[None, :]
    if abs(np.linalg.det(direction)) < 1e-6:
        raise VolumeError(path, "the voxel-to-world matrix is singular")
    return tuple(spacing), tuple(affine_lps[:3, 3]), direction


def _squeeze_to_3d(data: np.ndarray, path: Path) -> np.ndarray:
    if data.ndim == 2:
        return data[:, :, None]
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(path, f"a {data.ndim}-D image of shape {data.shape} is not a single 3-D volume "
                                "(time series and vector images are not supported)")
    return data


def _load_nifti(path: Path) -> Volume:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        # mmap=False: the array is read into memory. A memory-mapped volume dies with SIGBUS when its file
        # is truncated during a run, and silently changes when the file is rewritten.
        img = nib.load(str(path), mmap=False)
        raw_header = _raw_nifti_header(img, path)
    except (ImageFileError, OSError, EOFError, ValueError) as exc:
        raise VolumeError(path, f"not a readable NIfTI file ({exc})") from exc
    header = img.header
    warn: list[str] = []
    # The loaded header's offset is reset to 0 by nibabel; the stored one (at least the header's own size
    # plus the 4 extension bytes) is where the voxels start.
    offset = max(int(raw_header.get_data_offset()), int(raw_header["sizeof_hdr"]) + 4)
    _check_claimed_size(path, int(np.prod(header.get_data_shape(), dtype=np.float64))
                        * header.get_data_dtype().itemsize, offset,
                        compressed=path.name.lower().endswith(".gz"))
    sform, scode = img.get_sform(coded=True)
    qform, qcode = img.get_qform(coded=True)
    if scode and qcode and not np.allclose(sform, qform, atol=1e-3):
        warn.append("sform and qform disagree; the sform (scode "
                    f"{int(scode)}) was used, as nibabel and ITK-SNAP do")
    if not scode and not qcode:
        warn.append("no sform/qform: geometry from the voxel sizes only (orientation unknown)")
    if not scode:  # the qform and the bare voxel sizes both use pixdim, where nibabel turns 0 into 1
        spatial = min(3, max(1, int(raw_header["dim"][0])))
        zero = [("x", "y", "z")[a] for a in range(spatial) if float(raw_header["pixdim"][1 + a]) == 0.0]
        if zero:
            warn.append(f"the header's voxel size is 0 along {', '.join(zero)} (pixdim): taken as 1 mm, so "
                        "distances and volumes along it are not known")
    affine_ras = img.affine
    try:
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, Exception) as exc:
        raise VolumeError(path, f"cannot read the image data ({one_line(exc)})") from exc
    if data.dtype.kind not in "biuf":
        raise VolumeError(path, f"unsupported voxel type {data.dtype} (colour or complex image)")
    data = _squeeze_to_3d(data, path)
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    elif data.dtype == bool:
        data = data.astype(np.uint8)
    affine_lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    spacing, origin, direction = _affine_to_geometry(affine_lps, path)
    units = header.get_xyzt_units()[0]
    if units not in ("mm", "unknown"):
        warn.append(f"spatial units are {units!r}, not millimetres")
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    meta = {"format": "NIfTI", "modality": "", "series_description": "", "study_date": ""}
    return Volume(array, spacing, origin, direction, meta, path, warn)


def _raw_nifti_header(img, path: Path):
    """The header as stored (nibabel's loaded header has already replaced a zero pixdim by 1)."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as f:
        return type(img.header).from_fileobj(f, check=False)


# Deflate cannot expand one byte into more than 1032; a stream claiming more cannot hold the data.
_DEFLATE_MAX_RATIO = 1032


def _check_claimed_size(path: Path, need: int, offset: int, *, compressed: bool,
                        data_files: tuple[Path, ...] = ()) -> None:
    """Refuse a header whose image cannot be in its file(s) before anything of that size is allocated
    (a 480-byte NIfTI claiming 2000^3 int16 cost 15 GB before failing, or 'loaded' as zeros)."""
    files = data_files or (path,)
    try:
        have = sum(f.stat().st_size for f in files)
    except OSError:
        return  # a missing data file gets its own error from the reader
    if compressed:  # the offset counts in the decompressed stream: no use here
        if need > have * _DEFLATE_MAX_RATIO + (1 << 20):
            raise VolumeError(path, f"the header claims {need:,} bytes of voxels but the compressed data is "
                                    f"{have:,} bytes, which cannot hold them (truncated or forged header)")
    elif need > have - (0 if data_files else offset):
        raise VolumeError(path, f"the header claims {need:,} bytes of voxels from byte {offset} on but the "
                                f"{'data file holds' if data_files else 'file holds'} {have:,} bytes (truncated "
                                "file or forged header)")


def _check_itk_claimed_size(path: Path, files: list[Path]) -> None:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return  # ReadImage below reports the reason
    per_voxel = sitk.Image([1, 1], reader.GetPixelID()).GetSizeOfPixelComponent() * reader.GetNumberOfComponents()
    need = int(np.prod(reader.GetSize(), dtype=np.float64)) * per_voxel
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_READ_LIMIT).decode("latin-1")
    except OSError:
        return
    lower = head.lower()
    if (re.search(r"^\s*encoding\s*:\s*(ascii|text|txt|hex|bzip2|bz2)\b", lower, re.M)
            or re.search(r"^\s*binarydata\s*=\s*false\b", lower, re.M)):
        return  # text sizes vary, and bzip2 can exceed deflate's ratio: no bound from the file size
    compressed = bool(re.search(r"^\s*compresseddata\s*=\s*true\b", lower, re.M)
                      or re.search(r"^\s*encoding\s*:\s*(gzip|gz)\b", lower, re.M))
    # With the data inline, where the header ends is not parsed here: the start of the line naming the
    # data (MetaImage) is a floor, 0 otherwise; both only make the check more lenient.
    found = re.search(r"^\s*elementdatafile\s*=\s*local", lower, re.M)
    offset = found.start() if found else 0
    _check_claimed_size(path, need, offset, compressed=compressed, data_files=tuple(files[1:]))


def _load_itk(path: Path) -> tuple[Volume, tuple[Path, ...]]:
    import SimpleITK as sitk

    files = [path]
    if path.name.lower().endswith((".mhd", ".nhdr")):
        files.extend(_detached_data_files(path))
    _check_itk_claimed_size(path, files)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        reason = next((line for line in first if "ERROR" in line or "error" in line), first[-1] if first else "")
        raise VolumeError(path, f"not a readable image ({reason.strip()[:200]})") from exc
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(path, f"vector image with {img.GetNumberOfComponentsPerPixel()} components per "
                                "voxel (colour?) is not a scalar volume")
    dim = img.GetDimension()
    if dim == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
        dim = 3
    if dim not in (2, 3):
        raise VolumeError(path, f"a {dim}-D image is not a single 3-D volume")
    array = sitk.GetArrayFromImage(img)
    if dim == 2:
        array = array[None]
        spacing = (*img.GetSpacing(), 1.0)
        origin = (*img.GetOrigin(), 0.0)
        d2 = np.asarray(img.GetDirection()).reshape(2, 2)
        direction = np.eye(3)
        direction[:2, :2] = d2
    else:
        spacing, origin = img.GetSpacing(), img.GetOrigin()
        direction = np.asarray(img.GetDirection()).reshape(3, 3)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    fmt = "NRRD" if path.name.lower().endswith((".nrrd", ".nhdr")) else "MetaImage"
    meta = {"format": fmt, "modality": "", "series_description": "", "study_date": ""}
    if any(not math.isfinite(v) or v <= 0 for v in spacing):
        raise VolumeError(path, f"invalid voxel spacing {tuple(spacing)}")
    return Volume(np.ascontiguousarray(array), spacing, origin, direction, meta, path, []), tuple(files)


def _detached_data_files(header: Path) -> list[Path]:
    """Data files named by a .mhd/.nhdr header, so writers can refuse to overwrite them: one file, a
    ``LIST`` of files on the lines that follow, or a printf pattern with its first, last and step."""
    out: list[Path] = []
    try:
        with open(header, "rb") as f:
            text = f.read(_HEADER_READ_LIMIT).decode("latin-1")
    except OSError:
        return out
    lines = text.splitlines()
    for n, line in enumerate(lines):
        key, _, value = line.partition("=") if "=" in line else line.partition(":")
        if key.strip().lower() not in ("elementdatafile", "data file", "datafile") or not value.strip():
            continue
        parts = value.split()
        if parts[0].upper() == "LOCAL":
            continue
        if parts[0].upper() == "LIST":
            out.extend(header.parent / name.strip() for name in lines[n + 1:] if name.strip())
        elif "%" in parts[0] and len(parts) >= 3:
            try:
                first, last = int(parts[1]), int(parts[2])
                step = int(parts[3]) if len(parts) > 3 else 1
                names = [parts[0] % i for i in range(first, last + (1 if step > 0 else -1), step or 1)]
            except (ValueError, TypeError):
                names = [parts[0]]
            out.extend(header.parent / name for name in names[:_MAX_DATA_FILES])
        else:
            out.append(header.parent / value.strip())
        break
    return out


def load_mask(path: Path | str, reference: Volume) -> np.ndarray:
    """Read a mask file and map it onto ``reference``'s loaded grid, refusing any geometry mismatch.

    The mask must describe the same voxels in world space (any axis order: it is reoriented exactly).
    """
    mask = load_volume(path)
    if mask.shape != reference.shape or not np.allclose(mask.affine_lps, reference.affine_lps, atol=1e-3):
        raise VolumeError(path, f"the mask's grid (shape {mask.shape}) does not match the CT's grid "
                                f"(shape {reference.shape}) in world space")
    return mask.array


__all__ = ["load_volume", "list_series", "scan_folder", "load_mask", "SeriesInfo", "SeriesChoiceError",
           "SUPPORTED", "orientation_code", "volume_extension"]

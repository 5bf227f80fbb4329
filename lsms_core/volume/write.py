"""Writing CT volumes and masks as NIfTI (.nii/.nii.gz), NRRD (.nrrd) or MetaImage (.mha/.mhd).

Where a mask lands: ``save_mask(mask, reference, path)`` takes a mask on the *loaded* grid of
``reference`` (the radiological, nearest-LPS layout ``load_volume`` returns) and, by default, writes it
on the SOURCE file's own grid: same shape, axis order and affine as the CT file or DICOM series it came
from, so it overlays that input trivially in ITK-SNAP, 3D Slicer, nibabel or dcm2niix output, with no
resampling. Pass ``on_source_grid=False`` to write the loaded grid instead (the same voxels in world
space, only stored in another axis order).

Why two libraries: NIfTI goes through nibabel because the project must control the header exactly
(explicit dtype, no ``scl_slope`` scaling inherited from a CT, sform *and* qform codes set, millimetre
units); NRRD and MetaImage go through SimpleITK, whose writers store the LPS geometry natively.

Every write is atomic (a temporary file in the target folder, then ``os.replace``), never overwrites
an input file of the reference volume, and refuses clearly when the folder is missing or not writable.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import VolumeError
from lsms_core.volume.orient import source_volume
from lsms_core.volume.volume import Volume

# NIfTI sform/qform code 1 = "scanner anatomical": what dcm2niix writes for DICOM-derived images.
_NIFTI_XFORM_SCANNER = 1
_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")

# Distinct, colour-blind-friendly-ish defaults for labels that come without a colour.
_DEFAULT_COLOURS = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40),
]


@dataclass
class LabelInfo:
    """One label of a (multi-label) mask, as written to the JSON sidecar."""

    id: int
    name: str
    color: tuple[int, int, int] = (230, 25, 75)
    expression: str = ""
    extra: dict = field(default_factory=dict)


def volume_extension(path: Path | str) -> str:
    """The recognised volume extension of ``path`` ('.nii.gz', '.nrrd', ...), or '' if none."""
    name = Path(path).name.lower()
    for ext in _EXTENSIONS:
        if name.endswith(ext):
            return ext
    return ""


def sidecar_path(path: Path | str) -> Path:
    """``mask.nii.gz`` -> ``mask.json`` (BIDS-style sidecar next to the image)."""
    path = Path(path)
    ext = volume_extension(path)
    return path.with_name(path.name[: len(path.name) - len(ext)] + ".json")


def _check_target(path: Path, reference: Volume | None) -> str:
    ext = volume_extension(path)
    if not ext:
        raise VolumeError(path, f"unknown output format; use one of {', '.join(_EXTENSIONS)}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise VolumeError(path, f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VolumeError(path, f"the folder {folder} is not writable")
    if path.is_dir():
        raise VolumeError(path, "is a folder, not a file name")
    if reference is not None:
        target = path.resolve()
        inputs = []
        if reference.source is not None:
            inputs.append(Path(reference.source))
        if reference.source_grid is not None:
            inputs.extend(Path(f) for f in reference.source_grid.files)
        for src in inputs:
            try:
                same = src.resolve() == target or (target.exists() and os.path.samefile(src, target))
            except OSError:
                same = False
            if same:
                raise VolumeError(path, "refusing to overwrite an input file of the volume")
    return ext


def check_target(path: Path | str, reference: Volume | None = None) -> Path:
    """Refuse, before any work is done, an output path that save_mask/save_volume would refuse: unknown
    extension, missing or read-only folder, or an input file of ``reference``."""
    path = Path(path)
    _check_target(path, reference)
    return path


def _atomic_target(path: Path, ext: str) -> Path:
    # The temporary name keeps the extension because both nibabel and SimpleITK pick the format from it.
    return path.with_name(f".{path.name[: -len(ext)]}.{uuid.uuid4().hex[:8]}.partial{ext}")


def _write_nifti(vol: Volume, tmp: Path, description: str) -> None:
    import nibabel as nib

    affine = vol.affine_ras
    data = vol.array.transpose(2, 1, 0)  # nibabel indexes [i, j, k]
    header = nib.Nifti1Header()
    header.set_data_dtype(vol.array.dtype)
    img = nib.Nifti1Image(data, affine, header)
    img.set_sform(affine, code=_NIFTI_XFORM_SCANNER)
    rot = vol.direction
    orthonormal = np.allclose(rot.T @ rot, np.eye(3), atol=1e-6)
    # A qform is a rotation plus voxel sizes: it cannot hold the shear of a gantry-tilted grid, so it is
    # marked unknown there and readers use the exact sform.
    img.set_qform(affine, code=_NIFTI_XFORM_SCANNER if orthonormal else 0)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_slope_inter(1.0, 0.0)
    img.header["descrip"] = description[:79].encode("ascii", "replace")
    nib.save(img, str(tmp))


def _write_itk(vol: Volume, tmp: Path) -> None:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(vol.array))
    img.SetSpacing([float(s) for s in vol.spacing])
    img.SetOrigin([float(o) for o in vol.origin])
    img.SetDirection([float(v) for v in vol.direction.reshape(-1)])
    sitk.WriteImage(img, str(tmp), True)


def _write_mhd(vol: Volume, path: Path) -> None:
    """.mhd is two files (header + .raw) naming each other: write both in a private temporary folder
    with their final names, then move the data file first and the header last."""
    import SimpleITK as sitk

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as tmpdir:
        tmp = Path(tmpdir) / path.name
        img = sitk.GetImageFromArray(np.ascontiguousarray(vol.array))
        img.SetSpacing([float(s) for s in vol.spacing])
        img.SetOrigin([float(o) for o in vol.origin])
        img.SetDirection([float(v) for v in vol.direction.reshape(-1)])
        sitk.WriteImage(img, str(tmp), True)
        produced = sorted(Path(tmpdir).iterdir(), key=lambda p: p.name == path.name)
        for item in produced:
            os.replace(item, path.parent / item.name)


def _write(vol: Volume, path: Path, ext: str, description: str) -> None:
    if ext == ".mhd":
        try:
            _write_mhd(vol, path)
        except (OSError, RuntimeError) as exc:
            raise VolumeError(path, f"cannot write: {exc}") from exc
        return
    tmp = _atomic_target(path, ext)
    try:
        if ext in (".nii", ".nii.gz"):
            _write_nifti(vol, tmp, description)
        else:
            _write_itk(vol, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError, ValueError) as exc:
        raise VolumeError(path, f"cannot write: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json_atomic(data: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise VolumeError(path, f"cannot write the label sidecar: {exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _ct_dtype(array: np.ndarray) -> np.dtype:
    if array.dtype == bool:
        return np.dtype(np.uint8)
    if array.dtype in (np.float64, np.float16):
        return np.dtype(np.float32)
    if array.dtype == np.int64:
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        return np.dtype(np.int16) if lo >= -32768 and hi <= 32767 else np.dtype(np.int32)
    return array.dtype


def save_volume(volume: Volume, path: Path | str, *, on_source_grid: bool = True) -> Path:
    """Write a CT (or any scalar) volume with its exact geometry; the format follows the extension.

    The dtype is kept (int16 HU stays int16, no scaling); float64 is stored as float32. With
    ``on_source_grid`` (default) a loaded volume is written on its file's own grid (see the module doc);
    volumes built in memory are written as they are.
    """
    path = Path(path)
    ext = _check_target(path, volume)
    if volume.array.ndim != 3:
        raise VolumeError(path, f"expected a 3-D array, got shape {volume.array.shape}")
    vol = source_volume(volume) if on_source_grid else volume
    dtype = _ct_dtype(vol.array)
    if vol.array.dtype != dtype:
        vol = Volume(vol.array.astype(dtype), vol.spacing, vol.origin, vol.direction, vol.meta)
    _write(vol, path, ext, "LSMS Viewer volume")
    return path


def _mask_dtype(mask: np.ndarray, path: Path) -> np.ndarray:
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if mask.size == 0:
        return mask.astype(np.uint8)
    if np.issubdtype(mask.dtype, np.floating):
        if not np.all(np.isfinite(mask)) or not np.array_equal(mask, np.round(mask)):
            raise VolumeError(path, "a mask must hold whole label numbers, got fractional or NaN values")
    elif not np.issubdtype(mask.dtype, np.integer):
        raise VolumeError(path, f"a mask must be boolean or integer, got {mask.dtype}")
    lo, hi = mask.min(), mask.max()
    if lo < 0:
        raise VolumeError(path, f"mask labels must be >= 0, found {lo}")
    if hi > 65535:
        raise VolumeError(path, f"mask labels must be <= 65535 (uint16), found {hi}")
    return mask.astype(np.uint8 if hi <= 255 else np.uint16, copy=False)


def _normalise_labels(labels, present: Iterable[int]) -> list[LabelInfo]:
    out: dict[int, LabelInfo] = {}
    if isinstance(labels, Mapping):
        items = []
        for key, value in labels.items():
            if isinstance(value, LabelInfo):
                items.append(value)
            elif isinstance(value, str):
                items.append(LabelInfo(int(key), value))
            else:
                items.append(LabelInfo(id=int(key), **dict(value)))
    else:
        items = [v if isinstance(v, LabelInfo) else LabelInfo(**dict(v)) for v in (labels or [])]
    for info in items:
        out[int(info.id)] = info
    for n, label in enumerate(sorted(present)):
        if label not in out:
            out[label] = LabelInfo(label, f"label {label}", _DEFAULT_COLOURS[n % len(_DEFAULT_COLOURS)])
    return [out[k] for k in sorted(out)]


def save_mask(mask: np.ndarray, reference: Volume, path: Path | str, labels=None, *,
              on_source_grid: bool = True) -> Path:
    """Write ``mask`` (shape of ``reference.array``, bool or label numbers) as uint8/uint16.

    ``labels``: optional list of LabelInfo (or dicts with id/name/color/expression), or a mapping
    id -> LabelInfo/dict/name. A JSON sidecar (``<name>.json``) is written when labels are given or the
    mask holds more than one label. Returns the mask path.
    """
    path = Path(path)
    ext = _check_target(path, reference)
    mask = np.asarray(mask)
    if mask.shape != reference.shape:
        raise VolumeError(path, f"mask shape {mask.shape} differs from the CT's {reference.shape}")
    mask = _mask_dtype(mask, path)
    vol = source_volume(reference, mask) if on_source_grid else reference.with_array(mask)
    vol = Volume(np.ascontiguousarray(vol.array), vol.spacing, vol.origin, vol.direction)
    present = [int(v) for v in np.unique(mask) if v != 0]
    _write(vol, path, ext, "LSMS Viewer mask")
    if labels is not None or len(present) > 1:
        infos = _normalise_labels(labels, present)
        sidecar = {
            "format": "lsms-labels",
            "version": 1,
            "image": path.name,
            "labels": [
                {"id": i.id, "name": i.name, "color": [int(c) for c in i.color],
                 "expression": i.expression, **({"extra": i.extra} if i.extra else {})}
                for i in infos
            ],
        }
        _write_json_atomic(sidecar, sidecar_path(path))
    return path


def read_label_sidecar(path: Path | str) -> list[LabelInfo]:
    """Read the labels written next to a mask by ``save_mask`` (empty list if there is none)."""
    side = sidecar_path(path)
    if not side.exists():
        return []
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
        return [LabelInfo(int(d["id"]), str(d["name"]), tuple(int(c) for c in d["color"]),
                          str(d.get("expression", "")), dict(d.get("extra", {}))) for d in data["labels"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VolumeError(side, f"invalid label sidecar: {exc}") from exc


__all__ = ["LabelInfo", "save_volume", "save_mask", "read_label_sidecar", "sidecar_path", "check_target"]

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
import re
import shutil
import socket
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
MAX_SIDECAR_BYTES = 16 << 20

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


def data_files(path: Path | str) -> list[Path]:
    """Every file a write of the volume ``path`` produces besides the label sidecar: ``x.mhd`` also writes
    its (compressed) data file ``x.zraw``."""
    path = Path(path)
    if volume_extension(path) == ".mhd":
        return [path, path.with_name(path.name[: -len(".mhd")] + ".zraw")]
    return [path]


def _input_files(reference: Volume | None) -> list[Path]:
    """What the reference volume was read from: its source, every file of it (a DICOM series' files, a
    .mhd header's data files) and the JSON sidecars next to them (a BIDS sidecar describes the input)."""
    if reference is None:
        return []
    inputs = []
    if reference.source is not None:
        inputs.append(Path(reference.source))
    if reference.source_grid is not None:
        inputs.extend(Path(f) for f in reference.source_grid.files)
    inputs.extend([side for f in inputs if volume_extension(f) and (side := sidecar_path(f)).exists()])
    return inputs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _is_our_sidecar(side: Path, image: Path) -> bool:
    """True when ``side`` is an LSMS label sidecar written for the image named like ``image``."""
    from lsms_core.bounded_read import read_json

    try:
        data = read_json(side, MAX_SIDECAR_BYTES, VolumeError, "label sidecar")
    except VolumeError:
        return False
    return isinstance(data, dict) and data.get("format") == "lsms-labels" and data.get("image") == image.name


def check_output_file(path: Path, reference: Volume | None, targets: list[Path]) -> None:
    """What every writer refuses: a missing or read-only folder, a folder as the file name, and any of
    ``targets`` (the files the write produces) being a file ``reference`` was read from."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise VolumeError(path, f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VolumeError(path, f"the folder {folder} is not writable")
    if path.is_dir():
        raise VolumeError(path, "is a folder, not a file name")
    for target in targets:
        for src in _input_files(reference):
            if _same_file(src, target):
                extra = "" if target == path else f" ({target.name} would be written with it)"
                raise VolumeError(path, f"refusing to overwrite an input file of the volume{extra}")


def _check_target(path: Path, reference: Volume | None, *, overwrite: bool = True,
                  sidecar: bool = False) -> str:
    ext = volume_extension(path)
    if not ext:
        raise VolumeError(path, f"unknown output format; use one of {', '.join(_EXTENSIONS)}")
    produced = data_files(path)
    side = sidecar_path(path)
    check_output_file(path, reference, produced + ([side] if sidecar else []))
    if sidecar and side.exists() and not _is_our_sidecar(side, path):
        # A BIDS sidecar, another tool's file, or the labels of another image of this stem (x.nii.gz and
        # x.nrrd share x.json): replacing it would lose what it says about that other file.
        raise VolumeError(path, f"its label sidecar {side.name} exists and is not the LSMS label sidecar of "
                                f"{path.name}; refusing to replace it (choose another output name)")
    if not overwrite:
        for target in produced + ([side] if sidecar else []):
            if target.exists():
                which = "" if target == path else f" ({target.name}, written with {path.name})"
                raise VolumeError(path, f"exists already{which}; pass --overwrite to replace it "
                                        "(or choose another name)")
    return ext


def check_target(path: Path | str, reference: Volume | None = None, *, overwrite: bool = True,
                 sidecar: bool = False) -> Path:
    """Refuse, before any work is done, an output path that save_mask/save_volume would refuse: unknown
    extension, missing or read-only folder, a file of ``reference``'s input (any of its files, or their
    sidecars) among the files the write produces, a label sidecar (``sidecar=True``) that belongs to
    something else, and, without ``overwrite``, any of those files existing already."""
    path = Path(path)
    _check_target(path, reference, overwrite=overwrite, sidecar=sidecar)
    return path


# Temporary files carry the writer's host and pid, so a later write can remove what a killed writer left
# (and never what a live one, on this or another machine sharing the folder, is still writing).
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_PARTIAL = re.compile(r"^\..*\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-[0-9a-f]{8}\.partial")
_LEGACY_PARTIAL = re.compile(r"^\..*\.[0-9a-f]{8}\.partial")  # written before the pid was recorded
_LEGACY_AGE_S = 24 * 3600


def _partial_name(name: str, ext: str = "") -> str:
    return f".{name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.partial{ext}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove the temporary files and folders that writers killed mid-write left in ``folder``."""
    import shutil
    import time

    removed = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(".") and ".partial" in e.name]
    except OSError:
        return removed
    for entry in entries:
        m = _PARTIAL.match(entry.name)
        try:
            if m:
                stale = m.group("host") == _HOST and not _pid_alive(int(m.group("pid")))
            else:
                stale = bool(_LEGACY_PARTIAL.match(entry.name)) and (
                    time.time() - entry.stat(follow_symlinks=False).st_mtime > _LEGACY_AGE_S)
            if not stale:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


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


class _Staging:
    """Files written under temporary names next to their final paths, then committed (renamed) together.

    A mask and its sidecar (or a .mhd header and its data file) appear only once all of them are fully
    written: a full disk or an error half-way leaves the final paths as they were. Commit order: the
    sidecar and data files first, the image (the header) last, so its presence means the write completed.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.moves: list[tuple[Path, Path]] = []
        self.scratch: list[Path] = []

    def image(self, vol: Volume, path: Path, ext: str, description: str) -> None:
        try:
            if ext == ".mhd":
                # header and .zraw name each other: write both with their final names in a private folder
                tmpdir = self.folder / _partial_name(path.name)
                self.scratch.append(tmpdir)
                tmpdir.mkdir()
                _write_itk(vol, tmpdir / path.name)
                produced = sorted(tmpdir.iterdir(), key=lambda p: p.name == path.name)
                self.moves += [(item, self.folder / item.name) for item in produced]
                return
            # The temporary name keeps the extension: nibabel and SimpleITK pick the format from it.
            tmp = self.folder / _partial_name(path.name[: -len(ext)], ext)
            self.scratch.append(tmp)
            if ext in (".nii", ".nii.gz"):
                _write_nifti(vol, tmp, description)
            else:
                _write_itk(vol, tmp)
            self.moves.append((tmp, path))
        except (OSError, RuntimeError, ValueError) as exc:
            raise VolumeError(path, f"cannot write: {exc}") from exc

    def json(self, data: dict, path: Path) -> None:
        tmp = self.folder / _partial_name(path.name)
        self.scratch.append(tmp)
        try:
            tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise VolumeError(path, f"cannot write the label sidecar: {exc}") from exc
        self.moves.insert(0, (tmp, path))

    def commit(self, what: Path) -> None:
        try:
            for tmp, final in self.moves:
                os.replace(tmp, final)
        except OSError as exc:
            raise VolumeError(what, f"cannot write: {exc}") from exc

    def __enter__(self) -> _Staging:
        remove_stale_partials(self.folder)
        return self

    def __exit__(self, *exc) -> None:
        for item in self.scratch:
            try:
                if item.is_dir():
                    shutil.rmtree(item)
                elif item.exists():
                    item.unlink()
            except OSError:
                pass  # a later write removes it (its pid is then gone)


def _folder_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _ct_dtype(array: np.ndarray) -> np.dtype:
    if array.dtype == bool:
        return np.dtype(np.uint8)
    if array.dtype in (np.float64, np.float16):
        return np.dtype(np.float32)
    if array.dtype == np.int64:
        lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
        return np.dtype(np.int16) if lo >= -32768 and hi <= 32767 else np.dtype(np.int32)
    return array.dtype


def save_volume(volume: Volume, path: Path | str, *, on_source_grid: bool = True, overwrite: bool = True) -> Path:
    """Write a CT (or any scalar) volume with its exact geometry; the format follows the extension.

    The dtype is kept (int16 HU stays int16, no scaling); float64 is stored as float32. With
    ``on_source_grid`` (default) a loaded volume is written on its file's own grid (see the module doc);
    volumes built in memory are written as they are. ``overwrite=False`` refuses to replace any existing
    file of the output (see ``check_target``); an input file of ``volume`` is never replaced.
    """
    path = Path(path)
    ext = _check_target(path, volume, overwrite=overwrite)
    if volume.array.ndim != 3:
        raise VolumeError(path, f"expected a 3-D array, got shape {volume.array.shape}")
    vol = source_volume(volume) if on_source_grid else volume
    dtype = _ct_dtype(vol.array)
    if vol.array.dtype != dtype:
        vol = Volume(vol.array.astype(dtype), vol.spacing, vol.origin, vol.direction, vol.meta)
    with _Staging(_folder_of(path)) as staging:
        staging.image(vol, path, ext, "LSMS Viewer volume")
        staging.commit(path)
    return path


def _labels_present(mask: np.ndarray) -> list[int]:
    """The non-zero values of a mask, found slice by slice: np.unique of the whole mask sorts a full copy."""
    found: set[int] = set()
    for plane in mask if mask.ndim > 2 else [mask]:
        found.update(int(v) for v in np.unique(plane))
    return sorted(found - {0})


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
              on_source_grid: bool = True, overwrite: bool = True) -> Path:
    """Write ``mask`` (shape of ``reference.array``, bool or label numbers) as uint8/uint16.

    ``labels``: optional list of LabelInfo (or dicts with id/name/color/expression), or a mapping
    id -> LabelInfo/dict/name. A JSON sidecar (``<name>.json``) is written when labels are given or the
    mask holds more than one label; the mask and the sidecar are committed together (see ``_Staging``).
    ``overwrite=False`` refuses to replace any existing file of the output; a sidecar that is not this
    image's LSMS label sidecar (a BIDS sidecar, another image's labels) is never replaced. Returns the
    mask path.
    """
    path = Path(path)
    ext = _check_target(path, reference, overwrite=overwrite)
    mask = np.asarray(mask)
    if mask.shape != reference.shape:
        raise VolumeError(path, f"mask shape {mask.shape} differs from the CT's {reference.shape}")
    mask = _mask_dtype(mask, path)
    present = _labels_present(mask)
    with_sidecar = labels is not None or len(present) > 1
    if with_sidecar:
        _check_target(path, reference, overwrite=overwrite, sidecar=True)
    vol = source_volume(reference, mask) if on_source_grid else reference.with_array(mask)
    vol = Volume(np.ascontiguousarray(vol.array), vol.spacing, vol.origin, vol.direction)
    with _Staging(_folder_of(path)) as staging:
        if with_sidecar:
            staging.json(_sidecar(labels, present, path), sidecar_path(path))
        staging.image(vol, path, ext, "LSMS Viewer mask")
        staging.commit(path)
    return path


def _sidecar(labels, present: list[int], path: Path) -> dict:
    infos = _normalise_labels(labels, present)
    return {
        "format": "lsms-labels",
        "version": 1,
        "image": path.name,
        "labels": [
            {"id": i.id, "name": i.name, "color": [int(c) for c in i.color],
             "expression": i.expression, **({"extra": i.extra} if i.extra else {})}
            for i in infos
        ],
    }


def read_label_sidecar(path: Path | str) -> list[LabelInfo]:
    """Read the labels written next to a mask by ``save_mask`` (empty list if there is none)."""
    side = sidecar_path(path)
    if not side.exists():
        return []
    from lsms_core.bounded_read import read_json

    data = read_json(side, MAX_SIDECAR_BYTES, VolumeError, "label sidecar")
    try:
        return [LabelInfo(int(d["id"]), str(d["name"]), tuple(int(c) for c in d["color"]),
                          str(d.get("expression", "")), dict(d.get("extra", {}))) for d in data["labels"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VolumeError(side, f"invalid label sidecar: {exc}") from exc


__all__ = ["LabelInfo", "save_volume", "save_mask", "read_label_sidecar", "sidecar_path", "check_target",
           "data_files", "remove_stale_partials"]

"""Reader and writer of the referring-segmentation dataset format, version 1.

The format (``shared/docs/dataset-format.md``)::

    <root>/dataset.json      {"format": "refhl-seg", "version": 1, "name", "description", "license", "created_by"}
    <root>/manifest.jsonl    one JSON object per line = one (slice, referred lesion) sample
    <root>/images/...        2D slices: .npy int16/float32 HU, or 8-bit windowed grayscale .png
    <root>/masks/...         2D masks: 8-bit .png or .npy, non-zero = the referred lesion

Reading validates every line and reports *all* problems with their manifest line numbers in one
:class:`DatasetError`; unknown keys (top-level and per line) are kept and written back unchanged.
Writing is atomic per file (temp file in the same folder, then ``os.replace``), never overwrites an
existing image or mask, and appending to a dataset keeps its lines and never reuses one of its case ids.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from lsms_core.checks import text_problem
from lsms_core.errors import DatasetError

FORMAT_NAME = "refhl-seg"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".npy", ".png")
MASK_SUFFIXES = (".png", ".npy")
_KNOWN_KEYS = (
    "id",
    "case_id",
    "split",
    "image",
    "mask",
    "expressions",
    "spacing",
    "slice_index",
    "lesion_id",
    "attributes",
)
_MAX_LISTED_ERRORS = 20
# A CT slice is 512 or 1024 pixels a side; 8192 leaves room for any real 2D image and refuses, before
# anything is decoded or allocated, the PNG bombs and .npy headers that claim 10^5 x 10^5.
MAX_IMAGE_SIDE = 8192
MAX_HEADER_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 512 << 20


@dataclass
class Sample:
    """One manifest line: a slice, the mask of the referred lesion, and the expressions that refer to it."""

    id: str
    case_id: str
    split: str
    image: str
    mask: str
    expressions: list[str]
    spacing: tuple[float, float]  # (row, col) pixel size in mm
    slice_index: int | None = None
    lesion_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, kept verbatim
    line: int | None = None  # 1-based manifest line it was read from

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "case_id": self.case_id,
            "split": self.split,
            "image": self.image,
            "mask": self.mask,
            "expressions": list(self.expressions),
            "spacing": [float(self.spacing[0]), float(self.spacing[1])],
        }
        if self.slice_index is not None:
            d["slice_index"] = int(self.slice_index)
        if self.lesion_id is not None:
            d["lesion_id"] = self.lesion_id
        if self.attributes:
            d["attributes"] = self.attributes
        for k, v in self.extra.items():
            d.setdefault(k, v)
        return d

    @property
    def where(self) -> str:
        return f"manifest.jsonl line {self.line}" if self.line else f"sample {self.id!r}"


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_relpath(value: Any, key: str) -> str | None:
    """Return an error string for a path that is not a safe relative POSIX path under the root."""
    if not isinstance(value, str) or not value.strip():
        return f'"{key}" must be a non-empty string (a path relative to the dataset folder)'
    p = PurePosixPath(value.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", value) or ".." in p.parts:
        return f'"{key}" must be relative to the dataset folder and stay inside it, got {value!r}'
    suffixes = IMAGE_SUFFIXES if key == "image" else MASK_SUFFIXES
    if p.suffix.lower() not in suffixes:
        return f'"{key}" must end with {" or ".join(suffixes)}, got {value!r}'
    return None


def parse_line(obj: Any, line: int) -> tuple[Sample | None, list[str]]:
    """Validate one decoded manifest object; returns the sample or the list of problems (without line prefix)."""
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"]
    errs: list[str] = []
    for key in ("id", "case_id"):
        if not isinstance(obj.get(key), str) or not obj.get(key).strip():
            errs.append(f'"{key}" must be a non-empty string')
    if obj.get("split") not in SPLITS:
        errs.append(f'"split" must be one of {", ".join(SPLITS)}, got {obj.get("split")!r}')
    for key in ("image", "mask"):
        e = _check_relpath(obj.get(key), key)
        if e:
            errs.append(e)
    ex = obj.get("expressions")
    if not isinstance(ex, list) or not ex:
        errs.append('"expressions" must be a non-empty list of strings')
    elif not all(isinstance(s, str) and s.strip() for s in ex):
        errs.append('"expressions" must hold only non-empty strings')
    else:
        errs.extend(f'"expressions"[{i}]: {e}' for i, s in enumerate(ex) if (e := text_problem(s)))
    sp = obj.get("spacing")
    if not (isinstance(sp, list) and len(sp) == 2 and all(_is_number(s) and s > 0 for s in sp)):
        errs.append(f'"spacing" must be [row_mm, col_mm], two positive numbers, got {sp!r}')
    si = obj.get("slice_index")
    if si is not None and (not isinstance(si, int) or isinstance(si, bool) or si < 0):
        errs.append(f'"slice_index" must be a non-negative integer, got {si!r}')
    lid = obj.get("lesion_id")
    if lid is not None and not isinstance(lid, str):
        errs.append(f'"lesion_id" must be a string, got {lid!r}')
    attrs = obj.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        errs.append(f'"attributes" must be an object, got {type(attrs).__name__}')
    if errs:
        return None, errs
    return (
        Sample(
            id=obj["id"],
            case_id=obj["case_id"],
            split=obj["split"],
            image=obj["image"].replace("\\", "/"),
            mask=obj["mask"].replace("\\", "/"),
            expressions=[s.strip() for s in ex],
            spacing=(float(sp[0]), float(sp[1])),
            slice_index=si,
            lesion_id=lid,
            attributes=dict(attrs or {}),
            extra={k: v for k, v in obj.items() if k not in _KNOWN_KEYS},
            line=line,
        ),
        [],
    )


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


# ----------------------------------------------------------------------------------------------- reading


@dataclass
class RefDataset:
    """A dataset read from disk: its header (``info``) and its samples in manifest order."""

    root: Path
    info: dict[str, Any]
    samples: list[Sample]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def split(self, name: str) -> list[Sample]:
        if name not in SPLITS:
            raise DatasetError(name, f"unknown split; expected one of {', '.join(SPLITS)}")
        return [s for s in self.samples if s.split == name]

    @property
    def case_ids(self) -> set[str]:
        return {s.case_id for s in self.samples}

    def case_splits(self) -> dict[str, str]:
        return {s.case_id: s.split for s in self.samples}

    def image_path(self, sample: Sample) -> Path:
        return self.root / sample.image

    def mask_path(self, sample: Sample) -> Path:
        return self.root / sample.mask

    def load_image(self, sample: Sample) -> tuple[np.ndarray, bool]:
        """(image, windowed): float32 HU for .npy, uint8 for windowed .png."""
        path = self.image_path(sample)
        _refuse_outside(self.root, path, f"{sample.where}: image")
        return read_image_file(path, sample.where)

    def load_mask(self, sample: Sample) -> np.ndarray:
        path = self.mask_path(sample)
        _refuse_outside(self.root, path, f"{sample.where}: mask")
        return read_mask_file(path, sample.where)

    def load_pair(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, bool]:
        """Image, mask and the windowed flag; a mask whose shape differs from the image is an error."""
        image, windowed = self.load_image(sample)
        mask = self.load_mask(sample)
        if mask.shape != image.shape:
            raise DatasetError(
                self.mask_path(sample),
                f"{sample.where}: mask shape {mask.shape} differs from image shape {image.shape}",
            )
        return image, mask, windowed

    def verify_files(self) -> list[str]:
        """Read every image and mask; return the problems found (line-numbered), empty when all is well."""
        problems: list[str] = []
        for s in self.samples:
            try:
                self.load_pair(s)
            except DatasetError as exc:
                problems.append(f"{exc.what}: {exc.why}")
        return problems


def outside_root(root: Path, path: Path) -> Path | None:
    """Where ``path`` really leads when a link takes it out of ``root`` (None while it stays inside).

    Manifest paths are checked lexically when read (no ``..``, not absolute); this is the check of the
    file system: a symbolic link inside the dataset that points elsewhere would otherwise hand any file
    on the machine to training, evaluation overlays and previews.
    """
    try:
        real_root = root.resolve()
        real = path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return path
    return None if real == real_root or real_root in real.parents else real


def _refuse_outside(root: Path, path: Path, what: str) -> None:
    real = outside_root(root, path)
    if real is not None:
        raise DatasetError(path, f"{what} is a link that leads out of the dataset folder (to {real}); "
                                 "dataset files must stay inside it")


def _raise_collected(root: Path, errors: list[str]) -> None:
    shown = errors[:_MAX_LISTED_ERRORS]
    more = len(errors) - len(shown)
    msg = f"{len(errors)} problem(s):\n  " + "\n  ".join(shown)
    if more:
        msg += f"\n  ... and {more} more"
    raise DatasetError(root, msg)


def read_header(root: Path) -> dict[str, Any]:
    from lsms_core.bounded_read import read_json

    path = root / "dataset.json"
    if not path.is_file():
        raise DatasetError(root, "not a dataset folder: dataset.json is missing")
    _refuse_outside(root, path, "dataset.json")
    info = read_json(path, MAX_HEADER_BYTES, DatasetError, "dataset.json")
    if not isinstance(info, dict):
        raise DatasetError(path, "must hold a JSON object")
    if info.get("format") != FORMAT_NAME:
        raise DatasetError(path, f'"format" must be "{FORMAT_NAME}", got {info.get("format")!r}')
    if info.get("version") != FORMAT_VERSION:
        raise DatasetError(
            path, f"version {info.get('version')!r} is not supported (this reader knows version 1)"
        )
    return info


def read_dataset(root: str | os.PathLike, *, check_files: bool = True) -> RefDataset:
    """Read and validate a dataset folder.

    Every problem (bad JSON, missing key, duplicate id, a case in two splits, a missing image or mask when
    ``check_files``) is collected with its manifest line number and raised together as one
    :class:`DatasetError`. ``check_files`` only checks existence; :meth:`RefDataset.verify_files` reads
    every file (``lsms data check`` does).
    """
    from lsms_core.bounded_read import read_text

    root = Path(root)
    info = read_header(root)
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise DatasetError(root, "manifest.jsonl is missing")
    _refuse_outside(root, manifest, "manifest.jsonl")
    text = read_text(manifest, MAX_MANIFEST_BYTES, DatasetError, "manifest.jsonl")
    samples: list[Sample] = []
    errors: list[str] = []
    seen_ids: dict[str, int] = {}
    case_split: dict[str, tuple[str, int]] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(f"manifest.jsonl line {n}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            errors.append(f"manifest.jsonl line {n}: JSON nested too deeply to be a manifest line")
            continue
        sample, errs = parse_line(obj, n)
        if errs:
            errors.extend(f"manifest.jsonl line {n}: {e}" for e in errs)
            continue
        assert sample is not None
        if sample.id in seen_ids:
            errors.append(
                f"manifest.jsonl line {n}: id {sample.id!r} already used on line {seen_ids[sample.id]}"
            )
            continue
        seen_ids[sample.id] = n
        prev = case_split.setdefault(sample.case_id, (sample.split, n))
        if prev[0] != sample.split:
            errors.append(
                f"manifest.jsonl line {n}: case {sample.case_id!r} is in split {sample.split!r} here but in "
                f"{prev[0]!r} on line {prev[1]} (splits must never mix a case)"
            )
            continue
        if check_files:
            for key in ("image", "mask"):
                if not (root / getattr(sample, key)).is_file():
                    errors.append(f"manifest.jsonl line {n}: {key} file {getattr(sample, key)!r} is missing")
                elif (real := outside_root(root, root / getattr(sample, key))) is not None:
                    errors.append(f"manifest.jsonl line {n}: {key} file {getattr(sample, key)!r} is a link "
                                  f"that leads out of the dataset folder (to {real})")
        samples.append(sample)
    if errors:
        _raise_collected(manifest, errors)
    return RefDataset(root=root, info=info, samples=samples)


# ----------------------------------------------------------------------------------------------- splits


def assign_splits(
    case_ids: Iterable[str], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, str]:
    """Deterministically assign whole cases to train/val/test in the given proportions.

    With at least three cases, val and test each get at least one case when their fraction is non-zero,
    so a tiny dataset still evaluates on unseen cases.
    """
    ids = sorted(set(case_ids))
    if any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise DatasetError("fractions", f"must be non-negative and not all zero, got {fractions}")
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    total = sum(fractions)
    n = len(order)
    n_val = round(n * fractions[1] / total)
    n_test = round(n * fractions[2] / total)
    if n >= 3:
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = max(0, n - n_val - n_test)
    out = {}
    for i, cid in enumerate(order):
        out[cid] = "train" if i < n_train else ("val" if i < n_train + n_val else "test")
    return out


# ----------------------------------------------------------------------------------------------- writing


class DatasetWriter:
    """Write a new dataset, or append to an existing one.

    >>> with DatasetWriter(root, name="my set") as w:
    ...     cid = w.new_case_id("case")
    ...     img = w.write_image(cid, "095", slice_hu)              # images/<cid>/095.npy
    ...     msk = w.write_mask(cid, "095_l1", lesion_mask)        # masks/<cid>/095_l1.png
    ...     w.add(Sample(id=f"{cid}_s095_l1", case_id=cid, split="train", image=img, mask=msk,
    ...                  expressions=["the hypodense lesion in the right lobe"], spacing=(0.7, 0.7)))

    The manifest and dataset.json are written (atomically) on :meth:`close` / leaving the ``with`` block;
    images and masks are written atomically as they come and never replace an existing file.
    A new dataset needs an empty or absent folder; ``append=True`` requires an existing valid dataset.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        append: bool = False,
        name: str | None = None,
        description: str = "",
        license: str = "",
        created_by: str = "lsms",
        extra_info: dict[str, Any] | None = None,
    ):
        self.root = Path(root)
        self._lines: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._case_split: dict[str, str] = {}
        self._existing_cases: set[str] = set()
        self._reserved: set[str] = set()  # case ids handed out by new_case_id/unique_case_id
        if append:
            existing = read_dataset(self.root, check_files=False)
            self.info = dict(existing.info)
            for s in existing.samples:
                self._lines.append(s.to_json())
                self._ids.add(s.id)
                self._case_split[s.case_id] = s.split
            self._existing_cases = set(self._case_split)
        else:
            if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
                raise DatasetError(
                    self.root,
                    "already exists and is not empty; choose a new folder or append to a dataset",
                )
            self.root.mkdir(parents=True, exist_ok=True)
            self.info = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "name": name or self.root.name,
                "description": description,
                "license": license,
                "created_by": created_by,
            }
        if extra_info:
            self.info.update(extra_info)
        if name and append:
            self.info.setdefault("name", name)
        self._closed = False

    # -- case ids
    @property
    def case_ids(self) -> set[str]:
        return set(self._case_split)

    def new_case_id(self, prefix: str = "case", width: int = 3) -> str:
        """The next free ``<prefix><number>`` id: one more than the highest number already used."""
        pat = re.compile(rf"^{re.escape(prefix)}(\d+)$")
        nums = [int(m.group(1)) for c in set(self._case_split) | self._reserved if (m := pat.match(c))]
        cid = f"{prefix}{(max(nums) + 1) if nums else 0:0{width}d}"
        self._reserved.add(cid)
        return cid

    def unique_case_id(self, wanted: str) -> str:
        """``wanted`` if it is free, else ``wanted_2``, ``wanted_3``... (never a case already in the dataset)."""
        taken = set(self._case_split) | self._reserved
        cid, k = wanted, 2
        while cid in taken:
            cid, k = f"{wanted}_{k}", k + 1
        self._reserved.add(cid)
        return cid

    def split_of(self, case_id: str) -> str | None:
        return self._case_split.get(case_id)

    # -- files
    def _target(self, folder: str, case_id: str, stem: str, suffix: str) -> tuple[Path, str]:
        if not re.match(r"^[A-Za-z0-9._-]+$", case_id) or not re.match(r"^[A-Za-z0-9._-]+$", stem):
            raise DatasetError(
                f"{case_id}/{stem}", "case ids and file names may hold only letters, digits, . _ -"
            )
        rel = f"{folder}/{case_id}/{stem}{suffix}"
        path = self.root / rel
        if path.exists():
            raise DatasetError(path, "already exists; a dataset writer never overwrites a file")
        _refuse_outside(self.root, path, "the file to write")
        return path, rel

    def write_image(self, case_id: str, stem: str, image: np.ndarray, *, suffix: str = ".npy") -> str:
        """Write a 2D slice (HU as .npy int16/float32, or windowed uint8 as .png); returns its relative path."""
        if suffix not in IMAGE_SUFFIXES:
            raise DatasetError(suffix, f"image suffix must be one of {IMAGE_SUFFIXES}")
        path, rel = self._target("images", case_id, stem, suffix)
        _atomic_write_bytes(path, encode_image(image, suffix))
        return rel

    def write_mask(self, case_id: str, stem: str, mask: np.ndarray, *, suffix: str = ".png") -> str:
        if suffix not in MASK_SUFFIXES:
            raise DatasetError(suffix, f"mask suffix must be one of {MASK_SUFFIXES}")
        path, rel = self._target("masks", case_id, stem, suffix)
        _atomic_write_bytes(path, encode_mask(mask, suffix))
        return rel

    # -- lines
    def add(self, sample: Sample | dict[str, Any]) -> None:
        """Add one manifest line (validated now, so a bad line fails where it is made)."""
        obj = sample.to_json() if isinstance(sample, Sample) else dict(sample)
        n = len(self._lines) + 1
        parsed, errs = parse_line(obj, n)
        if errs:
            raise DatasetError(f"sample {obj.get('id')!r}", "; ".join(errs))
        assert parsed is not None
        if parsed.id in self._ids:
            raise DatasetError(f"sample {parsed.id!r}", "id already used in this dataset")
        if parsed.case_id in self._existing_cases:
            raise DatasetError(
                f"sample {parsed.id!r}",
                f"case {parsed.case_id!r} already belongs to the dataset being appended to; use new_case_id()",
            )
        prev = self._case_split.setdefault(parsed.case_id, parsed.split)
        if prev != parsed.split:
            raise DatasetError(
                f"sample {parsed.id!r}",
                f"case {parsed.case_id!r} is already in split {prev!r}, not {parsed.split!r}",
            )
        for key in ("image", "mask"):
            if not (self.root / getattr(parsed, key)).is_file():
                raise DatasetError(
                    f"sample {parsed.id!r}", f"{key} file {getattr(parsed, key)!r} does not exist"
                )
        self._ids.add(parsed.id)
        self._lines.append(obj)

    def __len__(self) -> int:
        return len(self._lines)

    def flush(self) -> None:
        """Write dataset.json and manifest.jsonl as they stand now (atomically)."""
        header = json.dumps(self.info, indent=2, ensure_ascii=False) + "\n"
        _atomic_write_bytes(self.root / "dataset.json", header.encode("utf-8"))
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in self._lines)
        _atomic_write_bytes(self.root / "manifest.jsonl", body.encode("utf-8"))

    def close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # On failure the manifest still lists every completed line, so the files written so far stay usable.
        self.close()

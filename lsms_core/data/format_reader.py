"""Dataset format: reading a dataset folder, every manifest problem collected with its line number, and the
read dataset (``RefDataset``) that loads its files, never through a link that leads out of the folder.

Part of the dataset format's reader and writer (``lsms_core.data.format``, whose docstring describes it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsms_core.data.format_files import read_image_file, read_mask_file
from lsms_core.data.format_manifest import (
    _MAX_LISTED_ERRORS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_HEADER_BYTES,
    MAX_MANIFEST_BYTES,
    SPLITS,
    Sample,
    parse_line,
)
from lsms_core.errors import DatasetError

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


"""Dataset format: ``DatasetWriter``, which writes a new dataset or appends to one (files atomically, never
over an existing file, lines validated as they are added).

Part of the dataset format's reader and writer (``lsms_core.data.format``, whose docstring describes it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from lsms_core.data.format_files import _atomic_write_bytes, encode_image, encode_mask
from lsms_core.data.format_manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_SUFFIXES,
    MASK_SUFFIXES,
    Sample,
    parse_line,
)
from lsms_core.data.format_reader import _refuse_outside, read_dataset
from lsms_core.errors import DatasetError

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

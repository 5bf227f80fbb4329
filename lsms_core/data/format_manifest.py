"""Dataset format: its constants and limits, the manifest line (``Sample``) and its validation, and the
assignment of whole cases to splits.

Part of the dataset format's reader and writer (``lsms_core.data.format``, whose docstring describes it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
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


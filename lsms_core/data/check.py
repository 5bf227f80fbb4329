"""``lsms data check``: validate a dataset and summarise it (splits, lesion sizes, expressions, vocabulary)."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from lsms_core.data.format import read_dataset
from lsms_core.errors import DatasetError

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def _positive_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and value > 0)


def _quant(values) -> dict:
    if not len(values):
        return {}
    a = np.asarray(values, dtype=float)
    return {"min": round(float(a.min()), 1), "median": round(float(np.median(a)), 1),
            "p90": round(float(np.percentile(a, 90)), 1), "max": round(float(a.max()), 1)}


def check_dataset(root: str | Path, *, read_files: bool = True, top_words: int = 30) -> dict:
    """Validate ``root`` and return a report; ``report["problems"]`` lists every problem found (line-numbered)."""
    root = Path(root)
    try:
        ds = read_dataset(root, check_files=True)
    except DatasetError as exc:
        return {"root": str(root), "valid": False, "problems": [f"{exc.what}: {exc.why}"]}
    problems: list[str] = []
    diam: list[float] = []
    empty = 0
    for s in ds.samples:
        d = s.attributes.get("diameter_mm")
        if d is not None and not _positive_number(d):
            problems.append(f"{s.where}: attributes.diameter_mm must be a positive number of millimetres, "
                            f"got {d!r}")
            d = None
        if not read_files:
            if d is not None:
                diam.append(float(d))
            continue
        try:
            image, mask, _ = ds.load_pair(s)
        except DatasetError as exc:
            problems.append(f"{exc.what}: {exc.why}")
            continue
        n = int(mask.sum())
        if n == 0:
            empty += 1
            problems.append(f"{s.where}: mask {s.mask!r} is empty (no referred lesion)")
            continue
        # equivalent-circle diameter when the line does not carry a measured one
        diam.append(float(d) if d is not None else 2.0 * np.sqrt(n * s.spacing[0] * s.spacing[1] / np.pi))
    splits = {}
    for name in ("train", "val", "test"):
        ss = ds.split(name)
        splits[name] = {"samples": len(ss), "cases": len({s.case_id for s in ss}),
                        "expressions": sum(len(s.expressions) for s in ss)}
    words: Counter = Counter()
    lengths = []
    for s in ds.samples:
        for e in s.expressions:
            toks = _WORD.findall(e.lower())
            lengths.append(len(toks))
            words.update(toks)
    return {
        "root": str(root), "valid": not problems, "problems": problems, "name": ds.info.get("name"),
        "samples": len(ds), "cases": len(ds.case_ids), "splits": splits, "files_read": read_files,
        "lesion_diameter_mm": _quant(diam), "expression_words": _quant(lengths),
        "expressions": len(lengths), "vocabulary_size": len(words),
        "top_words": words.most_common(top_words), "empty_masks": empty,
    }


def format_report(r: dict, with_problems: bool = True) -> str:
    """The report as text; ``with_problems=False`` leaves the problem lines out (the CLI prints them as
    ``error:`` lines on stderr)."""
    if "samples" not in r:
        return "INVALID " + r["root"] + ("\n  " + "\n  ".join(r["problems"]) if with_problems else "")
    lines = [f"{'OK' if r['valid'] else 'INVALID'} {r['root']} ({r.get('name')}): {r['samples']} samples, "
             f"{r['cases']} cases, {r['expressions']} expressions"]
    for name, s in r["splits"].items():
        lines.append(f"  {name:5s}: {s['samples']:6d} samples {s['cases']:5d} cases {s['expressions']:7d} expressions")
    lines.append(f"  lesion diameter (mm): {r['lesion_diameter_mm']}")
    lines.append(f"  expression length (words): {r['expression_words']}")
    lines.append(f"  vocabulary: {r['vocabulary_size']} words; most common: "
                 + ", ".join(f"{w} {c}" for w, c in r["top_words"][:20]))
    if r["problems"] and with_problems:
        lines.append(f"  {len(r['problems'])} problem(s):")
        lines += [f"    {p}" for p in r["problems"][:50]]
        if len(r["problems"]) > 50:
            lines.append(f"    ... and {len(r['problems']) - 50} more")
    elif r["problems"]:
        lines.append(f"  {len(r['problems'])} problem(s), listed on stderr")
    return "\n".join(lines)

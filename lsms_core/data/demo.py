"""The demo study shipped in resources/demo: one synthetic CT, one referred lesion, one expression.

``lsms data demo --out resources/demo`` remakes it exactly (fixed seed and lesion recipe). The slice
shown first holds two hypodense metastases in the right lobe (a cyst lies higher up), so the
expression "the larger hypodense lesion in the right lobe" has to choose; the recipe is checked against
the measured facts of that slice, so the words are true of the image.

``read_demo_recipe`` is the one reader of ``demo.json``, for ``lsms segment --demo`` and the viewer's
``--demo``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsms_core.data.facts import slice_facts
from lsms_core.data.synth import SynthCase, SynthError, synth_case
from lsms_core.errors import LSMSError

DEMO_SEED = 20240830
DEMO_LESIONS = [
    {"kind": "metastasis", "diameter_mm": 34.0, "uvt": (-0.55, 0.15, 0.36), "shape": "lobulated",
     "boundary": "clear"},
    {"kind": "metastasis", "diameter_mm": 20.0, "uvt": (-0.35, -0.3, 0.38), "shape": "round", "boundary": "clear"},
    {"kind": "cyst", "diameter_mm": 16.0, "uvt": (-0.45, -0.15, 0.16), "shape": "round", "boundary": "clear"},
]
DEMO_EXPRESSION = "the larger hypodense lesion in the right lobe"
DEMO_RECIPE = "demo.json"
DEMO_CT = "ct.nii.gz"


class DemoNotInstalled(LSMSError):
    """This copy has no demo case: no demo.json, or not the CT it names."""


@dataclass
class DemoRecipe:
    """What ``demo.json`` says: the CT, the words that refer to the demo lesion, and how to show it."""

    ct: Path
    expression: str
    lesion_mask: Path | None = None  # the referred lesion's reference mask, when installed
    slice_index: int | None = None  # the slice to show first
    window: tuple[float, float] | None = None  # (width, level) HU to show


def read_demo_recipe(folder: str | os.PathLike) -> DemoRecipe:
    """The demo case's recipe in ``folder``.

    Raises :class:`DemoNotInstalled` naming demo.json or the CT it names when either is missing, and
    :class:`LSMSError` naming demo.json when it is unreadable or lacks the words. ``ct`` defaults to
    ct.nii.gz; a ``slice`` or ``window`` of the wrong type is ignored (the view keeps its own).
    """
    recipe = Path(folder) / DEMO_RECIPE
    if not recipe.is_file():
        raise DemoNotInstalled(recipe, "the demo case is not installed in this copy (missing file)")
    from lsms_core.bounded_read import read_json

    data = read_json(recipe, 1 << 20, LSMSError, "demo recipe")  # a recipe is a few lines, never megabytes
    expression = data.get("expression") if isinstance(data, dict) else None
    ct_name = data.get("ct", DEMO_CT) if isinstance(data, dict) else None
    if not isinstance(expression, str) or not expression.strip() or not isinstance(ct_name, str):
        raise LSMSError(recipe, "invalid demo recipe: expected a JSON object with the keys ct and expression")
    ct = recipe.parent / ct_name
    if not ct.is_file():
        raise DemoNotInstalled(ct, "the demo CT named in demo.json is missing")
    mask_name = data.get("lesion_mask")
    lesion_mask = recipe.parent / mask_name if isinstance(mask_name, str) and mask_name else None
    slice_index = data.get("slice")
    window = data.get("window")
    return DemoRecipe(
        ct=ct,
        expression=expression.strip(),
        lesion_mask=lesion_mask if lesion_mask is not None and lesion_mask.is_file() else None,
        slice_index=slice_index if isinstance(slice_index, int) and not isinstance(slice_index, bool) else None,
        window=(float(window[0]), float(window[1])) if (isinstance(window, list) and len(window) == 2 and all(
            isinstance(v, (int, float)) for v in window)) else None,
    )


def demo_case() -> SynthCase:
    return synth_case(DEMO_SEED, size=256, n_slices=32, case_id="demo", phase="portal venous",
                      spacing_mm=0.7, thickness_mm=5.0, lesions=DEMO_LESIONS)


def choose_demo_slice(case: SynthCase) -> int:
    """The slice where both right-lobe metastases show, both hypodense, the target clearly larger."""
    sp = (case.spacing[1], case.spacing[0])
    best, best_area = None, 0
    for k in range(case.ct.shape[0]):
        masks = {s.id: case.lesions[k] == i for i, s in enumerate(case.lesion_specs, 1)}
        if not (masks["l1"].any() and masks["l2"].any()):
            continue
        facts = {f.lesion_id: f for f in slice_facts(case.ct[k], masks, sp, liver=case.liver[k],
                                                     segments=case.segments[k])}
        if "l1" not in facts or "l2" not in facts:
            continue
        right_hypo = [f for f in facts.values() if f.lobe == "right" and f.density == "hypo"]
        ok = (facts["l1"] in right_hypo and facts["l2"] in right_hypo and len(right_hypo) == 2
              and facts["l1"].long_mm >= 1.3 * facts["l2"].long_mm)
        area = int(masks["l1"].sum())
        if ok and area > best_area:
            best, best_area = k, area
    if best is None:
        raise SynthError("demo", "no slice makes the demo expression true; the recipe no longer fits the generator")
    return best


def write_demo(out: str | os.PathLike, *, overwrite: bool = False) -> dict:
    """Write ct.nii.gz, lesion.nii.gz and demo.json into ``out``; returns demo.json's content."""
    from lsms_core.volume import save_mask, save_volume

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    targets = [out / n for n in ("ct.nii.gz", "lesion.nii.gz", "demo.json")]
    if not overwrite and any(t.exists() for t in targets):
        raise SynthError(out, "already holds a demo; pass overwrite (--force) to replace it")
    for t in targets:
        if overwrite and t.exists():
            t.unlink()
    case = demo_case()
    k = choose_demo_slice(case)
    vol = case.volume()
    save_volume(vol, out / "ct.nii.gz")
    target = (case.lesions == 1).astype(np.uint8)
    save_mask(target, vol, out / "lesion.nii.gz",
              labels=[{"id": 1, "name": "referred lesion", "expression": DEMO_EXPRESSION}])
    info = {
        "ct": "ct.nii.gz",
        "expression": DEMO_EXPRESSION,
        "lesion_mask": "lesion.nii.gz",
        "slice": int(k),
        "window": [400, 40],
        "description": "Synthetic portal-venous abdominal CT (not a patient): two hypodense metastases in the "
                       "right lobe and, higher up, a small cyst. Made by `lsms data demo`.",
        "seed": DEMO_SEED,
        "spacing_mm": [round(s, 4) for s in case.spacing],
        "lesions": [{"id": s.id, "kind": s.kind, "diameter_mm": round(s.diameter_mm, 1)} for s in case.lesion_specs],
    }
    from lsms_core.data.format import _atomic_write_bytes

    _atomic_write_bytes(out / "demo.json", (json.dumps(info, indent=2) + "\n").encode())
    return info

"""The demo study shipped in resources/demo: one synthetic CT, one referred lesion, one expression.

``lsms data demo --out resources/demo`` remakes it exactly (fixed seed and lesion recipe). The slice
shown first holds two hypodense metastases in the right lobe (a cyst lies higher up), so the
expression "the larger hypodense lesion in the right lobe" has to choose; the recipe is checked against
the measured facts of that slice, so the words are true of the image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lsms_core.data.facts import slice_facts
from lsms_core.data.synth import SynthCase, SynthError, synth_case

DEMO_SEED = 20240830
DEMO_LESIONS = [
    {"kind": "metastasis", "diameter_mm": 34.0, "uvt": (-0.55, 0.15, 0.36), "shape": "lobulated",
     "boundary": "clear"},
    {"kind": "metastasis", "diameter_mm": 20.0, "uvt": (-0.35, -0.3, 0.38), "shape": "round", "boundary": "clear"},
    {"kind": "cyst", "diameter_mm": 16.0, "uvt": (-0.45, -0.15, 0.16), "shape": "round", "boundary": "clear"},
]
DEMO_EXPRESSION = "the larger hypodense lesion in the right lobe"


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

"""``lsms data synth``: synthetic cases written as a referring-segmentation dataset (+ NIfTI volumes).

One manifest line per (slice, visible lesion); expressions come from the lesion's measured facts and
what the generator knows (type, enhancement), and are unambiguous among the lesions of that slice.
Splits are by case. A DATA_CARD.md says what the data covers and what it cannot stand in for.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lsms_core.data.expressions import compose_expressions, describe_count
from lsms_core.data.facts import slice_facts
from lsms_core.data.format import DatasetWriter, Sample, _atomic_write_bytes, assign_splits
from lsms_core.data.synth import SynthCase, synth_case

_ENHANCEMENT = {
    ("cyst", "arterial"): "without enhancement", ("cyst", "portal venous"): "without enhancement",
    ("cyst", "delayed"): "without enhancement",
    ("hemangioma", "arterial"): "with peripheral nodular enhancement",
    ("hemangioma", "portal venous"): "with peripheral nodular enhancement and centripetal fill-in",
    ("hemangioma", "delayed"): "with centripetal fill-in",
    ("hcc", "arterial"): "with arterial hyperenhancement",
    ("hcc", "portal venous"): "with washout and an enhancing capsule",
    ("hcc", "delayed"): "with washout and an enhancing capsule",
    # after the arterial phase the rim is painted near-iso to the liver (unseen, unlabelled): no words for it
    ("metastasis", "arterial"): "with rim enhancement",
    ("fnh", "arterial"): "with homogeneous arterial enhancement and a central scar",
    ("fnh", "portal venous"): "with a central scar", ("fnh", "delayed"): "with a central scar",
}

#: lesions whose median differs from the surrounding liver by less than this are taken as invisible
MIN_VISIBLE_HU = 6.0
#: Rose's criterion: a reader detects a uniform region when its contrast-to-noise ratio, accumulated over
#: the independent noise samples it covers, reaches about 5 (Rose 1948; the model behind CT low-contrast
#: detectability). Measured on a fresh test set (seed 424242): the 23 of 123 cuts below it were drawn at
#: Dice 0.115 by LiteMedSAM even from their true box; no reader would have written a phrase about them.
ROSE_K = 5.0


def is_visible(diff_hu: float | None, area_px: int, noise_sd_hu: float, noise_corr_px: float = 0.0,
               calcified: bool = False) -> bool:
    """Whether a reader sees a lesion cut of ``area_px`` pixels whose median differs from the liver around
    it by ``diff_hu``, in noise of ``noise_sd_hu`` blurred by a Gaussian of ``noise_corr_px``."""
    if calcified or diff_hu is None:
        return True
    if abs(diff_hu) < MIN_VISIBLE_HU:
        return False
    samples = area_px / max(1.0, 4.0 * np.pi * noise_corr_px ** 2)  # a Gaussian blur's correlation area
    return abs(diff_hu) / max(noise_sd_hu, 1e-6) * np.sqrt(samples) >= ROSE_K


def enhancement_phrase(kind: str, phase: str) -> str | None:
    return _ENHANCEMENT.get((kind, phase))


def case_samples(case: SynthCase, rng: np.random.Generator) -> list[dict]:
    """Per visible lesion and slice: slice index, lesion id, mask, facts, expressions (no files written)."""
    sp = (case.spacing[1], case.spacing[0])  # (row, col) mm
    liver = case.liver
    noise_sd = float(case.params.get("noise_sd_hu", 0.0))
    noise_corr = float(case.params.get("noise_corr_px", 0.0))
    out = []
    for k in range(case.ct.shape[0]):
        ids = [int(i) for i in np.unique(case.lesions[k]) if i]
        if not ids:
            continue
        z = case.origin[2] + k * case.spacing[2]
        masks, known = {}, {}
        for i in ids:
            spec = case.lesion_specs[i - 1]
            masks[spec.id] = case.lesions[k] == i
            calc = any(abs(z - (spec.center[2] + oz * spec.radii[2])) < cr for _, _, oz, cr in spec.calcifications)
            known[spec.id] = {"lesion_type": spec.kind, "boundary": spec.boundary, "calcified": calc,
                              "enhancement": enhancement_phrase(spec.kind, case.phase)}
        t = float(case.t_slices[k])
        facts = slice_facts(case.ct[k], masks, sp, liver=liver[k], segments=case.segments[k], z_frac=t,
                            hilum=case.hilum_rc if abs(t - case.t_portal) < 0.1 else None, known=known)
        # A lesion cut a reader cannot see on this phase (too close to its liver for its size, against this
        # case's noise) is one no annotator would draw or count: it is neither referred to, nor used in
        # comparatives, nor in the every-lesion target of training.
        facts = [f for f in facts if is_visible(f.density_diff_hu, int(masks[f.lesion_id].sum()), noise_sd,
                                                noise_corr, bool(f.calcified))]
        ranks = describe_count(facts)
        for f in facts:
            exprs = compose_expressions(f, facts, rng)
            if not exprs:
                continue
            attrs = f.attributes()
            attrs.update({"phase": case.phase, "lesions_on_slice": len(facts), "size_rank": ranks[f.lesion_id],
                          "synthetic": True})
            out.append({"slice": k, "lesion_id": f.lesion_id, "mask": masks[f.lesion_id], "facts": f,
                        "expressions": exprs, "attributes": attrs})
    return out


def write_case_volumes(case: SynthCase, folder: Path) -> dict[str, str]:
    """ct.nii.gz, lesions.nii.gz (label i = lesion l<i>, with a label sidecar), liver.nii.gz, case.json."""
    from lsms_core.volume import save_mask, save_volume

    folder.mkdir(parents=True, exist_ok=True)
    vol = case.volume()
    save_volume(vol, folder / "ct.nii.gz")
    labels = [{"id": i + 1, "name": f"{s.id} {s.kind}", "expression": ""} for i, s in enumerate(case.lesion_specs)]
    present = {int(v) for v in np.unique(case.lesions) if v}
    save_mask(case.lesions, vol, folder / "lesions.nii.gz", labels=[d for d in labels if d["id"] in present] or None)
    save_mask(case.liver.astype(np.uint8), vol, folder / "liver.nii.gz")
    info = {"case_id": case.case_id, "seed": case.seed, "phase": case.phase, "params": case.params,
            "lesions": [{"id": s.id, "label": i + 1, "kind": s.kind, "center_mm": [round(c, 2) for c in s.center],
                         "radii_mm": [round(r, 2) for r in s.radii], "shape": s.shape, "boundary": s.boundary,
                         "calcifications": len(s.calcifications)} for i, s in enumerate(case.lesion_specs)]}
    _atomic_write_bytes(folder / "case.json", (json.dumps(info, indent=2) + "\n").encode())
    return {"ct": "ct.nii.gz", "lesions": "lesions.nii.gz", "liver": "liver.nii.gz"}


def write_synth_dataset(out: str | os.PathLike, *, cases: int, seed: int = 0, size: int = 256,
                        slices_per_case: int = 32, volumes: bool = True, phase: str | None = None,
                        progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate ``cases`` synthetic cases into a new dataset folder; returns a summary (counts, timings)."""
    from lsms_core.data.synth import SynthError

    # Settings are checked before the folder is made, so a typo leaves nothing behind.
    if cases < 1:
        raise SynthError("cases", f"must be at least 1, got {cases}")
    if not 32 <= size <= 1024:
        raise SynthError("size", f"must be between 32 and 1024 pixels, got {size}")
    if not 1 <= slices_per_case <= 512:
        raise SynthError("slices-per-case", f"must be between 1 and 512, got {slices_per_case}")
    out = Path(out)
    t0 = time.perf_counter()
    case_ids = [f"synth{seed:04d}_{i:03d}" for i in range(cases)]
    splits = assign_splits(case_ids, seed=seed)
    stats: Counter = Counter()
    types: Counter = Counter()
    phases: Counter = Counter()
    diam: list[float] = []
    render_s = 0.0
    desc = ("Synthetic abdominal CT slices with liver lesions and referring expressions, made by "
            "`lsms data synth`; NOT patient data. See DATA_CARD.md.")
    with DatasetWriter(out, name=f"lsms-synth-seed{seed}", description=desc, license="CC0-1.0 (synthetic)",
                       created_by="lsms data synth",
                       extra_info={"synthetic": True, "generator": {"seed": seed, "cases": cases, "size": size,
                                                                     "slices_per_case": slices_per_case}}) as w:
        for ci, cid in enumerate(case_ids):
            case_seed = int(np.random.SeedSequence([seed, ci]).generate_state(1)[0])
            r0 = time.perf_counter()
            case = synth_case(case_seed, size=size, n_slices=slices_per_case, case_id=cid, phase=phase)
            render_s += time.perf_counter() - r0
            phases[case.phase] += 1
            rng = np.random.default_rng([case_seed, 7])
            written: dict[int, str] = {}
            for s in case_samples(case, rng):
                k = s["slice"]
                if k not in written:
                    written[k] = w.write_image(cid, f"{k:03d}", case.ct[k])
                mask = w.write_mask(cid, f"{k:03d}_{s['lesion_id']}", s["mask"])
                texts = [t for t, _ in s["expressions"]]
                w.add(Sample(id=f"{cid}_s{k:03d}_{s['lesion_id']}", case_id=cid, split=splits[cid],
                             image=written[k], mask=mask, expressions=texts,
                             spacing=(case.spacing[1], case.spacing[0]), slice_index=k, lesion_id=s["lesion_id"],
                             attributes=s["attributes"],
                             extra={"expression_fractions": [f for _, f in s["expressions"]]}))
                stats["samples"] += 1
                stats[f"split_{splits[cid]}"] += 1
                stats["expressions"] += len(texts)
                types[s["attributes"].get("lesion_type", "?")] += 1
                diam.append(s["attributes"]["diameter_mm"])
            stats["slices_with_lesions"] += len(written)
            if volumes:
                write_case_volumes(case, out / "volumes" / cid)
            if progress:
                progress(ci + 1, cases)
            w.flush()  # a cut-off run still leaves a valid dataset of the cases done
    seconds = time.perf_counter() - t0
    summary = {
        "cases": cases, "slices": cases * slices_per_case, "size": size, "seed": seed,
        "samples": stats["samples"], "expressions": stats["expressions"],
        "slices_with_lesions": stats["slices_with_lesions"],
        "splits": {k: stats[f"split_{k}"] for k in ("train", "val", "test")},
        "lesion_types": dict(types), "phases": dict(phases),
        "diameter_mm": _quantiles(diam), "seconds": round(seconds, 2), "render_seconds": round(render_s, 2),
    }
    volumes_line = ("- `volumes/<case>/`: ct.nii.gz (int16 HU), lesions.nii.gz (label i = lesion l<i>), "
                    "liver.nii.gz, case.json." if volumes else "- No volumes were written (--no-volumes).")
    _atomic_write_bytes(out / "DATA_CARD.md", data_card({**summary, "volumes_line": volumes_line}).encode("utf-8"))
    return summary


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {}
    a = np.asarray(values)
    return {"min": round(float(a.min()), 1), "median": round(float(np.median(a)), 1),
            "p90": round(float(np.percentile(a, 90)), 1), "max": round(float(a.max()), 1)}


def data_card(summary: dict) -> str:
    return f"""# Data card: LSMS synthetic abdominal CT (referring lesion segmentation)

Generated by `lsms data synth --cases {summary['cases']} --seed {summary['seed']} --size {summary['size']} \
--slices-per-case {summary['slices'] // max(summary['cases'], 1)}`.
Synthetic: no patient data; reproducible from the seed. Licence: CC0 (synthetic).

## Contents
- {summary['cases']} cases, {summary['slices']} axial slices ({summary['size']}x{summary['size']}), of which
  {summary['slices_with_lesions']} show at least one lesion.
- {summary['samples']} samples (slice x referred lesion), {summary['expressions']} expressions;
  splits by case: {summary['splits']}.
- Lesion types per sample: {summary['lesion_types']}; contrast phases per case: {summary['phases']}.
- Lesion long axis on the slice (mm): {summary['diameter_mm']}.
{summary['volumes_line']}

## What it covers
Upper-abdominal CT at textbook attenuation values for four contrast phases (non-contrast, arterial,
portal venous, delayed): air, skin, subcutaneous and visceral fat, abdominal wall and paraspinal muscles,
vertebra and ribs (cortical and cancellous bone), lung bases, a liver with right/left lobes, caudate lobe,
Couinaud segments bounded by the hepatic veins and the portal plane, hepatic and portal veins, spleen,
kidneys (cortex/medulla), stomach and colon with gas, small bowel, pancreas, aorta (with wall
calcification), IVC, gallbladder, the CT table. Body size, fat, positions, pixel spacing (0.62-0.9 mm at
512, the same field of view at smaller sizes), slice thickness (2-5 mm) and noise (correlated, 9-27 HU at
512) vary per case; 10% of livers are fatty.
Liver lesions: cysts, hemangiomas (peripheral nodular enhancement, fill-in), hepatocellular carcinoma
(arterial hyperenhancement, washout, capsule), metastases (hypodense, rim enhancement, necrosis,
calcification), FNH (arterial hyperenhancement, central scar); round/oval/lobulated/irregular shapes,
clear or blurred margins, 5-100 mm (log-uniform over each type's range, most of them small or medium),
up to 6 per case. A lesion is referred to on a slice only where a reader could see it there: its median
differs from the liver around it by at least 6 HU and by Rose's criterion against the case's noise
(contrast / noise SD x sqrt(independent noise samples in the cut) >= 5); cuts below it are painted and
left out of the lines, the comparatives and the counts.
Expressions are built from what is measured on each slice's masks (long/short axis in mm, density
relative to the surrounding liver, shape, segment, subcapsular/hilum/dome position) plus the generator's
lesion type and enhancement, as one full expression and partial ones with about 50% and 25% of the
attributes (`expression_fractions` on each manifest line). Each is checked to fit only the referred
lesion among those on its slice; comparatives ("the larger", "the most anterior", "the more right-sided")
are added where needed. Left/right are the patient's.

## What it cannot stand in for
- Real anatomy and pathology: shapes are smooth implicit surfaces; no vessel trees with true branching,
  no bile ducts, adrenals, diaphragmatic crura; organs never vary in topology; no post-surgical states,
  ascites, cirrhosis morphology, tumour thrombus, satellite nodules.
- Real image physics: noise is stationary and Gaussian-like, no beam hardening or streaks from bone or
  metal, no motion, no reconstruction-kernel variety beyond a blur, no partial volume along z.
- Clinical language: expressions are template-built; radiologists' free text is far more varied.
- Validation: a model trained or tested only on this data says nothing about real patients. Use it to
  exercise the pipeline, to pre-train, and to check that the code works; evaluate on real, annotated CT.
"""

"""Every figure the demo weights' model card and the README quote, from one command.

    python scripts/evaluate_demo.py --checkpoint resources/models/lsms-e0-demo --out eval-demo \
        [--heldout DIR] [--real ../shared/data/3dircadb1.7] [--refine auto|on|off]

1. A freshly generated synthetic test set (``lsms data synth --cases 8 --seed 424242``, the generator's
   default size; made in OUT/heldout unless --heldout names one): the pipeline with full words, and with no
   words (``--text-fraction 0``), plus nonsense words on every slice with lesions.
2. The real CT (3D-IRCADb-01 patient 1.7, when present): its tumour slices with plain expressions.
3. The refiner's ceiling on the synthetic set: LiteMedSAM from each reference mask's own box (+5 px), no
   network at all. It bounds what any chooser can reach through the two-stage path on that data.
4. ``OUT/figures.json`` (everything) and ``OUT/figures.md`` (the tables the card pastes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lsms(*args: str) -> None:
    cmd = [sys.executable, "-m", "lsms_core.cli.main", *args]
    print("$ lsms " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def row(name: str, r: dict) -> str:
    g = r.get("groups", {}).get("lesions_on_slice", {}).get("2+", {})
    raw = r.get("raw", {})
    return (f"| {name} | {r['samples']} | {r['mDice']:.3f} | {r['mIoU']:.3f} | {r['oIoU']:.3f} | "
            f"{r['prec@0.5']:.3f} | {r['hit']:.3f} | {g.get('mDice', float('nan')):.3f} | "
            f"{g.get('hit', float('nan')):.3f} | {raw.get('mDice', float('nan')):.3f} | {raw.get('hit', float('nan')):.3f} |")


def refiner_ceiling(dataset: Path, margin_px: int = 5) -> dict:
    """LiteMedSAM drawing each sample's lesion from the reference mask's own box, scored as ``lsms eval``
    scores (one pair per expression): overall, by lesions on the slice, lesion area and contrast."""
    import numpy as np

    from lsms_core.data.format_reader import read_dataset
    from lsms_core.metrics import MetricAccumulator, score_pair
    from lsms_core.refiner.boxes import mask_box, pad_box
    from lsms_core.refiner.refiner import Refiner

    refiner = Refiner.load(device="auto")
    acc = MetricAccumulator()
    ds = read_dataset(dataset)
    for sample in ds:
        image, mask, windowed = ds.load_pair(sample)
        if windowed or not mask.any():
            continue  # the refiner needs HU; an empty reference has no box
        mask = mask > 0
        box = pad_box(mask_box(mask), (margin_px, margin_px), mask.shape)
        score = score_pair(refiner.segment_box(image.astype(np.float32), box), mask)
        attrs = sample.attributes or {}
        area = int(mask.sum())
        groups = {"area_px": "<32" if area < 32 else "32-127" if area < 128 else ">=128"}
        if attrs.get("lesions_on_slice") is not None:
            groups["lesions_on_slice"] = "1" if attrs["lesions_on_slice"] == 1 else "2+"
        dd = attrs.get("density_diff_hu")
        if dd is not None:
            groups["contrast_hu"] = "<20" if abs(dd) < 20 else "20-49" if abs(dd) < 50 else ">=50"
        for i in range(max(1, len(sample.expressions))):
            acc.add_score(score, groups, f"{sample.id}#{i}")
    return {"margin_px": margin_px, **acc.summary()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="demo")
    p.add_argument("--out", required=True)
    p.add_argument("--heldout", help="a generated held-out dataset (default: generate OUT/heldout)")
    p.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "3dircadb1.7"))
    p.add_argument("--refine", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--nonsense", type=int, default=2, help="nonsense expressions per slice with lesions")
    p.add_argument("--no-ceiling", action="store_true",
                   help="skip the refiner's ceiling (it depends on the data and the refiner, not the checkpoint)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    heldout = Path(args.heldout) if args.heldout else out / "heldout"
    if not (heldout / "manifest.jsonl").is_file():
        lsms("data", "synth", "--out", str(heldout), "--cases", "8", "--seed", "424242")
    started = time.perf_counter()
    common = ["--checkpoint", args.checkpoint, "--quiet", "--refine", args.refine]
    runs = {"synthetic, full words": ["--data", str(heldout), "--split", "all", "--nonsense", str(args.nonsense)],
            "synthetic, no words": ["--data", str(heldout), "--split", "all", "--text-fraction", "0"]}
    if Path(args.real, "PATIENT_DICOM").is_dir():
        runs["3D-IRCADb 1.7, plain words"] = ["--data", args.real]
    figures = {}
    for name, extra in runs.items():
        target = out / (name.split(",")[0].replace(" ", "_").replace(".", "") + ("_nowords" if "no words" in name
                                                                                else "") + ".json")
        lsms("eval", *extra, *common, "--json", str(target), "--overwrite")
        figures[name] = json.loads(target.read_text())
    ceiling = None if args.no_ceiling else refiner_ceiling(heldout)
    lines = ["| set | samples | mDice | mIoU | oIoU | Prec@0.5 | hit | mDice 2+ | hit 2+ | raw mDice | raw hit |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row(name, r) for name, r in figures.items()]
    full = figures["synthetic, full words"]
    if full.get("nonsense"):
        n = full["nonsense"]
        lines.append(f"\nNonsense words on slices with lesions: {n['empty_with_note']} of {n['tried']} returned "
                     f"nothing with a note ({n['rate']:.3f}).")
    rules = full.get("resolver", {}).get("hit", {})
    if rules:
        lines.append("\nResolver rule (hit on the synthetic set, same candidates): " +
                     ", ".join(f"{k} {v:.3f}" for k, v in rules.items()))
    if ceiling is not None:
        lines.append(f"\nRefiner ceiling on the synthetic set (LiteMedSAM from each reference's own box, "
                     f"+{ceiling['margin_px']} px, no network): mDice {ceiling['mDice']:.3f} over {ceiling['samples']} "
                     "expressions; " + "; ".join(f"{g}: " + ", ".join(f"{k} {v['mDice']:.3f} ({v['samples']})"
                                                                     for k, v in d.items())
                                                 for g, d in ceiling["groups"].items()))
    (out / "figures.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "figures.json").write_text(json.dumps({"checkpoint": args.checkpoint, "seconds": time.perf_counter() - started,
                                                  "figures": figures, "refiner_ceiling": ceiling}, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

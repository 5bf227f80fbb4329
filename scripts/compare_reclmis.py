"""LSMS and RecLMIS (original and adapted) trained with the same budget on the same fresh synthetic data,
scored on the same held-out generated split and on a real CT, from one command.

    python scripts/compare_reclmis.py --out /tmp/reclmis-compare --minutes 15 \
        [--input-size 128] [--real ../shared/data/3dircadb1.7] [--doc docs/reclmis-comparison.md]

1. The held-out split: ``lsms data synth --cases 4 --seed 515151`` (the generator's default size), never
   trained on (training draws its cases from other seeds).
2. Per network (lsms-t, reclmis, reclmis-adapted): ``lsms train --synth`` with the same seed, input size,
   batch, learning rate, CPU threads and wall-clock limit (``--time-limit-min``; the epoch that crosses the
   limit finishes); the best checkpoint by the run's own generated validation split.
3. ``lsms eval --network-only --refine off`` of each best checkpoint on the held-out split (``--split all``)
   and on the real CT's tumour slices (3D-IRCADb-01 1.7 when present); ``lsms bench model`` for parameters,
   MACs and CPU latency per slice (batch 1) at the training input size.
4. A markdown table (``--doc``) and the JSON beside it (same name, ``.json``). Run folders, weights and the
   held-out data stay under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("lsms-t", "reclmis", "reclmis-adapted")


def lsms(*args: str, threads: int, capture: bool = False) -> str:
    cmd = [sys.executable, "-m", "lsms_core.cli.main", *args]
    print("$ lsms " + " ".join(args), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.PIPE if capture else None, text=True)
    return done.stdout or ""


def machine(threads: int) -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "python": platform.python_version(), "load_average_at_start": load}


def read_history(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summarise(history: list[dict]) -> dict:
    """What a run's log says: epochs, steps, samples, the best validation epoch, and the segmentation loss
    (LSMSLoss's cross-entropy + soft Dice, the same term for every network) of its first and last epochs."""
    if not history:
        return {"epochs": 0, "steps": 0, "samples": 0}
    best = max((r for r in history if "val_mDice" in r), key=lambda r: r["val_mDice"], default={})
    last = history[-3:]
    return {"epochs": len(history), "steps": history[-1]["step"], "samples": sum(h["samples"] for h in history),
            "best_epoch": best.get("epoch"), "val_mDice": best.get("val_mDice"), "final_loss": history[-1]["loss"],
            "first_seg": history[0]["seg"], "final_seg": sum(h["seg"] for h in last) / len(last)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="work folder: held-out data, run folders, evaluations")
    p.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget per network")
    p.add_argument("--input-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--synth", type=int, default=4, help="fresh synthetic cases per epoch")
    p.add_argument("--synth-seed", type=int, default=1000)
    p.add_argument("--synth-val-cases", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--real", default=str(ROOT.parent / "shared" / "data" / "3dircadb1.7"))
    p.add_argument("--doc", default=str(ROOT / "docs" / "reclmis-comparison.md"))
    p.add_argument("--render-only", action="store_true",
                   help="only rewrite --doc from the JSON beside it (a finished comparison)")
    args = p.parse_args(argv)
    if args.render_only:
        doc = Path(args.doc)
        payload = json.loads(doc.with_suffix(".json").read_text(encoding="utf-8"))
        for variant, r in payload["results"].items():  # training figures again from logs still in --out
            log = Path(args.out, "runs", variant, "log.jsonl")
            if log.is_file():
                r.update(summarise(read_history(log.parent)))
        doc.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        doc.write_text(render(payload), encoding="utf-8")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t = args.threads
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    info = machine(t)
    heldout = out / "heldout"
    if not (heldout / "manifest.jsonl").is_file():
        lsms("data", "synth", "--out", str(heldout), "--cases", "4", "--seed", "515151", "--no-volumes", threads=t)
    real = Path(args.real) if Path(args.real, "PATIENT_DICOM").is_dir() else None
    results: dict[str, dict] = {}
    for variant in args.variants:
        run = out / "runs" / variant
        begin = time.perf_counter()
        lsms("train", "--variant", variant, "--synth", str(args.synth), "--synth-seed", str(args.synth_seed),
             "--synth-size", "256", "--synth-val-cases", str(args.synth_val_cases),
             "--input-size", str(args.input_size), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
             "--epochs", "100000", "--time-limit-min", str(args.minutes), "--threads", str(t),
             "--seed", "0", "--out", str(run), "--quiet", threads=t)
        train_s = time.perf_counter() - begin
        r: dict = {"train_wall_s": train_s, **summarise(read_history(run))}
        ckpt = run / "best"
        evals = {"synthetic": ["--data", str(heldout), "--split", "all"]}
        if real is not None:
            evals["ircad"] = ["--data", str(real)]
        for name, extra in evals.items():
            target = out / "eval" / f"{variant}-{name}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            lsms("eval", *extra, "--checkpoint", str(ckpt), "--network-only", "--refine", "off", "--threads", str(t),
                 "--quiet", "--json", str(target), "--overwrite", threads=t)
            full = json.loads(target.read_text(encoding="utf-8"))
            r[name] = {k: full.get(k) for k in ("samples", "mDice", "mIoU", "oIoU", "prec@0.5", "hit")}
        printed = lsms("bench", "model", "--checkpoint", str(ckpt), "--size", str(args.input_size), "--batch", "1",
                       "--repeats", "5", "--threads", str(t), "--device", "cpu", "--native", "256", "--json",
                       threads=t, capture=True)
        b = json.loads(printed)
        (out / "eval" / f"{variant}-bench.json").write_text(printed, encoding="utf-8")
        r.update({"params": b["params"], "macs": b["macs"], "cpu_ms_per_slice": b["latency_ms"]})
        results[variant] = r
        print(json.dumps({variant: r}), flush=True)
    budget = {"minutes_per_network": args.minutes, "input_size": args.input_size, "batch_size": args.batch_size,
              "lr": args.lr, "threads": t, "synth_cases_per_epoch": args.synth, "synth_seed": args.synth_seed,
              "synth_size": 256, "synth_val_cases": args.synth_val_cases,
              "heldout": {"cases": 4, "seed": 515151, "split": "all"},
              "real": str(real) if real else None, "scoring": "network alone (--network-only), no refiner"}
    doc = Path(args.doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    payload = {"started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": info, "budget": budget, "results": results}
    doc.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    doc.write_text(render(payload), encoding="utf-8")
    print(f"wrote {doc} and {doc.with_suffix('.json')}")
    return 0


def _f(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(payload: dict) -> str:
    m, b, results = payload["machine"], payload["budget"], payload["results"]
    lines = [
        "# RecLMIS beside LSMS: same data, same budget",
        "",
        f"Written by `scripts/compare_reclmis.py` ({payload['started']} to {payload['finished']}). Each network "
        f"trained from scratch for {b['minutes_per_network']:g} minutes of wall clock (the epoch that crosses the "
        f"limit finishes) on {m['threads']} CPU thread(s) of a {m['cpu']} ({m['cores']} cores, shared with "
        f"another training run; load average at the start {_load(m)}), torch {m['torch']}: fresh synthetic "
        f"cases ({b['synth_cases_per_epoch']} per epoch, seed {b['synth_seed']}, rendered at {b['synth_size']} px), "
        f"input {b['input_size']} px, batch {b['batch_size']}, AdamW lr {b['lr']:g}; the best epoch by the run's own "
        f"generated validation split ({b['synth_val_cases']} cases). The same minutes buy different numbers of "
        "steps: a RecLMIS step costs about ten LSMS steps (MACs below).",
        "",
        "Scores: the network alone (`lsms eval --network-only --refine off`), per (line, expression); "
        "mDice and mIoU are means over expressions, oIoU the cumulative IoU, `hit` the share of predictions "
        "on the referred lesion rather than another. Held-out: `lsms data synth --cases 4 --seed 515151` "
        "(`--split all`, never trained on). Real: 3D-IRCADb-01 patient 1.7, its tumour slices with plain "
        "expressions. Parameters and MACs: the network without the text encoder (MiniLM, frozen, shared by "
        "all three); CPU ms per slice: `lsms bench model` at batch 1 on the same threads, under the same "
        "shared load (a noisy figure). Seg loss: the project's segmentation term (weighted cross-entropy + "
        "soft Dice, the same for the three networks) on the training batches, first epoch / mean of the last "
        "three; every epoch's cases are freshly generated, so each batch is data the network had not seen.",
        "",
        "Networks (text encoder: the frozen MiniLM-L6, 384-wide token states, for all three): `lsms-t`, LSMS "
        "with MSCAN-T widths; `reclmis`, RecLMIS as released (U-Net, conditioned interaction at 1/16, "
        "reconstructions and token-level contrast in training only) with a Conv1d(384 -> 512) text bridge; "
        "`reclmis-adapted`, the same with the spec's referring adaptations (the 1/8 and 1/4 skips gated by "
        "the patches-of-interest map, that map supervised by the referred lesion, lesion-level contrast "
        "against the slice's other lesions, learnable mask token, loss on masked tokens). Every choice is "
        "listed in `lsms_core/model/reclmis.py`. All three share the project's loss (`LSMSLoss`); RecLMIS adds "
        "its reconstruction and contrastive terms.",
        "",
        "| network | epochs | steps | samples seen | best epoch (val mDice) | seg loss first / last epochs | held-out mDice | mIoU | oIoU | Prec@0.5 | hit | "
        "3D-IRCADb mDice | mIoU | oIoU | Prec@0.5 | hit | params (M) | GMACs | CPU ms/slice |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, r in results.items():
        s, i = r.get("synthetic", {}), r.get("ircad", {})
        lines.append(
            f"| {variant} | {r['epochs']} | {r['steps']} | {r['samples']} | {r.get('best_epoch')} "
            f"({_f(r.get('val_mDice'))}) | {_f(r.get('first_seg'))} / "
            f"{_f(r.get('final_seg'))} | {_f(s.get('mDice'))} | {_f(s.get('mIoU'))} | "
            f"{_f(s.get('oIoU'))} | {_f(s.get('prec@0.5'))} | {_f(s.get('hit'))} | {_f(i.get('mDice'))} | "
            f"{_f(i.get('mIoU'))} | {_f(i.get('oIoU'))} | {_f(i.get('prec@0.5'))} | {_f(i.get('hit'))} | "
            f"{r['params'] / 1e6:.2f} | {r['macs'] / 1e9:.2f} | {r['cpu_ms_per_slice']:.0f} |")
    samples = {k: (r.get("synthetic", {}).get("samples"), r.get("ircad", {}).get("samples"))
               for k, r in results.items()}
    first = next(iter(samples.values()), (None, None))
    lines += ["", f"Expressions scored: held-out {first[0]}, 3D-IRCADb {first[1]}. Minutes this short are far from "
              "convergence for every network: the table compares what each architecture makes of the same small "
              "budget on this machine, not what it reaches trained to the end. A run whose validation mDice never "
              "rises above its first epoch's exports that first epoch: its scores are those weights'.", ""]
    lines += [f"- {note}" for note in payload.get("notes", [])] + ([""] if payload.get("notes") else [])
    return "\n".join(lines)


def _load(m: dict) -> str:
    load = m.get("load_average_at_start")
    return "n/a" if not load else f"{load[0]:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())

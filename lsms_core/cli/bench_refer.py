"""``lsms bench refer``: the whole referring pipeline (network, second look, candidates, resolution) on a CT
run, with the second look at the liver off and on in the same run, so its cost is a ratio.

The refiner is left out (``lsms bench refine`` times it); the CT is the demo case unless ``--ct`` names
another volume the loader reads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from lsms_core.cli.bench import add_json_flag, emit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("refer", help="referring pipeline per slice, second look at the liver off and on")
    parser.add_argument("--checkpoint", default="demo", help="checkpoint folder, or demo (default)")
    parser.add_argument("--ct", help="a CT volume (default: the demo case)")
    parser.add_argument("--expression", help="the words (default: the demo case's)")
    parser.add_argument("--slices", type=int, default=8, help="consecutive slices from the middle (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from lsms_core.engine import Segmenter
    from lsms_core.referring.pipeline import refer
    from lsms_core.resources import resources_dir
    from lsms_core.volume import load_volume

    words = args.expression
    if args.ct:
        vol = load_volume(args.ct)
        words = words or "the hypodense lesion in the liver"
    else:
        folder = resources_dir() / "demo"
        recipe = json.loads((folder / "demo.json").read_text())
        vol = load_volume(folder / recipe["ct"])
        words = words or recipe["expression"]
    n = max(1, min(args.slices, vol.shape[0]))
    start = (vol.shape[0] - n) // 2
    run_slices = vol.array[start:start + n]
    spacing = (float(vol.spacing[2]), float(vol.spacing[1]), float(vol.spacing[0]))
    seg = Segmenter.from_checkpoint(args.checkpoint, device=args.device, threads=args.threads)
    result = {"checkpoint": seg.name, "device": seg.device, "slices": n, "native": list(run_slices.shape[1:]),
              "expression": words}
    for zoom in (False, True):
        refer(seg, run_slices, words, spacing, zoom=zoom)  # warm-up: allocations, the text cache
        times, referral = [], None
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            referral = refer(seg, run_slices, words, spacing, zoom=zoom)
            times.append(time.perf_counter() - t0)
        key = "zoom_on" if zoom else "zoom_off"
        result[key] = {"s_per_slice": statistics.median(times) / n, "stages": referral.stages,
                       "candidates": len(referral.resolution.candidates) if referral.resolution else 0}
    result["zoom_cost"] = result["zoom_on"]["s_per_slice"] / result["zoom_off"]["s_per_slice"]
    import torch

    result["threads"] = torch.get_num_threads()
    lines = [f"{seg.name} on {seg.device} ({result['threads']} thread(s)), {n} slices of {run_slices.shape[1:]}:",
             f"  one look:   {result['zoom_off']['s_per_slice']:.3f} s/slice "
             f"({result['zoom_off']['candidates']} candidates)",
             f"  two looks:  {result['zoom_on']['s_per_slice']:.3f} s/slice "
             f"({result['zoom_on']['candidates']} candidates; stages {' + '.join(result['zoom_on']['stages'])})",
             f"  the second look costs {result['zoom_cost']:.2f}x one look"]
    emit(result, args.json, lines)
    return 0

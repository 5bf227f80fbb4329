"""``lsms bench refine``: what the box-prompted refiner (LiteMedSAM) costs, on the CPU and CUDA when present.

Figures, each the median of ``--repeats`` runs on a synthetic 512x512 CT slice with a hypodense lesion:
- ``encoder_ms``: one image embedding (the cache cleared before each run);
- ``decoder_ms_per_box``: one box decoded against a cached embedding, logits resized to the native grid;
- ``two_stage_ms_per_slice``: what the refinement of one slice costs in a run (encoder + the measured box
  rule's passes), and ``ratio_to_encoder``, that cost over the encoder's (the goal is at most 1.5);
- ``slices_per_s``: ``refine_region`` over ``--slices`` slices of a referred region (progress, cancel
  checks and propagation included);
- ``peak_mb``: peak resident memory above the loaded model during the region run (CPU), or peak CUDA
  memory allocated.
"""

from __future__ import annotations

import argparse
import statistics
import time

from lsms_core.cli.bench import add_json_flag, emit
from lsms_core.progress import run_to_end


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("refine", help="LiteMedSAM refiner: encoder, decoder per box, slices/s, memory")
    parser.add_argument("--device", default="default",
                        help="cpu, cuda, auto, or default = the CPU and also CUDA when present")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (median reported)")
    parser.add_argument("--slices", type=int, default=6, help="slices of the refined region (default 6)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--refiner", default="medsam-lite", help="refiner name or folder")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def synthetic_case(n: int, size: int = 512, seed: int = 0):
    """(slices HU int16 (n, size, size), true lesion, raw region, probabilities): an abdomen-like ellipse at
    60 HU with a -10 HU lesion whose radius changes along z; the probabilities are the lesion seen on a
    40x40 grid (what LSMS at 160 px draws), the raw region those above 0.5."""
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) / (0.38 * size)) ** 2 + ((xx - size / 2) / (0.45 * size)) ** 2 <= 1
    slices = np.full((n, size, size), -1000.0, np.float32)
    truth = np.zeros((n, size, size), bool)
    for k in range(n):
        r = 0.09 * size * (1.0 - 0.5 * abs(k - (n - 1) / 2) / max(n / 2, 1))
        lesion = (yy - 0.45 * size) ** 2 + (xx - 0.4 * size) ** 2 <= r * r
        img = np.where(body, 60.0, -1000.0)
        img[lesion] = -10.0
        slices[k] = ndimage.gaussian_filter(img, 1.5) + rng.normal(0, 12, (size, size))
        truth[k] = lesion
    probs = np.stack([ndimage.zoom(ndimage.zoom(t.astype(np.float32), 40 / size, order=1), size / 40, order=1)
                      for t in truth])
    return slices.astype(np.int16), truth, probs > 0.5, probs.clip(0, 1)


def _sync(device: str):
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def measure_device(device: str, args) -> dict:
    from lsms_core.cli.bench_load import _peak_mb, _reset_peak
    from lsms_core.refiner import Refiner
    from lsms_core.refiner.boxes import mask_box
    from lsms_core.refiner.region import refine_slice

    refiner = Refiner.load(args.refiner, device=device, threads=args.threads)
    sync = _sync(refiner.device)
    slices, _, raw, probs = synthetic_case(max(1, args.slices))
    mid = len(slices) // 2
    spacing = (2.5, 0.78, 0.78)
    box = mask_box(raw[mid])
    repeats = max(1, args.repeats)

    def timed(fn, before=None) -> float:
        times = []
        for _ in range(repeats + 1):  # the first run warms up (allocations, kernels)
            if before is not None:
                before()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times[1:]) * 1000.0

    encoder = timed(lambda: refiner.embed(slices[mid]), refiner.clear_cache)
    refiner.embed(slices[mid])
    decoder = timed(lambda: refiner.box_logits(slices[mid], [box]))
    runs = []

    def two_stage():
        _, _, n, _ = refine_slice(refiner, slices[mid], raw[mid], probs[mid], spacing[1:])
        runs.append(n)

    two = timed(two_stage, refiner.clear_cache)
    refiner.clear_cache()
    if refiner.device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
        base = 0.0
    else:
        base = _reset_peak()
    start = time.perf_counter()
    region = run_to_end(refiner.refine_region(slices, raw, probs, spacing))
    sync()
    seconds = time.perf_counter() - start
    if refiner.device.startswith("cuda"):
        import torch

        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_mb() - base
    refined = len(region.passes)
    return {
        "device": refiner.device,
        "encoder_ms": round(encoder, 1),
        "decoder_ms_per_box": round(decoder, 1),
        "two_stage_ms_per_slice": round(two, 1),
        "decoder_runs_per_slice": statistics.median(runs),
        "ratio_to_encoder": round(two / encoder, 3),
        "region_slices": refined,
        "region_seconds": round(seconds, 3),
        "slices_per_s": round(refined / seconds, 3),
        "peak_mb": round(peak, 1),
    }


def run(args) -> int:
    import torch

    from lsms_core.device import resolve_device

    if args.device == "default":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [resolve_device(args.device)]
    runs = [measure_device(d, args) for d in devices]
    first = runs[0]
    result = {"bench": "refine", "threads": torch.get_num_threads(), "repeats": args.repeats, **first,
              "runs": runs}
    lines = ["LiteMedSAM refiner on a synthetic 512x512 CT slice (medians)"]
    for r in runs:
        lines.append(f"  {r['device']:<5}: encoder {r['encoder_ms']:.0f} ms, decoder {r['decoder_ms_per_box']:.0f} ms "
                     f"per box; one refined slice {r['two_stage_ms_per_slice']:.0f} ms "
                     f"({r['ratio_to_encoder']:.2f}x the encoder, {r['decoder_runs_per_slice']:g} decoder runs); "
                     f"region of {r['region_slices']} slices at {r['slices_per_s']:.2f} slices/s, "
                     f"peak {r['peak_mb']:.0f} MB")
    emit(result, args.json, lines)
    return 0

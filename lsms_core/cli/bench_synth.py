"""``lsms bench synth``: synthetic CT generation speed per core (target: >= 20 slices/s at 512x512).

Times are CPU seconds of this process with one BLAS/OpenMP thread, so "per core" holds on a busy
machine; wall-clock figures are reported next to them. Three stages: rendering slices (anatomy, lesions,
blur, noise), the full dataset path (render + facts + expressions + writing .npy/.png/manifest), and
the baseline measured in the same run: the simple phantom of the DICOM test writer, one slice at a time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from lsms_core.cli.bench import add_json_flag, emit

TARGET_SLICES_PER_S = 20.0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("synth", help="synthetic CT generation speed (slices per second per core)")
    parser.add_argument("--size", type=int, default=512, help="matrix size (default 512)")
    parser.add_argument("--cases", type=int, default=3, help="cases to generate (default 3)")
    parser.add_argument("--slices", type=int, default=24, help="slices per case (default 24)")
    parser.add_argument("--seed", type=int, default=0)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _single_thread():
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:  # optional: without it BLAS may use more threads, which CPU time still counts
        import contextlib

        return contextlib.nullcontext()


def run(args) -> int:
    import numpy as np

    from lsms_core.data.synth import synth_case
    from lsms_core.data.synth_dataset import write_synth_dataset
    from lsms_core.volume.synthetic_dicom import _phantom_slice

    n_slices = args.cases * args.slices
    with _single_thread():
        from lsms_core.data.expressions import token_count

        synth_case(args.seed, size=64, n_slices=2)  # imports and first-call costs out of the timings
        token_count("the tokenizer loads once per process")
        c0, w0 = time.process_time(), time.perf_counter()
        for i in range(args.cases):
            synth_case(args.seed + i, size=args.size, n_slices=args.slices)
        render_cpu, render_wall = time.process_time() - c0, time.perf_counter() - w0
        with tempfile.TemporaryDirectory() as tmp:
            c0, w0 = time.process_time(), time.perf_counter()
            summary = write_synth_dataset(os.path.join(tmp, "ds"), cases=args.cases, seed=args.seed,
                                          size=args.size, slices_per_case=args.slices, volumes=False)
            full_cpu, full_wall = time.process_time() - c0, time.perf_counter() - w0
        rng = np.random.default_rng(0)
        c0 = time.process_time()
        for k in range(n_slices):
            _phantom_slice(args.size, args.size, k / max(n_slices - 1, 1), rng)
        base_cpu = time.process_time() - c0
    render_rate = n_slices / render_cpu
    result = {
        "benchmark": "synth", "size": args.size, "cases": args.cases, "slices": n_slices,
        "render_slices_per_cpu_s": round(render_rate, 1),
        "render_slices_per_wall_s": round(n_slices / render_wall, 1),
        "dataset_slices_per_cpu_s": round(n_slices / full_cpu, 1),
        "dataset_slices_per_wall_s": round(n_slices / full_wall, 1),
        "dataset_samples": summary["samples"],
        "baseline_phantom_slices_per_cpu_s": round(n_slices / base_cpu, 1),
        "render_cost_vs_baseline": round(base_cpu and render_cpu / base_cpu, 2),
        "target_slices_per_s_per_core": TARGET_SLICES_PER_S,
        "meets_target": render_rate >= TARGET_SLICES_PER_S,
        "cpu_count": os.cpu_count(),
    }
    emit(result, args.json, [
        f"synthetic CT {args.size}x{args.size}, {n_slices} slices ({args.cases} cases), one thread:",
        f"  render only      {result['render_slices_per_cpu_s']:7.1f} slices/CPU-s "
        f"({result['render_slices_per_wall_s']:.1f}/wall-s)  target >= {TARGET_SLICES_PER_S:.0f}: "
        f"{'met' if result['meets_target'] else 'NOT met'}",
        f"  full dataset     {result['dataset_slices_per_cpu_s']:7.1f} slices/CPU-s "
        f"({result['dataset_slices_per_wall_s']:.1f}/wall-s, {summary['samples']} samples written)",
        f"  baseline phantom {result['baseline_phantom_slices_per_cpu_s']:7.1f} slices/CPU-s "
        f"(ours costs {result['render_cost_vs_baseline']}x its CPU time)",
    ])
    return 0

"""``lsms bench model``: parameters, MACs and latency of the network next to the paper's figures.

On the CPU, latency is also stated against this machine's own floor, measured in the same run: the time
the network's multiply-adds (2 FLOPs each) take at the best float32 matrix-product rate of torch's threads
(``lsms_core.cpu.sgemm_gflops``, timed just before and just after the model). A ratio travels between
machines; milliseconds do not. bfloat16 on a CPU without native support is skipped with the reason.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lsms_core.cli.bench import add_json_flag, emit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("model", help="network size, MACs and inference latency per slice")
    parser.add_argument("--size", type=int, default=480, help="model input size in pixels (default 480)")
    parser.add_argument("--device", default="default",
                        help="cpu, cuda, auto, or default = the CPU and also CUDA when present")
    parser.add_argument("--variant", default="lsms-t",
                        help="lsms-t (default), lsms-w, lsms-e0, or reclmis / reclmis-adapted (measured next to "
                        "lsms-t)")
    parser.add_argument("--checkpoint", help="measure this checkpoint instead of a random one of --variant")
    parser.add_argument("--batch", type=int, default=8, help="batch size for the throughput figure")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--native", type=int, default=512, help="native slice size fed to the engine")
    parser.add_argument("--precision", default="auto",
                        help="auto (float32 on CPU, bf16/fp16 on CUDA), float32, bfloat16 or float16; "
                        "'both' also times bfloat16 next to float32")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: allocations, algorithm choice, text cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_device(folder: Path, device: str, args, precision: str = "auto", macs: int | None = None) -> dict:
    import numpy as np

    from lsms_core.engine import Segmenter
    from lsms_core.errors import LSMSError

    try:
        seg = Segmenter.from_checkpoint(folder, device=device, threads=args.threads, precision=precision)
    except LSMSError as exc:
        if precision != "bfloat16":
            raise
        return {"device": device, "precision": precision, "skipped": exc.why}
    rng = np.random.default_rng(0)
    slices = rng.normal(40, 60, size=(args.batch, args.native, args.native)).astype(np.int16)
    words = "the hypodense lesion in the right lobe"
    if device.startswith("cuda"):
        import torch

        sync = torch.cuda.synchronize
    else:
        def sync():
            return None

    def one():
        seg.predict(slices[0], words, batch_size=1)
        sync()

    def many():
        seg.predict(slices, words, batch_size=args.batch)
        sync()

    on_cpu = seg.device == "cpu"
    if on_cpu:
        from lsms_core.cpu import sgemm_gflops

        before = sgemm_gflops()
    latency = _time(one, args.repeats)
    batched = _time(many, max(1, args.repeats // 2))
    out = {
        "device": seg.device,
        "precision": seg.precision,
        "latency_ms": latency * 1000.0,
        "batch": args.batch,
        "batch_ms_per_slice": batched * 1000.0 / args.batch,
        "slices_per_s": args.batch / batched,
    }
    if on_cpu and macs:
        import torch

        after = sgemm_gflops()
        rate = max(before[0], after[0])
        floor_ms = 2.0 * macs / (rate * 1e9) * 1000.0
        out.update({"sgemm_gflops": rate, "sgemm_gflops_median": statistics.median([before[1], after[1]]),
                    "threads": torch.get_num_threads(), "floor_ms": floor_ms,
                    "latency_to_floor": out["latency_ms"] / floor_ms,
                    "batch_to_floor": out["batch_ms_per_slice"] / floor_ms})
    return out


def _measure(variant: str, args, devices: list[str], tmp: str, checkpoint: str | None = None) -> dict:
    """Parameters, MACs and the timed runs of one network (a random one of ``variant``, or ``checkpoint``)."""
    from lsms_core.checkpoint import create_random_checkpoint, load_checkpoint
    from lsms_core.complexity import count_macs, count_parameters

    if checkpoint:
        folder = Path(checkpoint)
    else:
        folder = create_random_checkpoint(Path(tmp) / variant, variant=variant, input_size=args.size)
    model, config, folder = load_checkpoint(folder)
    params = count_parameters(model)
    macs = count_macs(model, args.size, config.token_length)
    precisions = ["auto", "bfloat16"] if args.precision == "both" else [args.precision]
    runs = [measure_device(folder, d, args, p, macs) for d in devices for p in precisions]
    return {"config": config, "params": params, "macs": macs, "runs": runs}


def _run_lines(runs: list[dict], macs: int) -> list[str]:
    lines = []
    for r in runs:
        if "skipped" in r:
            lines.append(f"  {r['device']:<5} {r['precision']:<8}: skipped: {r['skipped']}")
            continue
        lines.append(
            f"  {r['device']:<5} {r['precision']:<8}: {r['latency_ms']:7.1f} ms/slice at batch 1, "
            f"{r['batch_ms_per_slice']:7.1f} ms/slice at batch {r['batch']} ({r['slices_per_s']:.1f} slices/s)"
        )
        if "floor_ms" in r:
            lines.append(
                f"        = {r['latency_to_floor']:.2f}x this machine's floor at batch 1, "
                f"{r['batch_to_floor']:.2f}x at batch {r['batch']} (floor {r['floor_ms']:.0f} ms: "
                f"{2 * macs / 1e9:.1f} GFLOP at {r['sgemm_gflops']:.1f} GFLOP/s sgemm on {r['threads']} thread(s), "
                "measured in this run)")
    return lines


def _summary(measured: dict, args, torch) -> dict:
    runs = measured["runs"]
    first = next((r for r in runs if "skipped" not in r), None)
    if first is None:
        from lsms_core.errors import LSMSError

        raise LSMSError(f"--precision {args.precision}", runs[0]["skipped"])
    return {
        "variant": measured["config"].variant,
        "params": measured["params"],
        "macs": measured["macs"],
        "size": args.size,
        "device": first["device"],
        "precision": first["precision"],
        "latency_ms": first["latency_ms"],
        "slices_per_s": first["slices_per_s"],
        "threads": torch.get_num_threads(),
        "latency_to_floor": first.get("latency_to_floor"),
        "floor_ms": first.get("floor_ms"),
        "sgemm_gflops": first.get("sgemm_gflops"),
        "runs": runs,
    }


def run(args) -> int:
    import torch

    from lsms_core.complexity import PAPER
    from lsms_core.device import resolve_device
    from lsms_core.model import RECLMIS_VARIANTS
    from lsms_core.model.reclmis import SPEC as RECLMIS_SPEC

    if args.device == "default":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [resolve_device(args.device)]
    with tempfile.TemporaryDirectory() as tmp:
        measured = _measure(args.variant, args, devices, tmp, args.checkpoint)
        variant = measured["config"].variant
        # RecLMIS is measured next to LSMS (lsms-t, the same size, the same run)
        beside = _measure("lsms-t", args, devices, tmp) if variant in RECLMIS_VARIANTS else None
    params, macs = measured["params"], measured["macs"]
    result = _summary(measured, args, torch)
    if beside is None:
        result["paper"] = {"params": PAPER["params"], "gflops": PAPER["gflops"], "input_size": PAPER["input_size"]}
        lines = [
            f"LSMS {variant} at {args.size}x{args.size} (text encoder excluded)",
            f"  parameters : {params / 1e6:6.2f} M   (paper: {PAPER['params'] / 1e6:.2f} M)",
            f"  MACs       : {macs / 1e9:6.2f} G   (paper: {PAPER['gflops']:.2f} GFLOPs at {PAPER['input_size']})",
        ]
        lines += _run_lines(measured["runs"], macs)
    else:
        spec = RECLMIS_SPEC
        result["spec"] = dict(spec)
        result["lsms"] = _summary(beside, args, torch)
        result["lsms"]["paper"] = {"params": PAPER["params"], "gflops": PAPER["gflops"],
                                   "input_size": PAPER["input_size"]}
        lines = [
            f"RecLMIS {variant} at {args.size}x{args.size} (text encoder excluded)",
            f"  parameters : {params / 1e6:6.2f} M   (spec, released code: {spec['params'] / 1e6:.2f} M "
            f"with a 512-wide text Conv1d)",
            f"  MACs       : {macs / 1e9:6.2f} G   (spec, released code: {spec['gmacs']:.2f} G MACs at "
            f"{spec['input_size']}, text encoder excluded)",
        ]
        lines += _run_lines(measured["runs"], macs)
        b_params, b_macs = beside["params"], beside["macs"]
        lines += [
            f"next to LSMS {beside['config'].variant} at {args.size}x{args.size} (text encoder excluded)",
            f"  parameters : {b_params / 1e6:6.2f} M   (paper: {PAPER['params'] / 1e6:.2f} M)",
            f"  MACs       : {b_macs / 1e9:6.2f} G   (paper: {PAPER['gflops']:.2f} GFLOPs at {PAPER['input_size']})",
        ]
        lines += _run_lines(beside["runs"], b_macs)
        lines.append(f"  RecLMIS / LSMS: {params / b_params:.2f}x the parameters, {macs / b_macs:.2f}x the MACs")
    emit(result, args.json, lines)
    return 0

"""``lsms bench train``: training samples per second (forward, loss, backward, AdamW step).

The default configuration is the paper's (lsms-t, 480x480, batch 16, AMP on GPUs). On the CPU a batch of
16 at 480 px needs minutes and many GB, so the CPU figure uses ``--cpu-batch`` (default 2) at the same
size unless told otherwise; the batch used is reported with every figure. Text features are random
tensors of the text encoder's shape, as the frozen-text trainer feeds cached embeddings.
"""

from __future__ import annotations

import argparse
import statistics
import time

from lsms_core.cli.bench import add_json_flag, emit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="training throughput (samples/s) on the CPU and, when present, CUDA")
    parser.add_argument("--size", type=int, default=480, help="input size (default 480, the paper's)")
    parser.add_argument("--batch", type=int, default=16, help="batch size on GPUs (default 16, the paper's)")
    parser.add_argument("--cpu-batch", type=int, default=2, help="batch size on the CPU (default 2)")
    parser.add_argument("--variant", default="lsms-t", help="lsms-t, lsms-s, ..., reclmis, reclmis-adapted")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (median)")
    parser.add_argument("--device", default="default", help="cpu, cuda, or default = CPU and CUDA if present")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--token-length", type=int, default=32)
    add_json_flag(parser)
    parser.set_defaults(func=run)


def measure(device: str, batch: int, args) -> dict:
    import torch

    from lsms_core.model import build_loss, build_model, make_model_config
    from lsms_core.training.objective import param_groups

    torch.manual_seed(0)
    cfg = make_model_config(args.variant)  # LSMS or RecLMIS: the same loop, the network's own loss
    model, loss_fn = build_model(cfg).to(device).train(), build_loss(cfg).to(device)
    opt = torch.optim.AdamW(param_groups([(model, 3e-5), (loss_fn, 3e-5)], 0.01), lr=3e-5)
    on_cuda = device.startswith("cuda")
    amp_dtype = torch.bfloat16 if on_cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if on_cuda and amp_dtype == torch.float16 else None
    x = torch.randn(batch, 3, args.size, args.size, device=device)
    feats = torch.randn(batch, cfg.text_dim, args.token_length, device=device)
    tmask = torch.ones(batch, args.token_length, dtype=torch.long, device=device)
    tmask[:, args.token_length // 2:] = 0
    yy, xx = torch.meshgrid(torch.arange(args.size), torch.arange(args.size), indexing="ij")
    target = (((yy - args.size / 2) ** 2 + (xx - args.size / 3) ** 2) < (args.size / 8) ** 2).long()
    target = target.expand(batch, -1, -1).to(device)

    def step():
        with torch.autocast("cuda", dtype=amp_dtype, enabled=on_cuda):
            loss = loss_fn(model(x, feats, tmask, return_aux=True), target, feats, tmask)["loss"]
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)
        if on_cuda:
            torch.cuda.synchronize()

    step()
    times = []
    for _ in range(max(1, args.steps)):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {"device": device, "batch": batch, "size": args.size, "step_s": median,
              "samples_per_s": batch / median, "amp": str(amp_dtype).replace("torch.", "") if on_cuda else None}
    if on_cuda:
        result["max_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return result


def run(args) -> int:
    import torch

    from lsms_core.device import resolve_device, set_cpu_threads

    set_cpu_threads(args.threads)
    if args.device == "default":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [resolve_device(args.device)]
    runs = [measure(d, args.batch if d.startswith("cuda") else args.cpu_batch, args) for d in devices]
    result = {"variant": args.variant, "size": args.size, "threads": torch.get_num_threads(), "runs": runs,
              "device": runs[0]["device"], "samples_per_s": runs[0]["samples_per_s"]}
    lines = [f"LSMS {args.variant} training step (forward + loss + backward + AdamW) at {args.size}x{args.size}"]
    for r in runs:
        lines.append(f"  {r['device']:<5} batch {r['batch']:>3}: {r['step_s']:7.2f} s/step, "
                     f"{r['samples_per_s']:7.2f} samples/s" + (f" (AMP {r['amp']})" if r["amp"] else ""))
    emit(result, args.json, lines)
    return 0

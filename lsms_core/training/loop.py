"""The training loop: data, text, model and optimiser set up once, then epochs of steps and validation.

Two sources of training data:

- a dataset folder (``data``): its ``train_split``, one expression drawn per line per epoch, validated on
  its ``val_split``;
- fresh synthetic cases (``synth`` > 0): ``synth`` new cases every epoch (see ``synth_stream``), validated
  on a fixed generated split written once into the run folder (``val_data/``, ``synth_val_cases`` cases
  from a seed no training epoch uses).

Either way a real CT (``real_val``) can be scored at every validation; it never chooses the best
checkpoint (the synthetic validation does), so it stays a measurement, not a target.

Reproducibility: the data of epoch e come from generators seeded by (seed, e); the global torch generator
(dropout, drop-path, the NMF bases in training) is re-seeded at each epoch start, so resuming after an
interruption replays what an uninterrupted run does.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lsms_core.errors import ConfigError, DatasetError
from lsms_core.training.config import TrainConfig
from lsms_core.training.distributed import barrier, setup_distributed
from lsms_core.training.logs import plot_curves, write_logs
from lsms_core.training.objective import poly_lr
from lsms_core.training.run_data import (  # noqa: F401  (VAL_DATA re-exported)
    VAL_DATA,
    _data_summary,
    _dataset_loader,
    _mix,
    _real_validation,
    _synthetic_stream,
    _synthetic_validation,
)
from lsms_core.training.run_folder import RunLock, check_run_dir, write_settings
from lsms_core.training.run_model import _build, _export_best, _restore, cpu_native_bf16  # noqa: F401
from lsms_core.training.run_text import _AnyTextEncoder, _TextSetup
from lsms_core.training.state import TrainingError, save_state
from lsms_core.training.text_bank import clean_text

BEST = "best"
EPOCHS = "epochs"  # every validated epoch's checkpoint, with --keep-epochs


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path | None
    history: list[dict]
    best: dict
    stopped_early: bool = False


def train(cfg: TrainConfig, *, resume: bool = False, text_encoder=None, log: Callable[[str], None] = print,
          on_epoch_end: Callable[[dict], None] | None = None, command: str = "") -> TrainResult:
    """Train per ``cfg``; returns the history and the best checkpoint's folder.

    ``text_encoder``: an already loaded :class:`lsms_core.text.TextEncoder` to reuse (else it is loaded
    from ``cfg.text_encoder``). ``on_epoch_end(row)`` is called on the main process after each epoch's
    state is saved; an exception it raises stops training there (the run can be resumed).
    """

    from lsms_core.data.format import read_dataset
    from lsms_core.device import resolve_device, set_cpu_threads

    cfg.validate()
    if not cfg.out or not (cfg.data or cfg.synth):
        raise ConfigError("training config", "out, and data or synth, must be given")
    if cfg.data and cfg.synth:
        raise ConfigError("training config", "give data (a dataset folder) or synth (fresh cases), not both")
    dist_info = setup_distributed(cfg.device)
    if cfg.threads:
        set_cpu_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if dist_info.enabled and device.startswith("cuda"):
        device = f"cuda:{dist_info.local_rank}"
    # The data are checked before the run folder is made, so a typo leaves nothing behind.
    dataset = read_dataset(cfg.data) if cfg.data else None
    if dataset is not None and not dataset.split(cfg.train_split):
        raise DatasetError(cfg.data, f"split {cfg.train_split!r} holds no lines to train on")
    real_val = _real_validation(cfg)
    run_dir = Path(cfg.out)
    state, _changed = check_run_dir(cfg, run_dir, resume, log if dist_info.main else (lambda m: None))
    barrier(dist_info)  # every rank has checked the folder before the first one writes to it
    lock = RunLock(run_dir)
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    try:
        if dist_info.main:
            write_settings(cfg, run_dir)
        barrier(dist_info)
        return _train(cfg, dist_info, device, dataset, real_val, run_dir, state, text_encoder, log, on_epoch_end,
                      command)
    finally:
        lock.release()


# Long by design: the run's set-up then its epoch loop, sharing a dozen locals; each step is already a helper.
def _train(cfg, dist_info, device, dataset, real_val, run_dir, state, text_encoder, log, on_epoch_end, command):
    """Everything after the run folder is checked and locked (see :func:`train`)."""
    import torch

    # ---- data
    if dataset is not None:
        epochs_data, batches_per_epoch, train_samples = _dataset_loader(cfg, dataset, dist_info)
        val_set, val_split = dataset, cfg.val_split
        val_samples = dataset.split(cfg.val_split) if cfg.val_split else []
        data_summary = _data_summary(dataset)
    else:
        epochs_data, batches_per_epoch, data_summary = _synthetic_stream(cfg, dist_info)
        train_samples = []
        # every case of the generated validation set is unseen: all of its lines validate
        val_set, val_split = _synthetic_validation(cfg, run_dir, log), "all"
        val_samples = list(val_set.samples)
        data_summary["validation"] = {"folder": VAL_DATA, "cases": cfg.synth_val_cases, "lines": len(val_samples)}
    if not val_samples and dist_info.main:
        log(f"warning: split {cfg.val_split!r} is empty: no validation, the last epoch is exported")

    # ---- text
    text = _TextSetup(cfg, text_encoder, run_dir, dist_info, log, device)
    text.prepare([e for s in train_samples + val_samples for e in s.expressions], fixed=dataset is not None)

    # ---- model, optimiser
    objective, opt, scaler, use_amp, amp_dtype = _build(cfg, text, device, dist_info)
    start_epoch, global_step, best, history, elapsed0 = 1, 0, {"mDice": -1.0, "epoch": 0}, [], 0.0
    if state is not None:
        start_epoch, global_step, best, history, elapsed0 = _restore(state, objective, opt, scaler, text, cfg,
                                                                     run_dir)
        if dist_info.main:
            log(f"resuming {run_dir} after epoch {start_epoch - 1} (step {global_step})")

    net = objective
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(objective, device_ids=[dist_info.local_rank] if device.startswith("cuda") else None)

    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    from lsms_core.checkpoint import CheckpointConfig

    ckpt_config = CheckpointConfig(
        model={}, name=cfg.name or run_dir.name, variant=cfg.variant,
        text_encoder={"source": text.source, "hidden_size": text.dim, "token_length": cfg.token_length},
        input_size=cfg.input_size, window=[float(v) for v in cfg.window],
        channel_windows=cfg.channel_window_pairs(), crop=cfg.crop, trained=True,
        training_data=data_summary,
    )
    if dist_info.main:
        source = f"{len(train_samples)} train lines" if dataset is not None else f"{cfg.synth} fresh cases/epoch"
        log(f"training {cfg.variant} at {cfg.input_size}px (crop {cfg.crop}) on {device} (world {dist_info.world}): "
            f"{source}, {len(val_samples)} val lines, ~{steps_per_epoch} steps/epoch, epochs {start_epoch}..{cfg.epochs}")

    run_start = time.perf_counter()
    stopped_early = False
    best_folder = run_dir / BEST
    for epoch in range(start_epoch, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        torch.manual_seed(_mix(cfg.seed, epoch, dist_info.rank))
        epochs_data.set_epoch(epoch)
        row, global_step = _train_epoch(cfg, net, objective, opt, scaler, text, epochs_data, batches_per_epoch,
                                        epoch, global_step, total_steps, device, use_amp, amp_dtype, dist_info)
        improved = False
        if dist_info.main:
            model = objective.model
            if val_samples and (epoch % cfg.val_every == 0 or epoch == cfg.epochs):
                metrics = _validate(model, ckpt_config, cfg, val_set, val_split, real_val, text, device, row)
                if cfg.keep_epochs:
                    (run_dir / EPOCHS).mkdir(exist_ok=True)
                    _export_best(run_dir / EPOCHS / f"e{epoch:03d}", model, text.encoder, cfg, ckpt_config, metrics,
                                 epoch, global_step, command)
                improved = metrics["mDice"] > best["mDice"]
                if improved:
                    best = {"mDice": metrics["mDice"], "epoch": epoch, "step": global_step}
                    _export_best(best_folder, model, text.encoder, cfg, ckpt_config, metrics, epoch, global_step,
                                 command)
            elif not val_samples:
                improved = True
                best = {"mDice": float("nan"), "epoch": epoch, "step": global_step}
                _export_best(best_folder, model, text.encoder, cfg, ckpt_config, {}, epoch, global_step, command)
            row["epoch_s"] = time.perf_counter() - epoch_start
            row["elapsed_s"] = elapsed0 + time.perf_counter() - run_start
            row["best"] = improved
            history.append(row)
            save_state(run_dir, objective, text.encoder.model if cfg.text_mode == "finetune" else None, opt, scaler,
                       {"epoch": epoch, "step": global_step, "best": best, "elapsed_s": row["elapsed_s"],
                        "world": dist_info.world})
            write_logs(run_dir, history)
            plot_curves(run_dir, history)
            log(_epoch_line(cfg, row, improved))
        barrier(dist_info)
        if dist_info.main and on_epoch_end is not None:
            on_epoch_end(row)
        if cfg.time_limit_min and epoch < cfg.epochs:
            spent = torch.tensor([time.perf_counter() - run_start + elapsed0])
            if dist_info.enabled:
                import torch.distributed as dist

                dist.broadcast(spent, 0)
            if float(spent) / 60.0 >= cfg.time_limit_min:
                stopped_early = True
                if dist_info.main:
                    log(f"time limit of {cfg.time_limit_min} min reached after epoch {epoch}; "
                        "resume with --resume and a larger --time-limit to continue")
                break
    return TrainResult(run_dir=run_dir, best_checkpoint=best_folder if best_folder.exists() else None,
                       history=history, best=best, stopped_early=stopped_early)


def _epoch_line(cfg: TrainConfig, row: dict, improved: bool) -> str:
    val_text = ""
    if "val_mDice" in row:
        val_text = f" val mDice {row['val_mDice']:.4f} hit {row.get('val_hit', float('nan')):.3f}"
    if "real_mDice" in row:
        val_text += f" real mDice {row['real_mDice']:.4f}"
    extra = "".join(f" {k} {row[k]:.4f}" for k in ("rec_text", "rec_vision", "ccl", "poi") if k in row)
    return (f"epoch {row['epoch']}/{cfg.epochs} step {row['step']} lr {row['lr']:.2e} loss {row['loss']:.4f} "
            f"(seg {row['seg']:.4f} con {row['con']:.4f} aux {row['aux']:.4f} lesion {row['lesion_con']:.4f}{extra})"
            f"{val_text} {row['samples_per_s']:.1f} samples/s{' *best*' if improved else ''}")


def _train_epoch(cfg, net, objective, opt, scaler, text, epochs_data, batches_per_epoch, epoch, global_step,
                 total_steps, device, use_amp, amp_dtype, dist_info):
    """One pass over the epoch's batches; returns the epoch's log row (losses, speed) and the step count."""
    import torch

    net.train()
    if cfg.text_mode == "finetune":
        text.encoder.model.train()
    keys = ["loss", "seg", "con", "aux", "lesion_con"]  # and whatever terms the network's loss adds (RecLMIS)
    sums = dict.fromkeys(keys, 0.0)
    seen = 0
    bar = None
    if dist_info.main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=batches_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                   file=sys.stderr, mininterval=2.0)
    epoch_start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    batches = iter(epochs_data)
    b = 0
    batch = next(batches, None)
    while batch is not None:
        following = next(batches, None)
        x, target = batch["x"].to(device, non_blocking=True), batch["target"].to(device, non_blocking=True)
        aux = batch["aux"].to(device) if batch["aux"] is not None else None
        # Text features are made outside autocast: the frozen cache holds float16, which CPU autocast rejects.
        feats, tmask = text.encode([clean_text(t) for t in batch["texts"]])
        with torch.autocast(device_type=device.split(":")[0], dtype=amp_dtype or torch.float16, enabled=use_amp):
            losses = net(x, feats, tmask, target, aux, batch["aux_valid"].to(device), batch["labels"].to(device),
                         batch["target_label"].to(device))
        loss = losses["loss"] / cfg.grad_accum
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if (b + 1) % cfg.grad_accum == 0 or following is None:
            for g in opt.param_groups:
                g["lr"] = poly_lr(g["base_lr"], global_step, total_steps, cfg.poly_power,
                                  cfg.min_lr * g["base_lr"] / cfg.lr, cfg.warmup_steps)
            if scaler is not None:
                scaler.unscale_(opt)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=True)
            global_step += 1
        n = x.shape[0]
        seen += n
        for k, v in losses.items():
            if k not in sums and v.numel() == 1:
                keys.append(k)
                sums[k] = 0.0
        for k in keys:
            sums[k] += float(losses[k].detach()) * n
        if not math.isfinite(sums["loss"]):
            raise TrainingError(f"epoch {epoch} batch {b}", "the loss became NaN or infinite; lower the "
                                                            "learning rate or turn mixed precision off")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
        batch, b = following, b + 1
    if bar is not None:
        bar.close()
    totals = torch.tensor([sums[k] for k in keys] + [float(seen)], dtype=torch.float64)
    param_diff = None
    if dist_info.enabled:
        import torch.distributed as dist

        dist.all_reduce(totals)
        # Every rank must hold the same weights after each step: gather one checksum per rank.
        checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in objective.parameters())],
                                dtype=torch.float64)
        gathered = [torch.zeros_like(checksum) for _ in range(dist_info.world)]
        dist.all_gather(gathered, checksum)
        param_diff = float(max(abs(float(g) - float(gathered[0])) for g in gathered))
    seen_all = max(1.0, float(totals[-1]))
    train_s = time.perf_counter() - epoch_start
    row = {"epoch": epoch, "step": global_step, "lr": opt.param_groups[0]["lr"],
           **{k: float(totals[i]) / seen_all for i, k in enumerate(keys)},
           "samples": int(seen_all), "train_s": train_s, "samples_per_s": seen_all / train_s,
           "ranks_max_param_diff": param_diff}
    return row, global_step


def _validate(model, ckpt_config, cfg: TrainConfig, val_set, val_split: str, real_val, text: _TextSetup,
              device: str, row: dict) -> dict:
    """Score the synthetic (or dataset) validation split, and the real CT when given, into ``row``.

    A network with the every-lesion head is scored the way the app uses it: the pipeline (candidates from
    that map, the resolver's choice), since its referring map alone is never thresholded there; the
    network-alone figures are kept beside (``val_net_*``). Without that head, or on windowed 8-bit images
    (no HU for the candidates' facts), the network alone is what the app runs and what is scored.
    """
    from lsms_core.evaluate import evaluate

    encoder = text.for_evaluation()
    net = evaluate(model, ckpt_config, val_set, encoder, split=val_split, batch_size=cfg.val_batch_size,
                   device=device)
    row.update({"val_net_mDice": net["mDice"], "val_net_hit": net["hit"]})
    metrics = (_pipeline(model, ckpt_config, val_set, val_split, encoder, device)
               if _pipeline_applies(model, val_set) else net)
    row.update({f"val_{k}": metrics[k] for k in ("mDice", "mIoU", "oIoU", "hit", "prec@0.5", "prec@0.6",
                                                 "prec@0.7", "prec@0.8", "prec@0.9")})
    row["val_model_mDice"] = net["model_resolution"]["mDice"]
    two_plus = metrics.get("groups", {}).get("lesions_on_slice", {}).get("2+", {})
    if two_plus:
        row["val_2plus_mDice"], row["val_2plus_hit"] = two_plus.get("mDice"), two_plus.get("hit")
    if real_val is not None:
        any_encoder = _AnyTextEncoder(text)
        if _pipeline_applies(model, real_val):
            real = _pipeline(model, ckpt_config, real_val, "test", any_encoder, device)
        else:
            real = evaluate(model, ckpt_config, real_val, any_encoder, split="test", batch_size=cfg.val_batch_size,
                            device=device)
        row.update({"real_mDice": real["mDice"], "real_hit": real["hit"], "real_prec@0.5": real["prec@0.5"]})
        metrics["real"] = {k: real[k] for k in ("mDice", "mIoU", "hit", "prec@0.5", "samples")}
    return metrics


def _pipeline_applies(model, dataset) -> bool:
    """See ``_validate``: a network with the every-lesion head, on images in HU."""
    from lsms_core.referring.scoring import is_windowed

    return bool(getattr(model.cfg, "aux_heads", 0)) and not is_windowed(dataset)


def _pipeline(model, ckpt_config, dataset, split: str, encoder, device: str) -> dict:
    """The pipeline's figures (candidates + resolver) for the in-training network on ``dataset``."""
    import torch

    from lsms_core.engine import Segmenter
    from lsms_core.referring.scoring import evaluate_pipeline

    segmenter = Segmenter(model, ckpt_config, Path(str(dataset.root)), encoder, device)
    try:
        return evaluate_pipeline(segmenter, dataset, split=split)
    finally:
        # The engine runs in channels-last; training goes on in the layout it started with.
        model.to(memory_format=torch.contiguous_format)



"""The run's model: mixed precision where it pays, the network and optimiser built (or restored from the
run's state), and the best checkpoint exported atomically.

Part of the training loop (``lsms_core.training.loop``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lsms_core.errors import ConfigError
from lsms_core.training.card import hardware_summary, training_card
from lsms_core.training.config import TrainConfig
from lsms_core.training.distributed import DistInfo
from lsms_core.training.objective import build_objective, param_groups
from lsms_core.training.run_folder import read_history
from lsms_core.training.run_text import _TextSetup
from lsms_core.training.state import _optimizer_from_flat


def _resolve_amp(cfg: TrainConfig, device: str):
    """(mixed precision on?, its dtype). On the CPU only bfloat16, and only where the CPU computes it
    natively (AVX512-BF16 or AMX): there a training step takes about half the time; elsewhere bfloat16 is
    emulated and many times slower, so it is refused."""
    import torch

    on_cuda = device.startswith("cuda")
    if cfg.amp == "off" or (cfg.amp == "auto" and not on_cuda):
        return False, None
    if not on_cuda:
        native, why = cpu_native_bf16()
        if not native:
            raise ConfigError("amp", f"mixed precision on this CPU would be emulated ({why}); use amp off")
        return True, torch.bfloat16
    return True, (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def cpu_native_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bfloat16 in hardware, and what says so (the CPU's feature flags)."""
    try:
        flags = set()
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False, "the CPU's features cannot be read"
    found = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if found:
        return True, f"CPU flags {', '.join(found)}"
    return False, "the CPU has neither AVX512-BF16 nor AMX"

def _build(cfg: TrainConfig, text: _TextSetup, device: str, dist_info: DistInfo):
    import torch

    from lsms_core.checkpoint import load_checkpoint

    init_state = None
    model_overrides = dict(cfg.model)
    if cfg.init:
        init_model, init_cfg, _ = load_checkpoint(cfg.init)
        init_state = init_model.state_dict()
        wanted, had = cfg.channel_window_pairs(), [list(w) for w in init_cfg.channel_windows]
        if wanted and not had:
            from lsms_core.training.init_windows import spread_to_channel_windows

            init_state = spread_to_channel_windows(init_model, init_state, init_cfg.normalization["mean"],
                                                   init_cfg.normalization["std"])
        elif wanted != had:
            raise ConfigError("init", f"{cfg.init} was trained with channel windows {had or 'none'}; a run with "
                                      f"{wanted or 'one window'} cannot start from it")
        model_overrides = {**{k: v for k, v in init_cfg.model.items() if k not in ("variant", "text_dim")},
                           **model_overrides}
    cfg_model = TrainConfig.from_dict({**cfg.to_dict(), "model": model_overrides})
    objective = build_objective(cfg_model, text.dim, init_state).to(device)
    if dist_info.enabled and device.startswith("cuda") and cfg.sync_bn:
        objective = torch.nn.SyncBatchNorm.convert_sync_batchnorm(objective)
    modules = [(objective, cfg.lr)]
    if cfg.text_mode == "finetune":
        modules.append((text.encoder.model, cfg.text_lr))
    groups = param_groups(modules, cfg.weight_decay)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    use_amp, amp_dtype = _resolve_amp(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None
    return objective, opt, scaler, use_amp, amp_dtype


def _restore(state, objective, opt, scaler, text: _TextSetup, cfg: TrainConfig, run_dir: Path):
    meta, tensors = state
    objective.load_state_dict({k[len("objective."):]: v for k, v in tensors.items() if k.startswith("objective.")})
    if cfg.text_mode == "finetune":
        text.encoder.model.load_state_dict({k[len("text."):]: v for k, v in tensors.items() if k.startswith("text.")})
    _optimizer_from_flat(opt, tensors, meta["optimizer"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    history = read_history(run_dir, meta["epoch"])
    return meta["epoch"] + 1, meta["step"], meta["best"], history, meta.get("elapsed_s", 0.0)

def _export_best(folder: Path, model, encoder, cfg: TrainConfig, ckpt_config, metrics: dict, epoch: int,
                 step: int, command: str) -> None:
    """Write the best checkpoint (with a fine-tuned text encoder inside it when there is one) atomically."""
    from lsms_core.checkpoint import save_checkpoint

    summary = {k: metrics[k] for k in ("mDice", "mIoU", "oIoU", "hit", "prec@0.5", "prec@0.6", "prec@0.7",
                                       "prec@0.8", "prec@0.9", "samples") if k in metrics}
    ckpt_config.metrics = {"validation": {**summary, "split": cfg.val_split, "resolution": "native",
                                          "groups": metrics.get("groups", {})} if metrics else {},
                           "epoch": epoch, "step": step}
    if metrics.get("real"):
        ckpt_config.metrics["real_validation"] = {**metrics["real"], "source": cfg.real_val}
    ckpt_config.extra = {"train_config": cfg.to_dict(), "command": command, "hardware": hardware_summary()}
    ckpt_config.created = ""
    card = training_card(ckpt_config, cfg, epoch)
    tmp_parent = Path(tempfile.mkdtemp(prefix=".best.", dir=folder.parent))
    try:
        staged = tmp_parent / folder.name
        if encoder is not None and cfg.text_mode == "finetune":
            ckpt_config.text_encoder = dict(ckpt_config.text_encoder, source="text_encoder")
        save_checkpoint(staged, model, ckpt_config, card=card, dtype=cfg.checkpoint_dtype)
        if encoder is not None and cfg.text_mode == "finetune":
            encoder.model.save_pretrained(str(staged / "text_encoder"), safe_serialization=True)
            encoder.tokenizer.save_pretrained(str(staged / "text_encoder"))
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.replace(old)
        staged.replace(folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)

"""The model card written next to an exported checkpoint, and the hardware line it quotes."""

from __future__ import annotations

import platform


def hardware_summary() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def training_card(ckpt_config, cfg, epoch: int) -> str:
    from lsms_core.checkpoint import describe_windows

    data = ckpt_config.training_data
    val = ckpt_config.metrics.get("validation") or {}
    splits = data.get("splits", {})
    split_lines = "\n".join(f"  - {k}: {v['lines']} lines, {v['cases']} cases, {v['expressions']} expressions"
                            for k, v in splits.items())
    metric_lines = (
        "\n".join(f"  - {k}: {val[k]:.4f}" for k in ("mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.7", "prec@0.9")
                  if k in val)
        or "  - none (no validation split)"
    )
    if data.get("synthetic"):
        v = data.get("validation") or {}
        data_lines = (f"## Training data\n- synthetic only, drawn fresh every epoch from `{data.get('generator')}`: "
                      f"{data.get('cases_per_epoch')} cases x {data.get('slices_per_case')} slices per epoch, seed "
                      f"{data.get('seed')}, rendered at {data.get('render_size')} px"
                      + (f", {data['train_patch']} px training windows" if data.get("train_patch") else "")
                      + f"\n- validation: {v.get('cases', '?')} fixed generated cases ({v.get('lines', '?')} lines, "
                      f"`{v.get('folder', '?')}` of the run)\n\n")
    else:
        data_lines = (f"## Training data\n- dataset: {data.get('name', '?')} ({data.get('root', '?')})\n"
                      f"- description: {data.get('description') or 'none given'}\n{split_lines}\n\n")
    return (
        f"# {ckpt_config.name}\n\n"
        f"{'RecLMIS' if cfg.variant.startswith('reclmis') else 'LSMS'} {cfg.variant} trained with `lsms train` (best epoch {epoch} of {cfg.epochs} by validation mDice).\n\n"
        f"{data_lines}## Recipe\n- input size {cfg.input_size}, window (W/L) {describe_windows(ckpt_config)}, batch "
        f"{cfg.batch_size} x {cfg.grad_accum} accumulation, AdamW lr {cfg.lr} (poly {cfg.poly_power}), "
        f"weight decay {cfg.weight_decay}, contrastive weight {cfg.contrastive_weight}, text encoder "
        f"{cfg.text_encoder} ({cfg.text_mode}), seed {cfg.seed}\n- hardware: {hardware_summary()}\n"
        f"- command: `{ckpt_config.extra.get('command') or 'lsms train (API)'}`\n\n"
        f"## Validation metrics ({cfg.val_split} split, native resolution)\n{metric_lines}\n\n"
        "Not for clinical use: research weights, validated only on the data named above.\n"
    )

"""The network plus its training loss as one module, AdamW parameter groups, and the poly schedule."""

from __future__ import annotations

from lsms_core.errors import ConfigError


def build_objective(cfg, text_dim: int, init_state: dict | None = None):
    """The network plus the loss module (whose contrastive projections train too), as one module."""
    import torch
    from torch import nn

    from lsms_core.model import RECLMIS_VARIANTS, build_loss, build_model, make_model_config

    class Objective(nn.Module):
        def __init__(self, model, loss):
            super().__init__()
            self.model = model
            self.loss = loss

        def forward(self, x, feats, tmask, target, aux=None, aux_valid=None, labels=None, target_label=None):
            out = self.model(x, feats, tmask, return_aux=True)
            return self.loss(out, target, feats, tmask, aux=aux, aux_valid=aux_valid, labels=labels,
                             target_label=target_label)

    overrides = dict(cfg.model)
    if cfg.variant in RECLMIS_VARIANTS:
        # RecLMIS sizes its positional embedding for the training input size
        overrides = {"input_size": cfg.input_size, **overrides}
    try:
        model_cfg = make_model_config(**{"variant": cfg.variant, "text_dim": text_dim, **overrides})
    except TypeError as exc:
        raise ConfigError("model", f"invalid model overrides ({exc})") from None
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg)
    if init_state is not None:
        model.load_state_dict(init_state, strict=True)
    elif cfg.init_backbone:
        load_pretrained_backbone(model, cfg.init_backbone)
    loss = build_loss(model_cfg, class_weights=tuple(cfg.class_weights), dice_weight=cfg.dice_weight,
                      contrastive_weight=cfg.contrastive_weight, contrastive_dim=cfg.contrastive_dim,
                      tau=cfg.tau, aux_weight=cfg.aux_weight, lesion_contrast_weight=cfg.lesion_contrast_weight,
                      aux_lesion_weight=cfg.aux_lesion_weight)
    return Objective(model, loss)


def param_groups(modules: list[tuple[object, float]], weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weights of convolutions/linears; none on norms, biases, scales, temperature."""
    from torch import nn

    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
                  nn.modules.instancenorm._InstanceNorm)
    groups = []
    for module, lr in modules:
        decay, no_decay = [], []
        for mod in module.modules():
            for name, p in mod.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                if isinstance(mod, norm_types) or p.ndim <= 1 or name.endswith("bias"):
                    no_decay.append(p)
                else:
                    decay.append(p)
        groups.append({"params": decay, "weight_decay": weight_decay, "base_lr": lr})
        groups.append({"params": no_decay, "weight_decay": 0.0, "base_lr": lr})
    return [g for g in groups if g["params"]]


def poly_lr(base: float, step: int, total: int, power: float, min_lr: float = 0.0, warmup: int = 0) -> float:
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    frac = min(1.0, step / max(1, total))
    return (base - min_lr) * (1.0 - frac) ** power + min_lr


def load_pretrained_backbone(model, name: str) -> None:
    """ImageNet weights for the backbone of an ``efficientnet-lite0`` model, from the converted file in
    ``resources/pretrained`` (see scripts/convert_efficientnet_lite0.py); every tensor must fit."""
    from safetensors.torch import load_file

    from lsms_core.resources import resources_dir

    if getattr(model.cfg, "backbone", "mscan") != name:
        raise ConfigError("init_backbone", f"{name} weights need a model with that backbone (variant lsms-e0), "
                                           f"not {model.cfg.backbone}")
    path = resources_dir() / "pretrained" / name / "weights.safetensors"
    if not path.is_file():
        raise ConfigError(path, "pretrained backbone weights are not installed here; run "
                                "scripts/convert_efficientnet_lite0.py")
    state = load_file(str(path))
    target = model.encoder.backbone
    expected = target.state_dict()
    if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(expected[k].shape) for k in state):
        raise ConfigError(path, "the pretrained weights do not fit this backbone")
    target.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)

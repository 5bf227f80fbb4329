"""LSMSConfig: everything needed to rebuild the network, round-tripping through JSON.

Variants (see shared/docs/lsms-model-spec.md, "Widths"): ``lsms-t`` uses MSCAN-T widths, which match the
paper's 8.78 M parameters; ``lsms-w`` uses the 64-512 widths printed in the paper's table.
The ablations of the paper's Table 3 are fields: ``fsd_stages`` (S2-S4, S1-S4, or S4 only = no FSD),
``kernels`` of the ConvUnits, and ``pixel_map``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from lsms_core.errors import ConfigError

VARIANTS: dict[str, dict] = {
    "lsms-t": {"widths": (32, 64, 160, 256), "depths": (3, 3, 5, 2), "mlp_ratios": (8, 8, 4, 4)},
    "lsms-w": {"widths": (64, 128, 320, 512), "depths": (3, 3, 5, 2), "mlp_ratios": (8, 8, 4, 4)},
    # EfficientNet-Lite0 stages (ImageNet weights ship offline) with SVLA blocks after each: the depths
    # count SVLA blocks only (ours; see encoder.HybridEncoder).
    "lsms-e0": {"widths": (24, 40, 112, 320), "depths": (1, 1, 2, 1), "mlp_ratios": (4, 4, 4, 4),
                "backbone": "efficientnet-lite0"},
}
BACKBONES = ("mscan", "efficientnet-lite0")
#: the second architecture (lsms_core.model.reclmis), selected by the same ``variant`` field
RECLMIS_VARIANTS = ("reclmis", "reclmis-adapted")
ALL_VARIANTS = (*VARIANTS, *RECLMIS_VARIANTS)


@dataclass
class LSMSConfig:
    variant: str = "lsms-t"
    widths: tuple[int, ...] = ()
    depths: tuple[int, ...] = ()
    mlp_ratios: tuple[int, ...] = ()
    # Width of the text encoder's hidden states (read from the encoder's config, never assumed).
    text_dim: int = 384
    # Width the language branch works at: the paper's BERT-base width. A 1x1 adapter maps any encoder
    # (MiniLM 384, BERT-base 768, PubMedBERT 768) to it, so swapping encoders never changes the shapes of
    # the vision-language layers (ours).
    lang_dim: int = 768
    kernels: tuple[int, ...] = (7, 11, 21)
    pixel_map: bool = True
    # 1-based stage numbers aligned and fused by the Full-Scale Decoder; (4,) is the paper's "w/o FSD".
    fsd_stages: tuple[int, ...] = (2, 3, 4)
    decoder_channels: int = 256
    nmf_rank: int = 16
    nmf_steps_train: int = 6
    nmf_steps_eval: int = 7
    nmf_seed: int = 0
    drop_path: float = 0.1
    layer_scale_init: float = 1e-2
    num_classes: int = 2
    # "mscan": the paper's encoder (SVLA inside every MSCAN block); "efficientnet-lite0": HybridEncoder.
    backbone: str = ""
    # Text-free maps predicted from the decoder's features beside the referred lesion (ours): channel 0 the
    # liver, channel 1 every lesion on the slice. They give the engine its candidates and the liver their
    # facts are measured against, in the same forward pass. 0 = none (the paper's network).
    aux_heads: int = 0
    # The referred lesion as a selection among the lesions: the referring logit is the classifier's plus
    # the (gradient-stopped) every-lesion logit, so the words only have to say which lesions to suppress
    # (ours; needs aux_heads). A network trained from scratch otherwise predicts nothing for a long while.
    referring_from_lesions: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant in VARIANTS:
            preset = VARIANTS[self.variant]
            for key, value in preset.items():
                if not getattr(self, key):
                    setattr(self, key, value if isinstance(value, str) else tuple(value))
        elif not (self.widths and self.depths and self.mlp_ratios):
            raise ConfigError(
                f"variant {self.variant!r}",
                f"unknown variant; choose one of {', '.join(ALL_VARIANTS)} or give widths, depths and mlp_ratios",
            )
        for name in ("widths", "depths", "mlp_ratios", "kernels", "fsd_stages"):
            setattr(self, name, tuple(int(v) for v in getattr(self, name)))
        if not (len(self.widths) == len(self.depths) == len(self.mlp_ratios) == 4):
            raise ConfigError("model config", "widths, depths and mlp_ratios need four stages each")
        if not self.fsd_stages or any(s not in (1, 2, 3, 4) for s in self.fsd_stages):
            raise ConfigError("fsd_stages", f"{self.fsd_stages} must be a non-empty subset of 1..4")
        if not self.kernels or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ConfigError("kernels", f"{self.kernels} must be odd positive ConvUnit kernel sizes")
        if self.decoder_channels % 32:
            raise ConfigError("decoder_channels", "must be a multiple of 32 (GroupNorm with 32 groups)")
        self.backbone = self.backbone or "mscan"
        if self.backbone not in BACKBONES:
            raise ConfigError("backbone", f"{self.backbone!r} is not one of {', '.join(BACKBONES)}")
        if self.aux_heads not in (0, 2):
            raise ConfigError("aux_heads", "must be 0 (none) or 2 (liver and all-lesion maps)")
        if self.referring_from_lesions and not self.aux_heads:
            raise ConfigError("referring_from_lesions", "needs aux_heads (the every-lesion map it selects from)")
        if self.num_classes not in (1, 2):
            raise ConfigError("num_classes", "must be 2 (two-class softmax) or 1 (a single logit)")

    def to_dict(self) -> dict:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> LSMSConfig:
        return checked_config(cls, data)


def checked_config(cls, data: dict):
    """``cls(**data)`` for a config dataclass, refusing keys it does not have (a typo in a config file)."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ConfigError("model config", f"unknown keys {unknown}")
    return cls(**data)


def model_config_from_dict(data: dict):
    """The network's config from its JSON form: an LSMSConfig, or a RecLMISConfig for the RecLMIS variants."""
    if data.get("variant") in RECLMIS_VARIANTS:
        from lsms_core.model.reclmis import RecLMISConfig

        return RecLMISConfig.from_dict(data)
    return LSMSConfig.from_dict(data)


def make_model_config(variant: str, **fields_):
    """A network config for ``variant`` with field overrides (as ``lsms train --model`` gives them)."""
    if variant in RECLMIS_VARIANTS:
        from lsms_core.model.reclmis import RecLMISConfig

        return RecLMISConfig(variant=variant, **fields_)
    return LSMSConfig(variant=variant, **fields_)

"""Visual encoders whose blocks attend with SVLA.

``SVLAEncoder`` is the paper's: SegNeXt's MSCAN with MSCA replaced by SVLA in every block.
``HybridEncoder`` (variant ``lsms-e0``) keeps the paper's SVLA blocks and stage layout but lets an
ImageNet-initialised EfficientNet-Lite0 stage do each stage's down-sampling and local feature work; the
SVLA blocks after it bring the language in at every scale, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from lsms_core.model.config import LSMSConfig
from lsms_core.model.svla import SVLA


class DropPath(nn.Module):
    """Stochastic depth per sample; the identity at inference."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        noise = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * noise / keep


class MLP(nn.Module):
    def __init__(self, channels: int, ratio: int):
        super().__init__()
        hidden = channels * ratio
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class Block(nn.Module):
    """Pre-norm block: x + g1 * (proj2(SVLA(GELU(proj1(BN1 x)))) + BN1 x), then x + g2 * MLP(BN2 x)."""

    def __init__(self, channels: int, mlp_ratio: int, cfg: LSMSConfig, drop_path: float):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.proj1 = nn.Conv2d(channels, channels, 1)
        self.act = nn.GELU()
        self.svla = SVLA(channels, cfg.lang_dim, cfg.kernels, cfg.pixel_map)
        self.proj2 = nn.Conv2d(channels, channels, 1)
        self.norm2 = nn.BatchNorm2d(channels)
        self.mlp = MLP(channels, mlp_ratio)
        self.drop_path = DropPath(drop_path)
        self.gamma1 = nn.Parameter(torch.full((channels, 1, 1), cfg.layer_scale_init))
        self.gamma2 = nn.Parameter(torch.full((channels, 1, 1), cfg.layer_scale_init))

    def forward(self, x, text, text_mask):
        y = self.norm1(x)
        attn = self.proj2(self.svla(self.act(self.proj1(y)), text, text_mask)) + y
        x = x + self.drop_path(self.gamma1 * attn)
        return x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x)))


class Stem(nn.Sequential):
    def __init__(self, out_channels: int):
        super().__init__(
            nn.Conv2d(3, out_channels // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels // 2),
            nn.GELU(),
            nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )


class Downsample(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.BatchNorm2d(out_channels)
        )


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of an (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Stage(nn.Module):
    def __init__(self, embed: nn.Module, blocks: list[Block], channels: int):
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = ChannelLayerNorm(channels)

    def forward(self, x, text, text_mask):
        x = self.embed(x)
        for block in self.blocks:
            x = block(x, text, text_mask)
        return self.norm(x)


class SVLAEncoder(nn.Module):
    """Four stages at strides 4, 8, 16, 32 returning F1..F4."""

    def __init__(self, cfg: LSMSConfig):
        super().__init__()
        total = sum(cfg.depths)
        rates = torch.linspace(0, cfg.drop_path, total).tolist() if total > 1 else [0.0]
        stages = []
        start = 0
        for index, (width, depth, ratio) in enumerate(zip(cfg.widths, cfg.depths, cfg.mlp_ratios, strict=True)):
            embed = Stem(width) if index == 0 else Downsample(cfg.widths[index - 1], width)
            blocks = [Block(width, ratio, cfg, rates[start + d]) for d in range(depth)]
            stages.append(Stage(embed, blocks, width))
            start += depth
        self.stages = nn.ModuleList(stages)

    def forward(self, x, text, text_mask) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x, text, text_mask)
            features.append(x)
        return features


class HybridEncoder(nn.Module):
    """EfficientNet-Lite0 stages, each followed by ``depths[i]`` SVLA blocks and a channel LayerNorm."""

    def __init__(self, cfg: LSMSConfig):
        super().__init__()
        from lsms_core.model.efficientnet import LITE0_WIDTHS, EfficientNetLite0Stages

        if tuple(cfg.widths) != LITE0_WIDTHS:
            raise ValueError(f"the efficientnet-lite0 backbone has widths {LITE0_WIDTHS}, config says {cfg.widths}")
        self.backbone = EfficientNetLite0Stages()
        total = sum(cfg.depths)
        rates = torch.linspace(0, cfg.drop_path, total).tolist() if total > 1 else [0.0]
        blocks, start = [], 0
        for width, depth, ratio in zip(cfg.widths, cfg.depths, cfg.mlp_ratios, strict=True):
            blocks.append(nn.ModuleList(Block(width, ratio, cfg, rates[start + d]) for d in range(depth)))
            start += depth
        self.blocks = nn.ModuleList(blocks)
        self.norms = nn.ModuleList(ChannelLayerNorm(w) for w in cfg.widths)

    def forward(self, x, text, text_mask) -> list[torch.Tensor]:
        features = []
        for index, (blocks, norm) in enumerate(zip(self.blocks, self.norms, strict=True)):
            x = self.backbone.stage(index, x)
            for block in blocks:
                x = block(x, text, text_mask)
            features.append(norm(x))
        return features

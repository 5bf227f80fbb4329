"""Scale-aware Vision-Language Attention (SVLA), the attention of every encoder block.

Equations as in shared/docs/lsms-model-spec.md ("SVLA"); names follow the paper so code and paper can be
read side by side.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ConvUnit(nn.Module):
    """A strip-convolution pair (1xd then dx1, depthwise) capturing one lesion scale."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        pad = kernel // 2
        self.conv_1xd = nn.Conv2d(channels, channels, (1, kernel), padding=(0, pad), groups=channels)
        self.conv_dx1 = nn.Conv2d(channels, channels, (kernel, 1), padding=(pad, 0), groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_dx1(self.conv_1xd(x))


class SVLA(nn.Module):
    def __init__(self, channels: int, text_dim: int, kernels: tuple[int, ...] = (7, 11, 21),
                 pixel_map: bool = True):
        super().__init__()
        self.channels = channels
        self.pixel_map = pixel_map
        self.conv0 = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.conv_units = nn.ModuleList(ConvUnit(channels, k) for k in kernels)
        # Language branch (pixel-word attention, as LAVT's PWAM).
        self.query = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.InstanceNorm2d(channels))
        self.key = nn.Conv1d(text_dim, channels, 1)
        self.value = nn.Conv1d(text_dim, channels, 1)
        self.fuse = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.InstanceNorm2d(channels))
        if pixel_map:
            self.pixel = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.InstanceNorm2d(channels))
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        b, c, h, w = v.shape
        v_pre = self.conv0(v)
        att_v = sum(unit(v_pre) for unit in self.conv_units)

        mask = text_mask.to(v.dtype).unsqueeze(1)  # (B, 1, T)
        q = self.query(v_pre).flatten(2).transpose(1, 2)  # (B, N, C)
        # Zeroing padded keys/values and pushing their logits to -1e4 makes padded tokens contribute
        # exact zeros, so the output is independent of what the padding holds.
        k = self.key(text) * mask  # (B, C, T)
        val = self.value(text) * mask  # (B, C, T)
        logits = torch.bmm(q, k) / math.sqrt(c) + (mask - 1.0) * 1e4  # (B, N, T)
        attn = logits.softmax(dim=-1)
        lang = torch.bmm(attn, val.transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
        att_l = self.fuse(lang)
        if self.pixel_map:
            att_l = att_l * self.pixel(v_pre)

        return self.mix(v_pre + att_v + att_l) * v

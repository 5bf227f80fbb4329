"""Full-Scale Decoder: position alignment of the chosen stages, then a Hamburger (NMF) head.

After SegNeXt's LightHamHead, with two changes the spec asks for: features are aligned to F1's size
(stride 4), and the NMF bases at inference come from a fixed seed so every run and every device give the
same mask (SegNeXt drew them at random on every call, and its ``.cuda()`` broke CPU use).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lsms_core.model.config import LSMSConfig


class NMF2D(nn.Module):
    """Non-negative matrix factorisation of a (B, C, H, W) map into rank-R bases and coefficients."""

    def __init__(self, channels: int, rank: int, steps_train: int, steps_eval: int, seed: int):
        super().__init__()
        self.rank = rank
        self.steps_train = steps_train
        self.steps_eval = steps_eval
        generator = torch.Generator().manual_seed(seed)
        bases = F.normalize(torch.rand(1, channels, rank, generator=generator), dim=1)
        # Not persistent: rebuilt from the seed in the config, and moved with the module to any device.
        self.register_buffer("eval_bases", bases, persistent=False)

    @staticmethod
    def _update_coef(x, bases, coef):
        numerator = torch.bmm(x.transpose(1, 2), bases)
        denominator = coef.bmm(bases.transpose(1, 2).bmm(bases))
        return coef * numerator / (denominator + 1e-6)

    @staticmethod
    def _update_bases(x, bases, coef):
        numerator = torch.bmm(x, coef)
        denominator = bases.bmm(coef.transpose(1, 2).bmm(coef))
        return bases * numerator / (denominator + 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        dtype = x.dtype
        # Multiplicative updates divide by small sums: run them in float32 even under autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float().reshape(b, c, h * w)
            if self.training:
                bases = F.normalize(torch.rand(b, c, self.rank, device=x.device), dim=1)
                steps = self.steps_train
            else:
                bases = self.eval_bases.to(x.device).expand(b, -1, -1).contiguous()
                steps = self.steps_eval
            coef = torch.softmax(torch.bmm(x.transpose(1, 2), bases), dim=-1)
            # One-step gradient (as Hamburger): iterate without autograd, differentiate the last step only.
            with torch.no_grad():
                for _ in range(steps):
                    coef = self._update_coef(x, bases, coef)
                    bases = self._update_bases(x, bases, coef)
            coef = self._update_coef(x, bases, coef)
            out = torch.bmm(bases, coef.transpose(1, 2))
        return out.reshape(b, c, h, w).to(dtype)


def conv_gn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.GroupNorm(32, out_channels),
        nn.ReLU(inplace=True),
    )


class Hamburger(nn.Module):
    """x + GN(Conv(NMF(ReLU(Conv x)))), then ReLU."""

    def __init__(self, channels: int, cfg: LSMSConfig):
        super().__init__()
        self.ham_in = nn.Conv2d(channels, channels, 1)
        self.ham = NMF2D(channels, cfg.nmf_rank, cfg.nmf_steps_train, cfg.nmf_steps_eval, cfg.nmf_seed)
        self.ham_out = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.GroupNorm(32, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enjoy = F.relu(self.ham_in(x), inplace=True)
        enjoy = self.ham_out(self.ham(enjoy))
        return F.relu(x + enjoy, inplace=True)


class FullScaleDecoder(nn.Module):
    def __init__(self, cfg: LSMSConfig):
        super().__init__()
        self.stages = tuple(s - 1 for s in cfg.fsd_stages)
        in_channels = sum(cfg.widths[s] for s in self.stages)
        h = cfg.decoder_channels
        self.squeeze = conv_gn_relu(in_channels, h)
        self.hamburger = Hamburger(h, cfg)
        self.align = conv_gn_relu(h, h)
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(h, cfg.num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits at stride 4, aligned pixel features at stride 4)."""
        size = features[0].shape[-2:]
        aligned = [
            features[s] if features[s].shape[-2:] == size
            else F.interpolate(features[s], size=size, mode="bilinear", align_corners=False)
            for s in self.stages
        ]
        x = self.squeeze(torch.cat(aligned, dim=1))
        x = self.align(self.hamburger(x))
        return self.classifier(self.dropout(x)), x

"""Training loss: segmentation (weighted cross-entropy + soft Dice) plus vision-language contrast.

The paper names a vision-language contrastive loss without a formula; ours (see the spec, "Loss"):
decoder pixel features and the masked-mean sentence feature are projected to ``dim``, L2-normalised, and
their scaled dot product is a per-pixel logit trained with binary cross-entropy against the mask at the
features' resolution. The projections and the temperature live here (training only), so inference
checkpoints and parameter counts hold the network alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lsms_core.model.config import LSMSConfig


class ContrastiveHead(nn.Module):
    def __init__(self, pixel_dim: int, text_dim: int, dim: int = 128, tau: float = 0.07):
        super().__init__()
        self.pixel_proj = nn.Conv2d(pixel_dim, dim, 1)
        self.text_proj = nn.Linear(text_dim, dim)
        self.log_inv_tau = nn.Parameter(torch.tensor(math.log(1.0 / tau)))

    def forward(self, pixel_feats, text_feats, text_mask) -> torch.Tensor:
        """Per-pixel logits (B, h, w) of 'this pixel belongs to the referred lesion'."""
        mask = text_mask.to(text_feats.dtype).unsqueeze(1)  # (B, 1, T)
        sentence = (text_feats * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)  # (B, C_l)
        s = F.normalize(self.text_proj(sentence), dim=-1)
        p = F.normalize(self.pixel_proj(pixel_feats), dim=1)
        scale = self.log_inv_tau.clamp(max=math.log(100.0)).exp()
        return torch.einsum("bchw,bc->bhw", p, s) * scale


class LSMSLoss(nn.Module):
    def __init__(self, cfg: LSMSConfig, class_weights=(0.9, 1.1), dice_weight: float = 1.0,
                 contrastive_weight: float = 0.5, contrastive_dim: int = 128, tau: float = 0.07):
        super().__init__()
        self.num_classes = cfg.num_classes
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.dice_weight = dice_weight
        self.contrastive_weight = contrastive_weight
        self.contrastive = ContrastiveHead(cfg.decoder_channels, cfg.text_dim, contrastive_dim, tau)

    def segmentation(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.num_classes == 1:
            fg_logit = logits[:, 0]
            weights = torch.where(target > 0, self.class_weights[1], self.class_weights[0])
            ce = F.binary_cross_entropy_with_logits(fg_logit, target.float(), weight=weights)
            prob = torch.sigmoid(fg_logit)
        else:
            ce = F.cross_entropy(logits, target, weight=self.class_weights)
            prob = logits.softmax(dim=1)[:, 1]
        tgt = target.float()
        inter = (prob * tgt).flatten(1).sum(1)
        denom = prob.flatten(1).sum(1) + tgt.flatten(1).sum(1)
        dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
        return ce + self.dice_weight * dice.mean()

    def forward(self, outputs: dict, target: torch.Tensor, text_feats: torch.Tensor,
                text_mask: torch.Tensor) -> dict:
        """outputs: the model's ``return_aux=True`` dict; target (B, H, W) long {0, 1}."""
        target = target.long()
        seg = self.segmentation(outputs["logits"], target)
        pixel_feats = outputs["pixel_feats"]
        con_logits = self.contrastive(pixel_feats.float(), text_feats.float(), text_mask)
        small = F.interpolate(target[:, None].float(), size=con_logits.shape[-2:], mode="area")[:, 0]
        con = F.binary_cross_entropy_with_logits(con_logits, small)
        return {"loss": seg + self.contrastive_weight * con, "seg": seg.detach(), "con": con.detach()}

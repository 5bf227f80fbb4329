"""LSMS: SVLA encoder + Full-Scale Decoder, producing per-pixel logits for the referred lesion."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lsms_core.model.config import LSMSConfig
from lsms_core.model.decoder import FullScaleDecoder
from lsms_core.model.encoder import HybridEncoder, SVLAEncoder


class TextAdapter(nn.Module):
    """Per-token 1x1 projection of the encoder's hidden states to the language width, then LayerNorm."""

    def __init__(self, text_dim: int, lang_dim: int):
        super().__init__()
        self.proj = nn.Conv1d(text_dim, lang_dim, 1)
        self.norm = nn.LayerNorm(lang_dim)

    def forward(self, text_feats: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(text_feats).transpose(1, 2)).transpose(1, 2)


class LSMS(nn.Module):
    def __init__(self, cfg: LSMSConfig):
        super().__init__()
        self.cfg = cfg
        self.text_adapter = TextAdapter(cfg.text_dim, cfg.lang_dim)
        self.encoder = HybridEncoder(cfg) if cfg.backbone == "efficientnet-lite0" else SVLAEncoder(cfg)
        self.decoder = FullScaleDecoder(cfg)
        if cfg.aux_heads:
            self.aux_head = nn.Conv2d(cfg.decoder_channels, cfg.aux_heads, 1)

    def forward(self, images: torch.Tensor, text_feats: torch.Tensor, text_mask: torch.Tensor,
                return_aux: bool = False):
        """images (B, 3, H, W); text_feats (B, C_l, T); text_mask (B, T) with 1 for real tokens."""
        if text_feats.shape[1] != self.cfg.text_dim:
            raise ValueError(
                f"text features have {text_feats.shape[1]} channels, the model expects {self.cfg.text_dim}"
            )
        lang = self.text_adapter(text_feats.to(images.dtype))
        features = self.encoder(images, lang, text_mask)
        logits_s4, pixel_feats = self.decoder(features)
        aux_s4 = self.aux_head(pixel_feats) if self.cfg.aux_heads else None
        if self.cfg.referring_from_lesions:
            lesions = aux_s4[:, 1:2].detach()
            logits_s4 = logits_s4 + (torch.cat([torch.zeros_like(lesions), lesions], 1)
                                     if logits_s4.shape[1] == 2 else lesions)
        logits = F.interpolate(logits_s4, size=images.shape[-2:], mode="bilinear", align_corners=False)
        if return_aux:
            out = {"logits": logits, "pixel_feats": pixel_feats}
            if aux_s4 is not None:
                out["aux_logits"] = F.interpolate(aux_s4, size=images.shape[-2:], mode="bilinear",
                                                  align_corners=False)
            return out
        return logits

    def foreground_logit(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, H, W) logit of the lesion class, whatever the head's form (two-class or single logit)."""
        if logits.shape[1] == 1:
            return logits[:, 0]
        return logits[:, 1] - logits[:, 0]

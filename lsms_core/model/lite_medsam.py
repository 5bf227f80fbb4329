"""LiteMedSAM (Ma et al., "Segment anything in medical images", Nat. Commun. 2024; the lightweight
variant of the CVPR 2024 MedSAM-on-laptop challenge): a TinyViT encoder, SAM's prompt encoder and mask
decoder, drawn from a box.

The split into ``encode`` and ``decode`` is the point of this module: the encoder costs ~75 GFLOPs per
256x256 image and the decoder a small fraction of that, so a caller encodes a slice once and decodes any
number of boxes (refinement passes, neighbouring boxes, user corrections) against the cached embedding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from lsms_core.errors import ConfigError
from lsms_core.model.sam_mask_decoder import MaskDecoder, TwoWayTransformer
from lsms_core.model.sam_prompt_encoder import PromptEncoder
from lsms_core.model.tiny_vit import TinyViT


@dataclass(frozen=True)
class LiteMedSAMConfig:
    """The architecture of the released checkpoint; a config.json that disagrees is refused at load."""

    image_size: int = 256
    embed_dims: tuple[int, ...] = (64, 128, 160, 320)
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (2, 4, 5, 10)
    window_sizes: tuple[int, ...] = (7, 7, 14, 7)
    mlp_ratio: float = 4.0
    mbconv_expand_ratio: float = 4.0
    prompt_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def embedding_size(self) -> int:
        return self.image_size // 4

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict, source: object = "config.json") -> LiteMedSAMConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(source, f"unknown LiteMedSAM architecture field(s): {', '.join(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        cfg = cls(**values)
        if cfg.image_size % 16 or cfg.image_size <= 0:
            raise ConfigError(source, f"image_size must be a positive multiple of 16, got {cfg.image_size}")
        if not len(cfg.embed_dims) == len(cfg.depths) == len(cfg.num_heads) == len(cfg.window_sizes) == 4:
            raise ConfigError(source, "embed_dims, depths, num_heads and window_sizes need 4 entries each")
        return cfg


class LiteMedSAM(nn.Module):
    def __init__(self, config: LiteMedSAMConfig | None = None):
        super().__init__()
        cfg = config or LiteMedSAMConfig()
        self.config = cfg
        e = cfg.embedding_size
        self.image_encoder = TinyViT(cfg.image_size, 3, cfg.embed_dims, cfg.depths, cfg.num_heads,
                                     cfg.window_sizes, cfg.mlp_ratio, cfg.mbconv_expand_ratio, cfg.prompt_dim)
        self.prompt_encoder = PromptEncoder(cfg.prompt_dim, (e, e), (cfg.image_size, cfg.image_size),
                                            cfg.mask_in_chans)
        self.mask_decoder = MaskDecoder(
            cfg.prompt_dim,
            TwoWayTransformer(cfg.decoder_depth, cfg.prompt_dim, cfg.decoder_heads, cfg.decoder_mlp_dim),
            cfg.multimask_outputs, cfg.iou_head_depth, cfg.iou_head_hidden_dim)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) images in [0, 1] (pre-processed as the config says) -> (B, 256, S/4, S/4)."""
        return self.image_encoder(images)

    def decode(self, embeddings: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """embeddings (1 or B, 256, h, w); boxes (B, 4) x0, y0, x1, y1 in the S x S input frame
        -> (logits (B, 1, S, S), predicted IoU (B, 1)). One embedding is shared by all boxes."""
        sparse, dense = self.prompt_encoder(boxes)
        sparse, dense = sparse.to(embeddings.dtype), dense.to(embeddings.dtype)
        if embeddings.shape[0] != boxes.shape[0]:
            embeddings = embeddings.expand(boxes.shape[0], -1, -1, -1)
        return self.mask_decoder(embeddings, self.prompt_encoder.dense_pe(), sparse, dense)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.encode(images), boxes)

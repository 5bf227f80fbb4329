"""SAM's prompt encoder, box prompts only: what LiteMedSAM is trained and used with here.

A box becomes two tokens: random-Fourier positional encodings of its corners (in the 256x256 input frame,
pixel centres at +0.5) plus a learned embedding per corner. The dense prompt is the learned "no mask"
embedding broadcast over the 64x64 grid. The point and mask-prompt parameters of SAM are kept so the
released checkpoint loads strictly; this project never feeds points or masks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lsms_core.model.tiny_vit import LayerNorm2d


class RandomFourierEncoding(nn.Module):
    """Positions in [0, 1]^2 -> sin/cos of a fixed random projection (the matrix is part of the weights:
    the decoder was trained against these exact frequencies)."""

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, features))

    def encode(self, coords01: torch.Tensor) -> torch.Tensor:
        proj = (2 * coords01 - 1) @ self.positional_encoding_gaussian_matrix.to(coords01.dtype)
        proj = 2 * math.pi * proj
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """(C, h, w) encoding of the cell centres of an h x w grid."""
        dev = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) / w
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        return self.encode(torch.stack([xx, yy], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int = 256, image_embedding_size: tuple[int, int] = (64, 64),
                 input_image_size: tuple[int, int] = (256, 256), mask_in_chans: int = 16):
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        # 0/1: negative/positive point, 2/3: box top-left/bottom-right corner
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, 2, stride=2), LayerNorm2d(mask_in_chans // 4), nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, 2, stride=2), LayerNorm2d(mask_in_chans), nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """(1, C, h, w) positional encoding of the image embedding's grid."""
        return self.pe_layer.grid(*self.image_embedding_size).unsqueeze(0)

    def forward(self, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """boxes (B, 4) as x0, y0, x1, y1 in input pixels -> sparse (B, 2, C), dense (B, C, h, w)."""
        h, w = self.input_image_size
        corners = (boxes.float().reshape(-1, 2, 2) + 0.5) / torch.tensor([w, h], device=boxes.device,
                                                                          dtype=torch.float32)
        sparse = self.pe_layer.encode(corners)
        sparse = sparse + torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])[None]
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(len(boxes), -1,
                                                                      *self.image_embedding_size)
        return sparse, dense

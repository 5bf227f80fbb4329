"""SAM's mask decoder with its two-way transformer: prompt tokens and image tokens attend to each other,
then each output token becomes a dynamic 1x1 filter over the 4x upsampled image embedding.

Layout and names follow the released LiteMedSAM checkpoint. ``forward`` returns the single-mask output
(token 0): for a box prompt that is the unambiguous answer, and the one LiteMedSAM was fine-tuned on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lsms_core.model.tiny_vit import LayerNorm2d


class Attention(nn.Module):
    """Multi-head attention whose inner width may be smaller than the model's (``downsample_rate``): the
    image-token cross-attentions run at half width, which is where the decoder's time goes."""

    def __init__(self, dim: int, heads: int, downsample_rate: int = 1):
        super().__init__()
        inner = dim // downsample_rate
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))
        out = F.scaled_dot_product_attention(q, k, v)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, -1))


class MLPBlock(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class TwoWayBlock(nn.Module):
    """Tokens: self-attention, cross-attention to the image, MLP; then the image attends back to the
    tokens. Post-norm throughout. The first block's self-attention sees the tokens without their
    positional encoding added and has no residual (the tokens *are* the encoding at that point)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, downsample_rate: int, first: bool):
        super().__init__()
        self.first = first
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, downsample_rate)

    def forward(self, queries, keys, query_pe, key_pe):
        if self.first:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int = 2, embedding_dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048,
                 downsample_rate: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(embedding_dim, num_heads, mlp_dim, downsample_rate, i == 0)
                                    for i in range(depth))
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor):
        """image, image_pe (B, C, h, w); tokens (B, T, C) -> (tokens (B, T, C), image tokens (B, h*w, C))."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        out = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + out), keys


class MLP(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, depth: int):
        super().__init__()
        dims = [cin] + [hidden] * (depth - 1) + [cout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskDecoder(nn.Module):
    def __init__(self, transformer_dim: int = 256, transformer: TwoWayTransformer | None = None,
                 num_multimask_outputs: int = 3, iou_head_depth: int = 3, iou_head_hidden_dim: int = 256):
        super().__init__()
        self.transformer = transformer if transformer is not None else TwoWayTransformer()
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, 2, stride=2),
            LayerNorm2d(transformer_dim // 4), nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, 2, stride=2), nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image_embeddings (B, C, h, w), one per prompt; sparse (B, T, C); dense (B, C, h, w)
        -> logits (B, 1, 4h, 4w), predicted IoU (B, 1)."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight]).to(sparse.dtype)
        tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)
        src = image_embeddings + dense
        pos = image_pe.to(src.dtype).expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, keys = self.transformer(src, pos, tokens)
        iou_out = hs[:, 0]
        mask_out = hs[:, 1:1 + self.num_mask_tokens]
        up = self.output_upscaling(keys.transpose(1, 2).reshape(b, c, h, w))
        # only the single-mask token (0) is used: no need to run the three multimask hypernetworks
        hyper = self.output_hypernetworks_mlps[0](mask_out[:, 0])[:, None]
        _, cu, hu, wu = up.shape
        masks = (hyper @ up.view(b, cu, hu * wu)).view(b, 1, hu, wu)
        iou = self.iou_prediction_head(iou_out)[:, :1]
        return masks, iou

"""TinyViT image encoder in the shape LiteMedSAM uses it: 256x256x3 in, a 256x64x64 embedding out.

LiteMedSAM (Ma et al.) distilled SAM's ViT-H encoder into a TinyViT (Wu et al., ECCV 2022). Its variant
differs from the ImageNet TinyViT in two ways that matter for the weights to mean anything:
- the stem is two 1x1 convolutions at full resolution (no stride-4 patchify), so the first, convolutional
  stage runs on 256x256 and most of the encoder's cost sits there;
- the last merge keeps the resolution (stride 1), so stages 3 and 4 both work at 64x64, the grid SAM's
  mask decoder expects.

Module and parameter names follow the released checkpoint (``patch_embed.seq``, ``layers.N.blocks``,
``conv1/conv2/conv3``, ``attn.qkv``, ``attention_biases``, ``neck``) so it loads with ``strict=True``.
Inference only: no stochastic depth, no gradient checkpointing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBN(nn.Sequential):
    """Convolution without bias followed by BatchNorm; kept as two modules (``c``, ``bn``) so the
    checkpoint's running statistics load as they were trained."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1):
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an NCHW map (SAM's neck and decoder use eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Stem(nn.Module):
    def __init__(self, cin: int, dim: int):
        super().__init__()
        self.seq = nn.Sequential(ConvBN(cin, dim // 2), nn.GELU(), ConvBN(dim // 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual (expand, depthwise 3x3, project); the activation comes after the residual sum,
    as trained."""

    def __init__(self, dim: int, expand: float):
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv1(x))
        y = self.act(self.conv2(y))
        return self.act(self.conv3(y) + x)


class PatchMerging(nn.Module):
    """Channel change plus a depthwise 3x3 that halves the grid, or keeps it (stride 1) for the last stage.

    Takes NCHW or tokens (B, H*W, C) and returns tokens, the form the attention stages work in."""

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int, stride: int):
        super().__init__()
        self.resolution = resolution
        self.act = nn.GELU()
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.resolution
            x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.conv3(x).flatten(2).transpose(1, 2)


class ConvStage(nn.Module):
    def __init__(self, dim: int, depth: int, expand: float, downsample: PatchMerging | None):
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


def relative_bias_index(window: int) -> torch.Tensor:
    """(w*w, w*w) index into a learned table of w*w biases, one per absolute (row, column) offset.

    The table is ordered row offset major: offset (dy, dx) lives at dy * w + dx (the order TinyViT
    enumerates offsets, which the trained ``attention_biases`` follow)."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    return (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()


class WindowAttention(nn.Module):
    """Multi-head self-attention inside one window, with a learned bias per relative offset.

    The fused projection is laid out per head as [q | k | v] (not all q, then all k), which is how the
    trained ``qkv`` weight is ordered."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, window * window))
        self.register_buffer("bias_index", relative_bias_index(window), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.heads, 3 * self.head_dim).permute(0, 2, 1, 3)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        bias = self.attention_biases[:, self.bias_index].to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention, a depthwise 3x3 between attention and MLP (gives the windows a way to talk to
    each other without shifting), then the MLP. Grids that are not a multiple of the window are padded at
    the bottom and right for the attention only."""

    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, window: int, mlp_ratio: float):
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = WindowAttention(dim, heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, 3, groups=dim)

    def _windows(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        ws = self.window
        if h == ws and w == ws:
            return self.attn(x)
        grid = x.view(b, h, w, c)
        pad_b, pad_r = (-h) % ws, (-w) % ws
        if pad_b or pad_r:
            grid = F.pad(grid, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        nh, nw = ph // ws, pw // ws
        tiles = grid.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
        tiles = self.attn(tiles)
        grid = tiles.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
        return grid[:, :h, :w].reshape(b, h * w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, n, c = x.shape
        x = x + self._windows(x)
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).view(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class AttentionStage(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, heads: int, window: int,
                 mlp_ratio: float, downsample: PatchMerging | None):
        super().__init__()
        self.blocks = nn.ModuleList(TinyViTBlock(dim, resolution, heads, window, mlp_ratio) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """(B, 3, S, S) normalised image -> (B, out_dim, S/4, S/4) embedding for SAM's decoder."""

    def __init__(self, img_size: int = 256, in_chans: int = 3, embed_dims=(64, 128, 160, 320),
                 depths=(2, 2, 6, 2), num_heads=(2, 4, 5, 10), window_sizes=(7, 7, 14, 7),
                 mlp_ratio: float = 4.0, mbconv_expand_ratio: float = 4.0, out_dim: int = 256):
        super().__init__()
        self.img_size = img_size
        self.patch_embed = Stem(in_chans, embed_dims[0])
        # Grid of each stage: full size, then halved twice; the last merge keeps 1/4.
        sizes = [img_size, img_size // 2, img_size // 4, img_size // 4]
        self.out_size = sizes[-1]
        self.layers = nn.ModuleList()
        last = len(depths) - 1
        for i, depth in enumerate(depths):
            res = (sizes[i], sizes[i])
            down = None
            if i < last:
                stride = sizes[i] // sizes[i + 1]
                down = PatchMerging(res, embed_dims[i], embed_dims[i + 1], stride)
            if i == 0:
                self.layers.append(ConvStage(embed_dims[0], depth, mbconv_expand_ratio, down))
            else:
                self.layers.append(AttentionStage(embed_dims[i], res, depth, num_heads[i], window_sizes[i],
                                                  mlp_ratio, down))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_dim, 1, bias=False),
            LayerNorm2d(out_dim),
            nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False),
            LayerNorm2d(out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, self.out_size, self.out_size)
        return self.neck(x)

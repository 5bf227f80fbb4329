"""RecLMIS (Huang et al., "Cross-Modal Conditioned Reconstruction for Language-guided Medical Image
Segmentation", IEEE TMI 2025, arXiv 2404.02845), built from ``shared/docs/reclmis-spec.md``, as a second
network of the same engine: same inputs (MiniLM token states (B, 384, T) and their mask (B, T)), same outputs
(two-class logits (B, 2, H, W) at the input size), a ``foreground_logit`` and a ``.cfg``.

The paper's parts, by their names here:

- the U-Net (:class:`UNetEncoder`, :class:`UNetDecoder`, channels 64-128-256-512-512, PixLevel-gated skips);
- :class:`ConditionedInteraction`: text-to-vision and vision-to-text attention at 1/16 (V' is the only thing
  the decoder gets at the bottleneck), the text post-processing (E') and the two predictors of the
  *patches of interest* (POI, text-conditioned) and *words of interest* (WOI, image-conditioned);
- :class:`ConditionedLanguageReconstruction` (CLR, L_V2T) and :class:`ConditionedVisionReconstruction` (CVR,
  L_T2V): the masked stream rebuilt through attention re-weighted by the other modality's POI/WOI weights;
- :class:`ConditionedContrastiveLoss` (CCL).

Training only, as the paper's Fig. 2 draws it (the released code runs the reconstruction at inference too;
not here): in training mode ``forward(..., return_aux=True)`` adds the token streams the reconstruction
needs, and :class:`RecLMISLoss` (the project's ``LSMSLoss`` plus CLR, CVR, CCL and, adapted, POI grounding)
holds the reconstructors, as ``LSMSLoss`` holds LSMS's contrastive projections: checkpoints and parameter
counts hold the inference network alone, and eval mode never computes a reconstruction or the WOI.

Variants: ``reclmis`` (the released code's design, MiniLM instead of CLIP) and ``reclmis-adapted`` (the
spec's section 7 for referring one lesion among several); every difference is a field of
:class:`RecLMISConfig`, so either can be changed one switch at a time.

Decisions on the spec's [INFERRED] points and on its code-vs-paper disagreements (section 6):

- Text encoder (7.2): the project's frozen MiniLM token states; the width bridge is the spec's
  recommendation, ``text_module4`` as a Conv1d(384 -> 512, k 3) (the original's Conv1d(512 -> 512, k 3)
  with ``text_dim=512``), so every other shape is the released one. No LayerNorm after it (the original has
  none). The CLR target is the frozen 384-wide states (the original's "frozen states before the Conv1d",
  section 6 #4) read out of the reconstructor by a Linear(512 -> 384) head (7.2.4, option a).
- Padding: attention 2 (whose keys are the text slots) gets the text key-padding mask (the released one has
  none, section 6 #9), the padded queries of attention 1 are therefore never read, and both text Conv1d
  see zeros at padded positions: the engine's contract is that padded tokens never change the output. Interaction otherwise as released: bare attentions, no
  residual, LayerNorm or FFN (6 #9), 4 heads, dropout 0.1, zero-initialised positional embedding.
- Positional embedding: sized for ``input_size`` (224 -> 14 x 14); other grids interpolate it
  bilinearly, so the network follows H/16 (7.3.5). Inputs not a multiple of 16 are padded and cropped back.
- PixLevel gate as released (no sigmoid); its unused ``conv_sig`` branch is not built (0.35 M parameters
  of the spec's 18.44 M, section 1.4, that never run).
- Head: Conv 1x1 (64 -> 2) with the project's two-class softmax, not the released single sigmoid, so the
  engine, ``lsms eval`` and the refiner read it as they read LSMS (65 more parameters).
- Loss: the project's ``LSMSLoss`` (weighted cross-entropy + soft Dice, pixel contrast, per-lesion
  contrast) instead of the released 5 x (0.5 Dice + 0.5 BCE), plus the released auxiliary weights:
  1 x L_V2T + 1 x L_T2V + 0.2 x L_CCL (7.1).
- Dataset configuration: the MosMedData+ one (CT slices, like ours): image mask rate 0.3, text mask rate
  0.3, 3 reconstructor layers per stage, dropout 0.5 before the POI/WOI predictors.
- Reconstructor (6 #1): the released two-stage DualTransformer (a re-weighted self-attention stage over
  the conditioning stream, then the masked stream's self-attention + re-weighted cross-attention), post-LN,
  FFN 2d, dropout 0.1; the stage-1 layers do not build the cross-attention they never use. Causal masks
  (6 #2, "almost certainly accidental") are off by default (``causal_reconstruction``).
- Masking (2.1): k = max(floor(l x rate), 1) tokens drawn without replacement with probability
  proportional to the POI/WOI weights (Gumbel top-k, the same distribution as ``np.random.choice(...,
  replace=False, p=W)``); [CLS] and [SEP] (first and last real token) are never masked (7.2.5). Masked
  positions are zero-filled (original, 6 #6) or a learnable mask token (adapted, 7.4).
- Reconstruction losses: the original's MSE over all real positions, CVR target V' not detached (6 #3, #5);
  padded text positions are left out of the mean (they are zeros and would make the loss depend on the
  padding). Adapted (7.4): MSE on masked positions + 0.1 x on visible ones, V' target detached and
  LayerNorm'd per token (detached alone, its scale grew unchecked and L_T2V with it).
- CCL: original as released (6 #8): token-level, POI/WOI weights softmaxed a second time, inverse
  temperature fixed at CLIP's 100, symmetric InfoNCE over the batch. Adapted (7.3.3): lesion-level; the
  sentence (WOI-weighted mean of E, one softmax) against every lesion of the batch's slices (the encoder's
  V pooled under each lesion's mask), the referred lesion the positive, the other lesions of the same slice
  the hard negatives, learnable temperature from 0.07; a slice repeated in the batch counts once.
- POI grounding (7.3.2, adapted): BCE of the POI scores against the referred lesion's mask area-pooled to
  the 1/16 grid, weight 0.5.
- Text-conditioned skips (7.3.4, adapted): the 28x28 and 56x56 skips (at 224 px) are multiplied by the
  grounded POI map, sigmoid(POI scores) upsampled; the POI predictor then runs at inference too.
- Not done: the leakage fix of 7.2.6 (masking at the input and re-running MiniLM) needs the text encoder
  inside the training step, which the project's frozen-text cache keeps outside; the WOI still masks
  contextualised states (6 #7).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lsms_core.errors import ConfigError
from lsms_core.model.config import RECLMIS_VARIANTS, checked_config
from lsms_core.model.loss import LSMSLoss

#: per variant: the fields that differ (section 7 of the spec); everything else is shared.
PRESETS: dict[str, dict] = {
    "reclmis": {"text_conditioned_skips": False, "poi_weight": 0.0, "ccl": "token",
                "learnable_mask_token": False, "masked_reconstruction": False},
    "reclmis-adapted": {"text_conditioned_skips": True, "poi_weight": 0.5, "ccl": "lesion",
                        "learnable_mask_token": True, "masked_reconstruction": True},
}
assert set(PRESETS) == set(RECLMIS_VARIANTS)
#: the released code as the spec measured it (section 1.4): inference parameters (U-Net, interaction, 512-wide
#: text Conv1d) and thop MACs of the inference path without the text encoder, at 224 px
SPEC = {"params": 18.44e6, "gmacs": 23.63, "input_size": 224}
CLIP_INV_TAU = 100.0  # exp(logit_scale) of the OpenAI CLIP checkpoint, frozen in the released code


@dataclass
class RecLMISConfig:
    variant: str = "reclmis"
    text_dim: int = 384  # width of the text encoder's token states
    width: int = 512  # d: text path, interaction and reconstructors (the released CLIP width)
    base_channels: int = 64  # U-Net c: 64-128-256-512-512 (the bottleneck's 8c must equal ``width``)
    input_size: int = 224  # sizes the interaction's positional embedding ((input_size / 16) ** 2 tokens)
    heads: int = 4
    attention_dropout: float = 0.1
    num_classes: int = 2
    # ---- training only (the reconstruction branches and their losses)
    rec_layers: int = 3  # layers per reconstructor stage (MosMedData+: 3, QaTa: 4)
    image_mask_rate: float = 0.3
    text_mask_rate: float = 0.3
    weights_dropout: float = 0.5  # before the POI/WOI predictors
    rec_text_weight: float = 1.0  # L_V2T (CLR)
    rec_vision_weight: float = 1.0  # L_T2V (CVR)
    ccl_weight: float = 0.2
    causal_reconstruction: bool = False
    # ---- the spec's section 7 (None: the variant's preset)
    text_conditioned_skips: bool | None = None
    poi_weight: float | None = None  # POI grounding by the referred lesion's mask; 0 = off
    ccl: str | None = None  # "token" (released) or "lesion"
    learnable_mask_token: bool | None = None
    masked_reconstruction: bool | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.variant not in PRESETS:
            raise ConfigError(f"variant {self.variant!r}", f"not a RecLMIS variant ({', '.join(PRESETS)})")
        for key, value in PRESETS[self.variant].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        for name in ("text_dim", "width", "base_channels", "input_size", "heads", "num_classes", "rec_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"model.{name}", f"must be a positive whole number, got {value!r}")
        for name in ("attention_dropout", "image_mask_rate", "text_mask_rate", "weights_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"model.{name}", f"must be a number in [0, 1), got {value!r}")
        for name in ("rec_text_weight", "rec_vision_weight", "ccl_weight", "poi_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"model.{name}", f"must be a number >= 0, got {value!r}")
        for name in ("causal_reconstruction", "text_conditioned_skips", "learnable_mask_token",
                     "masked_reconstruction"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model.{name}", f"must be true or false, got {getattr(self, name)!r}")
        if self.ccl not in ("token", "lesion"):
            raise ConfigError("model.ccl", f"must be token or lesion, got {self.ccl!r}")
        if self.width != 8 * self.base_channels:
            raise ConfigError("model.width", f"must be 8 x base_channels ({8 * self.base_channels}): the "
                                             "bottleneck tokens are the encoder's last feature map")
        if self.width % self.heads:
            raise ConfigError("model.heads", f"{self.heads} heads do not divide the width {self.width}")
        if self.num_classes not in (1, 2):
            raise ConfigError("model.num_classes", "must be 2 (two-class softmax) or 1 (a single logit)")
        if self.input_size % 16:
            raise ConfigError("model.input_size", f"must be a multiple of 16, got {self.input_size}")
        if not isinstance(self.extra, dict):
            raise ConfigError("model.extra", "must be an object")

    # What the engine and LSMSLoss read of an LSMS config.
    @property
    def decoder_channels(self) -> int:
        """Channels of ``pixel_feats`` (the last decoder features)."""
        return self.base_channels

    aux_heads = 0
    referring_from_lesions = False
    backbone = "unet"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RecLMISConfig:
        return checked_config(cls, data)


# ------------------------------------------------------------------------------------------------ U-Net
class ConvBatchNorm(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DownBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.MaxPool2d(2), ConvBatchNorm(cin, cout), ConvBatchNorm(cout, cout))


class PixLevelModule(nn.Module):
    """LViT's skip gate: a per-pixel MLP over (channel-mean, channel-max, their sum) of two 1x1 branches;
    the unbounded scalar map multiplies the skip (as released: no sigmoid)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_avg = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv_max = nn.Conv2d(channels, channels, 1, bias=False)
        self.bottleneck = nn.Sequential(nn.Linear(3, 6), nn.ReLU(inplace=True), nn.Linear(6, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = F.relu(self.conv_avg(x)).mean(1, keepdim=True)
        mx = F.relu(self.conv_max(x)).amax(1, keepdim=True)
        stats = torch.cat([avg, mx, avg + mx], 1).permute(0, 2, 3, 1)
        return x * self.bottleneck(stats).permute(0, 3, 1, 2)


class UpBlock(nn.Module):
    """Nearest x2 up, PixLevel-gated skip, concatenation, two conv-BN-ReLU."""

    def __init__(self, cin_up: int, cin_skip: int, cout: int):
        super().__init__()
        self.gate = PixLevelModule(cin_skip)
        self.convs = nn.Sequential(ConvBatchNorm(cin_up + cin_skip, cout), ConvBatchNorm(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.convs(torch.cat([self.gate(skip), x], 1))


class UNetEncoder(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.inc = ConvBatchNorm(3, c)
        self.down1, self.down2 = DownBlock(c, 2 * c), DownBlock(2 * c, 4 * c)
        self.down3, self.down4 = DownBlock(4 * c, 8 * c), DownBlock(8 * c, 8 * c)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        return [x1, x2, x3, x4, self.down4(x4)]


class UNetDecoder(nn.Module):
    def __init__(self, c: int, width: int, num_classes: int):
        super().__init__()
        self.up4 = UpBlock(width, 8 * c, 4 * c)
        self.up3 = UpBlock(4 * c, 4 * c, 2 * c)
        self.up2 = UpBlock(2 * c, 2 * c, c)
        self.up1 = UpBlock(c, c, c)
        self.outc = nn.Conv2d(c, num_classes, 1)

    def forward(self, bottleneck: torch.Tensor, skips: list[torch.Tensor]):
        x1, x2, x3, x4 = skips
        y = self.up1(self.up2(self.up3(self.up4(bottleneck, x4), x3), x2), x1)
        return self.outc(y), y


# ----------------------------------------------------------------------------------- interaction (CI)
class WeightPredictor(nn.Sequential):
    """Linear(d, d) - ReLU - Linear(d, 1) per token, after dropout: the POI or WOI scores."""

    def __init__(self, width: int, dropout: float):
        super().__init__(nn.Dropout(dropout), nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(tokens)[..., 0]


class ConditionedInteraction(nn.Module):
    """E~ = MHA(q=E, kv=V^), V' = MHA(q=V^, kv=E~), E' = ReLU(BN(Conv1d_k3(E~))); V^ = PE + Conv1x1(V).
    Holds the POI predictor (on V') and the WOI predictor (on E')."""

    def __init__(self, cfg: RecLMISConfig):
        super().__init__()
        d, grid = cfg.width, cfg.input_size // 16
        self.patch_embed = nn.Conv2d(d, d, 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, d))
        self.grid = grid
        self.dropout = nn.Dropout(cfg.attention_dropout)
        self.text_to_vision = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.attention_dropout, batch_first=True)
        self.vision_to_text = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.attention_dropout, batch_first=True)
        self.text_post = nn.Sequential(nn.Conv1d(d, d, 3, padding=1), nn.BatchNorm1d(d), nn.ReLU(inplace=True))
        self.patches_of_interest = WeightPredictor(d, cfg.weights_dropout)
        self.words_of_interest = WeightPredictor(d, cfg.weights_dropout)

    def position(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == (self.grid, self.grid):
            return self.pos_embed
        pos = self.pos_embed.transpose(1, 2).reshape(1, -1, self.grid, self.grid)
        return F.interpolate(pos, size=(h, w), mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)

    def forward(self, vision: torch.Tensor, text: torch.Tensor, key_padding: torch.Tensor):
        """vision (B, d, h, w); text (B, T, d); key_padding (B, T) True at padded tokens.
        Returns V' (B, N, d) and E~ (B, T, d)."""
        h, w = vision.shape[-2:]
        v_hat = self.dropout(self.patch_embed(vision).flatten(2).transpose(1, 2) + self.position(h, w))
        e_tilde = self.text_to_vision(text, v_hat, v_hat, need_weights=False)[0]
        v_prime = self.vision_to_text(v_hat, e_tilde, e_tilde, key_padding_mask=key_padding, need_weights=False)[0]
        return v_prime, e_tilde

    def text_out(self, e_tilde: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """E' (B, T, d) from E~ with padded positions zeroed first."""
        return self.text_post((e_tilde * valid[..., None]).transpose(1, 2)).transpose(1, 2)


class RecLMIS(nn.Module):
    def __init__(self, cfg: RecLMISConfig):
        super().__init__()
        self.cfg = cfg
        c, d = cfg.base_channels, cfg.width
        # ``text_module4``: Conv1d over tokens, k 3, no norm or activation (384 -> 512 for MiniLM)
        self.text_adapter = nn.Conv1d(cfg.text_dim, d, 3, padding=1)
        self.encoder = UNetEncoder(c)
        self.conditioned_interaction = ConditionedInteraction(cfg)
        self.decoder = UNetDecoder(c, d, cfg.num_classes)

    def forward(self, images: torch.Tensor, text_feats: torch.Tensor, text_mask: torch.Tensor,
                return_aux: bool = False):
        """images (B, 3, H, W); text_feats (B, C_l, T); text_mask (B, T) with 1 for real tokens."""
        if text_feats.shape[1] != self.cfg.text_dim:
            raise ValueError(
                f"text features have {text_feats.shape[1]} channels, the model expects {self.cfg.text_dim}"
            )
        H, W = images.shape[-2:]
        pad_h, pad_w = (-H) % 16, (-W) % 16
        x = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
        valid = text_mask.to(images.device) > 0
        key_padding = ~valid
        # A text without any real token would leave attention nothing to read: its first (zero) slot is read.
        key_padding[:, 0] &= valid.any(1)
        valid_f = valid.to(x.dtype)
        text = self.text_adapter(text_feats.to(x.dtype) * valid_f[:, None]) * valid_f[:, None]  # E (B, d, T)
        text = text.transpose(1, 2)
        x1, x2, x3, x4, vision = self.encoder(x)
        ci = self.conditioned_interaction
        v_prime, e_tilde = ci(vision, text, key_padding)
        h, w = vision.shape[-2:]
        bottleneck = v_prime.transpose(1, 2).reshape(len(x), -1, h, w)
        poi = ci.patches_of_interest(v_prime) if (self.training or self.cfg.text_conditioned_skips) else None
        if self.cfg.text_conditioned_skips:
            relevance = torch.sigmoid(poi).view(len(x), 1, h, w)
            x4 = x4 * F.interpolate(relevance, size=x4.shape[-2:], mode="bilinear", align_corners=False)
            x3 = x3 * F.interpolate(relevance, size=x3.shape[-2:], mode="bilinear", align_corners=False)
        logits, pixel_feats = self.decoder(bottleneck, [x1, x2, x3, x4])
        if pad_h or pad_w:
            logits, pixel_feats = logits[..., :H, :W], pixel_feats[..., :H, :W]
        if not return_aux:
            return logits
        out = {"logits": logits, "pixel_feats": pixel_feats}
        if self.training:
            # What the training-only reconstruction and contrast read (RecLMISLoss); never in eval mode.
            e_prime = ci.text_out(e_tilde, valid_f)
            out.update({
                "vision_tokens": vision.flatten(2).transpose(1, 2),  # V (B, N, d), before the interaction
                "text_tokens": text,  # E (B, T, d)
                "vision_interacted": v_prime,  # V' (B, N, d)
                "poi_scores": poi,  # (B, N)
                "woi_scores": ci.words_of_interest(e_prime),  # (B, T), from E'
                "grid": (h, w),
            })
        return out

    def foreground_logit(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, H, W) logit of the lesion class, whatever the head's form (two-class or single logit)."""
        if logits.shape[1] == 1:
            return logits[:, 0]
        return logits[:, 1] - logits[:, 0]


# ------------------------------------------------------------------------- reconstruction (CLR, CVR)
class ReweightedAttention(nn.Module):
    """A = softmax(QK^T / sqrt(d_h)); A' = A * (w + 1e-10) over keys, renormalised; out = A' V."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))
        for lin in (self.q, self.k, self.v, self.out):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query, key, weight=None, key_padding=None, causal: bool = False):
        B, Tq, D = query.shape
        Tk = key.shape[1]
        h = self.heads

        def split(t, n):
            return t.view(B, n, h, D // h).transpose(1, 2)

        q, k, v = split(self.q(query), Tq), split(self.k(key), Tk), split(self.v(key), Tk)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // h)
        blocked = torch.zeros(B, 1, Tq, Tk, dtype=torch.bool, device=query.device)
        if key_padding is not None:
            blocked = blocked | key_padding[:, None, None, :]
        if causal:
            blocked = blocked | torch.ones(Tq, Tk, dtype=torch.bool, device=query.device).triu(1)
        # a row with every key blocked keeps its first key (never all -inf)
        blocked = blocked & ~(blocked.all(-1, keepdim=True) & (torch.arange(Tk, device=query.device) == 0))
        attn = scores.masked_fill(blocked, float("-inf")).softmax(-1)
        if weight is not None:
            attn = attn * (weight[:, None, None, :] + 1e-10)
            attn = attn / attn.sum(-1, keepdim=True)
        return self.out((attn @ v).transpose(1, 2).reshape(B, Tq, D))


class ReconstructionLayer(nn.Module):
    """Post-LN: x = LN(x + Drop(SelfAttn(x))) [, x = LN(x + Drop(CrossAttn_w(x, ctx)))], x = LN(x + Drop(FFN))."""

    def __init__(self, width: int, heads: int, cross: bool, dropout: float = 0.1):
        super().__init__()
        self.self_attn = ReweightedAttention(width, heads)
        self.norm1 = nn.LayerNorm(width)
        self.cross_attn = ReweightedAttention(width, heads) if cross else None
        self.norm2 = nn.LayerNorm(width) if cross else None
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.ReLU(inplace=True), nn.Linear(2 * width, width))
        self.norm3 = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, self_weight=None, self_padding=None, ctx=None, ctx_weight=None, ctx_padding=None,
                causal: bool = False):
        x = self.norm1(x + self.drop(self.self_attn(x, x, self_weight, self_padding, causal)))
        if self.cross_attn is not None:
            x = self.norm2(x + self.drop(self.cross_attn(x, ctx, ctx_weight, ctx_padding)))
        return self.norm3(x + self.drop(self.ffn(x)))


class ConditionedReconstruction(nn.Module):
    """The released DualTransformer: stage 1 re-weights self-attention over the conditioning stream C by
    its POI/WOI weights w; stage 2 rebuilds the masked stream from itself and from C~ (cross-attention
    re-weighted by w). ``out_dim`` adds a linear read-out (CLR: back to the text encoder's width)."""

    def __init__(self, cfg: RecLMISConfig, out_dim: int | None = None):
        super().__init__()
        d, n = cfg.width, cfg.rec_layers
        self.causal = cfg.causal_reconstruction
        self.context_layers = nn.ModuleList(ReconstructionLayer(d, cfg.heads, cross=False) for _ in range(n))
        self.reconstruction_layers = nn.ModuleList(ReconstructionLayer(d, cfg.heads, cross=True) for _ in range(n))
        self.mask_token = nn.Parameter(torch.zeros(d)) if cfg.learnable_mask_token else None
        self.read_out = nn.Linear(d, out_dim) if out_dim is not None and out_dim != d else None

    def forward(self, masked, ctx, ctx_weight, masked_padding=None, ctx_padding=None):
        for layer in self.context_layers:
            ctx = layer(ctx, self_weight=ctx_weight, self_padding=ctx_padding, causal=self.causal)
        x = masked
        for layer in self.reconstruction_layers:
            x = layer(x, self_padding=masked_padding, ctx=ctx, ctx_weight=ctx_weight, ctx_padding=ctx_padding,
                      causal=self.causal)
        return self.read_out(x) if self.read_out is not None else x


class ConditionedLanguageReconstruction(ConditionedReconstruction):
    """CLR ("vision -> text", L_V2T): the WOI-masked E rebuilt from the POI-weighted vision tokens V; the
    target is the frozen text encoder's token states."""


class ConditionedVisionReconstruction(ConditionedReconstruction):
    """CVR ("text -> vision", L_T2V): the POI-masked V rebuilt from the WOI-weighted text E; target V'."""


def conditioned_mask(tokens: torch.Tensor, weights: torch.Tensor, maskable: torch.Tensor, rate: float,
                     mask_token: torch.Tensor | None = None):
    """Replace k_i = max(floor(l_i * rate), 1) of the l_i maskable tokens of each row, drawn without
    replacement with probability proportional to ``weights`` (Gumbel top-k), by zeros or ``mask_token``.
    Returns (masked tokens, chosen (B, L) bool)."""
    n = maskable.sum(1)
    k = torch.where(n > 0, (n.float() * rate).floor().long().clamp_min(1), torch.zeros_like(n))
    w = weights.detach().float().clamp_min(1e-30)
    gumbel = -torch.log(-torch.log(torch.rand_like(w).clamp(1e-20, 1.0 - 1e-7)))
    keys = (w.log() + gumbel).masked_fill(~maskable, float("-inf"))
    order = keys.argsort(1, descending=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(w.shape[1], device=w.device).expand_as(order))
    chosen = (rank < k[:, None]) & maskable
    fill = tokens.new_zeros(()) if mask_token is None else mask_token.to(tokens.dtype)
    return torch.where(chosen[..., None], fill, tokens), chosen


# -------------------------------------------------------------------------------------- contrast (CCL)
class ConditionedContrastiveLoss(nn.Module):
    """``token`` (released): s_ab = (sum_t w_t max_v cos(e_at, v_bv) + sum_v w_v max_t cos) / 2 over the
    batch, x 100, symmetric InfoNCE; w are the WOI/POI weights softmaxed again. ``lesion`` (section 7.3.3):
    sentence vs each lesion of the batch's slices, the referred lesion positive, one softmax, learnable tau."""

    def __init__(self, cfg: RecLMISConfig, tau: float = 0.07):
        super().__init__()
        self.mode = cfg.ccl
        self.log_inv_tau = nn.Parameter(torch.tensor(math.log(1.0 / tau))) if cfg.ccl == "lesion" else None

    def token_level(self, text, vision, w_woi, w_poi, valid):
        e = F.normalize(text.float(), dim=-1) * valid[..., None]
        v = F.normalize(vision.float(), dim=-1)
        sim = torch.einsum("atd,bvd->abtv", e, v)
        omega_t = w_woi.float().softmax(-1)  # the released second softmax
        omega_v = w_poi.float().softmax(-1)
        t2v = torch.einsum("at,abt->ab", omega_t, sim.amax(3))
        v2t = torch.einsum("bv,abv->ab", omega_v, sim.amax(2))
        logits = (t2v + v2t) / 2 * CLIP_INV_TAU
        target = torch.arange(len(text), device=text.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2

    def lesion_level(self, text, vision, w_woi, grid, labels, target_label):
        zero = text.new_zeros((), dtype=torch.float32)
        if labels is None or target_label is None or labels.numel() == 0:
            return zero
        n = int(labels.max())
        use = target_label > 0
        if n < 1 or not use.any():
            return zero
        B = len(labels)
        flat = labels.flatten(1)
        first = [next(j for j in range(b + 1) if torch.equal(flat[j], flat[b])) for b in range(B)]
        slices = sorted(set(first))
        onehot = torch.stack([(labels[slices] == k) for k in range(1, n + 1)], 1).float()
        weights = F.interpolate(onehot, size=grid, mode="area").flatten(2)  # (S, n, N)
        area = weights.sum(-1)
        pooled = torch.einsum("skn,snd->skd", weights, vision[slices].float()) / area.clamp_min(1e-6)[..., None]
        present = (area > 0).flatten()  # candidates (slice, lesion)
        regions = F.normalize(pooled.flatten(0, 1), dim=-1)
        sentence = F.normalize(torch.einsum("bt,btd->bd", w_woi.float(), text.float()), dim=-1)
        scale = self.log_inv_tau.clamp(max=math.log(100.0)).exp()
        logits = (sentence @ regions.t() * scale).masked_fill(~present, -1e4)
        index = torch.tensor([slices.index(f) for f in first], device=labels.device)
        positive = index * n + (target_label - 1).clamp_min(0)
        rows = use & present[positive]
        if not rows.any():
            return zero
        return F.cross_entropy(logits[rows], positive[rows])

    def forward(self, text, vision, w_woi, w_poi, valid, grid=None, labels=None, target_label=None):
        if self.mode == "token":
            return self.token_level(text, vision, w_woi, w_poi, valid)
        return self.lesion_level(text, vision, w_woi, grid, labels, target_label)


# ---------------------------------------------------------------------------------------- the loss
class RecLMISLoss(nn.Module):
    """The project's LSMSLoss plus, in training (when the outputs carry the token streams), the
    reconstruction losses L_V2T and L_T2V, the CCL and (adapted) the POI grounding. Holds the training-only
    modules, so checkpoints hold the inference network alone."""

    def __init__(self, cfg: RecLMISConfig, **lsms_loss_kwargs):
        super().__init__()
        self.cfg = cfg
        self.base = LSMSLoss(cfg, **lsms_loss_kwargs)
        self.language_reconstruction = ConditionedLanguageReconstruction(cfg, out_dim=cfg.text_dim)
        self.vision_reconstruction = ConditionedVisionReconstruction(cfg)
        self.contrastive_loss = ConditionedContrastiveLoss(cfg)

    def _mse(self, rebuilt, target, chosen, valid):
        err = (rebuilt.float() - target.float()).pow(2).mean(-1)  # (B, L)
        valid = valid.float()
        if not self.cfg.masked_reconstruction:
            return (err * valid).sum() / valid.sum().clamp_min(1.0)
        masked = chosen.float() * valid
        visible = (1.0 - chosen.float()) * valid
        return ((err * masked).sum() / masked.sum().clamp_min(1.0)
                + 0.1 * (err * visible).sum() / visible.sum().clamp_min(1.0))

    def reconstruction_terms(self, outputs, target, text_feats, text_mask, labels=None, target_label=None) -> dict:
        cfg = self.cfg
        V, E, V_prime = outputs["vision_tokens"], outputs["text_tokens"], outputs["vision_interacted"]
        valid = text_mask.to(E.device) > 0
        B, T = valid.shape
        # [CLS] and [SEP] (the first and last real tokens) are never masked
        lengths = valid.sum(1)
        position = torch.arange(T, device=E.device)
        maskable = valid & (position > 0) & (position < (lengths - 1)[:, None])
        w_poi = outputs["poi_scores"].float().softmax(-1)  # (B, N): every patch is real
        w_woi = outputs["woi_scores"].float().masked_fill(~valid, float("-inf")).softmax(-1)
        w_woi = torch.nan_to_num(w_woi, nan=0.0)  # a text without real tokens
        all_patches = torch.ones(V.shape[:2], dtype=torch.bool, device=V.device)
        v_masked, v_chosen = conditioned_mask(V, w_poi, all_patches, cfg.image_mask_rate,
                                              self.vision_reconstruction.mask_token)
        sample_w = w_woi * maskable
        e_masked, e_chosen = conditioned_mask(E, sample_w, maskable, cfg.text_mask_rate,
                                              self.language_reconstruction.mask_token)
        padding = ~valid
        rebuilt_v = self.vision_reconstruction(v_masked, E, w_woi, ctx_padding=padding)
        rebuilt_t = self.language_reconstruction(e_masked, V, w_poi, masked_padding=padding)
        v_target = V_prime
        if cfg.masked_reconstruction:
            # detached, so also normalised per token (MAE's normalised targets): a detached target's scale is
            # free to grow (seen: V' from rms 0.7 to 4.9 in 111 steps, L_T2V 14 and rising)
            v_target = F.layer_norm(V_prime.detach().float(), V_prime.shape[-1:])
        rec_vision = self._mse(rebuilt_v, v_target, v_chosen, all_patches)
        rec_text = self._mse(rebuilt_t, text_feats.transpose(1, 2), e_chosen, valid)
        ccl = self.contrastive_loss(E, V, w_woi, w_poi, valid, outputs["grid"], labels, target_label)
        terms = {"rec_text": torch.nan_to_num(rec_text), "rec_vision": torch.nan_to_num(rec_vision), "ccl": ccl}
        if cfg.poi_weight > 0:
            small = F.interpolate(target[:, None].float(), size=outputs["grid"], mode="area").flatten(1)
            terms["poi"] = F.binary_cross_entropy_with_logits(outputs["poi_scores"].float(), small)
        return terms

    def forward(self, outputs: dict, target: torch.Tensor, text_feats: torch.Tensor, text_mask: torch.Tensor,
                aux=None, aux_valid=None, labels=None, target_label=None) -> dict:
        result = self.base(outputs, target, text_feats, text_mask, aux=aux, aux_valid=aux_valid, labels=labels,
                           target_label=target_label)
        if "vision_tokens" not in outputs:
            return result
        cfg = self.cfg
        terms = self.reconstruction_terms(outputs, target.long(), text_feats, text_mask, labels, target_label)
        loss = (result["loss"] + cfg.rec_text_weight * terms["rec_text"]
                + cfg.rec_vision_weight * terms["rec_vision"] + cfg.ccl_weight * terms["ccl"])
        if "poi" in terms:
            loss = loss + cfg.poi_weight * terms["poi"]
        result["loss"] = loss
        result.update({k: v.detach() for k, v in terms.items()})
        return result

"""Training loss: segmentation (weighted cross-entropy + soft Dice) plus vision-language contrast.

Two more terms (ours) when the batch carries them: the text-free heads (liver and every-lesion maps,
binary cross-entropy + soft Dice) and a per-lesion contrast: the decoder's features pooled over each
lesion of the slice are compared with the sentence, and the referred lesion must win against the other
lesions of the same slice (a softmax over the slice's lesions). That term is what makes the words choose
between two lesions, which the per-pixel contrast alone hardly does.

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

#: positive weight of the every-lesion map's cross-entropy (the liver map's is 1). Where the network cannot
#: yet tell lesion from liver, the weighted optimum is w*p / (w*p + 1 - p) for a lesion share p of the liver:
#: about 0.5 at w = 20 and p = 5 %, so the map covers the whole liver at the 0.5 threshold (seen after four
#: epochs of the e0 run); a smaller weight keeps that blur below the threshold.
AUX_LESION_WEIGHT = 20.0


class ContrastiveHead(nn.Module):
    def __init__(self, pixel_dim: int, text_dim: int, dim: int = 128, tau: float = 0.07):
        super().__init__()
        self.pixel_proj = nn.Conv2d(pixel_dim, dim, 1)
        self.text_proj = nn.Linear(text_dim, dim)
        self.log_inv_tau = nn.Parameter(torch.tensor(math.log(1.0 / tau)))

    def forward(self, pixel_feats, text_feats, text_mask) -> torch.Tensor:
        """Per-pixel logits (B, h, w) of 'this pixel belongs to the referred lesion'."""
        s = self.sentence(text_feats, text_mask)
        p = F.normalize(self.pixel_proj(pixel_feats), dim=1)
        scale = self.log_inv_tau.clamp(max=math.log(100.0)).exp()
        return torch.einsum("bchw,bc->bhw", p, s) * scale

    def sentence(self, text_feats, text_mask) -> torch.Tensor:
        """The masked mean of the token features, projected and L2-normalised (B, dim)."""
        mask = text_mask.to(text_feats.dtype).unsqueeze(1)
        sentence = (text_feats * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)
        return F.normalize(self.text_proj(sentence), dim=-1)

    def lesion_logits(self, pixel_feats, text_feats, text_mask, labels: torch.Tensor, n: int):
        """(B, n) similarity of the sentence with the features pooled over lesions 1..n of ``labels``
        (B, H, W), and (B, n) which lesions are present at the features' resolution."""
        onehot = torch.stack([(labels == k) for k in range(1, n + 1)], dim=1).float()
        weights = F.interpolate(onehot, size=pixel_feats.shape[-2:], mode="area")
        area = weights.sum((2, 3))
        p = self.pixel_proj(pixel_feats)
        pooled = torch.einsum("bkhw,bchw->bkc", weights, p) / area.clamp_min(1e-6)[..., None]
        s = self.sentence(text_feats, text_mask)
        scale = self.log_inv_tau.clamp(max=math.log(100.0)).exp()
        return torch.einsum("bkc,bc->bk", F.normalize(pooled, dim=-1), s) * scale, area > 0


def soft_dice(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    inter = (prob * target).flatten(1).sum(1)
    denom = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
    return 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)


class LSMSLoss(nn.Module):
    def __init__(self, cfg: LSMSConfig, class_weights=(0.9, 1.1), dice_weight: float = 1.0,
                 contrastive_weight: float = 0.5, contrastive_dim: int = 128, tau: float = 0.07,
                 aux_weight: float = 0.5, lesion_contrast_weight: float = 0.0,
                 aux_lesion_weight: float = AUX_LESION_WEIGHT):
        super().__init__()
        self.aux_weight = aux_weight
        self.aux_lesion_weight = aux_lesion_weight
        self.lesion_contrast_weight = lesion_contrast_weight
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
        return ce + self.dice_weight * soft_dice(prob, target.float()).mean()

    def forward(self, outputs: dict, target: torch.Tensor, text_feats: torch.Tensor,
                text_mask: torch.Tensor, aux: torch.Tensor | None = None, aux_valid: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, target_label: torch.Tensor | None = None) -> dict:
        """outputs: the model's ``return_aux=True`` dict; target (B, H, W) long {0, 1}.

        Optional: ``aux`` (B, 2, H, W) {0, 1} liver and every-lesion maps with ``aux_valid`` (B,) saying
        which samples have them; ``labels`` (B, H, W) lesion k of the slice and ``target_label`` (B,) the
        referred one (0 = none) for the per-lesion contrast.
        """
        target = target.long()
        seg = self.segmentation(outputs["logits"], target)
        pixel_feats = outputs["pixel_feats"].float()
        con_logits = self.contrastive(pixel_feats, text_feats.float(), text_mask)
        small = F.interpolate(target[:, None].float(), size=con_logits.shape[-2:], mode="area")[:, 0]
        con = F.binary_cross_entropy_with_logits(con_logits, small)
        loss = seg + self.contrastive_weight * con
        zero = loss.new_zeros(())
        aux_loss, lesion_con = zero, zero
        if aux is not None and "aux_logits" in outputs:
            valid = aux_valid if aux_valid is not None else torch.ones(len(aux), dtype=torch.bool, device=aux.device)
            if valid.any():
                logits = outputs["aux_logits"].float()[valid]
                tgt = aux[valid].float()
                # Lesions cover about 1 % of a slice: without a weight on them the every-lesion map settles
                # on "nothing" (seen: its Dice stayed at 0 while the referring head learned the same lesions).
                pos = torch.tensor([1.0, self.aux_lesion_weight], device=logits.device).view(1, 2, 1, 1)
                bce = F.binary_cross_entropy_with_logits(logits, tgt, pos_weight=pos)
                dice = soft_dice(torch.sigmoid(logits).flatten(0, 1), tgt.flatten(0, 1)).mean()
                aux_loss = bce + dice
                loss = loss + self.aux_weight * aux_loss
        if labels is not None and target_label is not None and self.lesion_contrast_weight > 0:
            # A referred lesion can lie outside a training window (its label then absent from ``labels``).
            n = max(int(labels.max()) if labels.numel() else 0, int(target_label.max()))
            use = target_label > 0
            if n >= 2 and use.any():
                sim, present = self.contrastive.lesion_logits(pixel_feats[use], text_feats.float()[use],
                                                              text_mask[use], labels[use].long(), n)
                tl = target_label[use] - 1
                rows = present.sum(1) >= 2
                rows &= present.gather(1, tl[:, None])[:, 0]
                if rows.any():
                    sim = sim.masked_fill(~present, -1e4)
                    lesion_con = F.cross_entropy(sim[rows], tl[rows])
                    loss = loss + self.lesion_contrast_weight * lesion_con
        return {"loss": loss, "seg": seg.detach(), "con": con.detach(), "aux": aux_loss.detach(),
                "lesion_con": lesion_con.detach()}

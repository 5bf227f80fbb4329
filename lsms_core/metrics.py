"""The paper's referring-segmentation metrics, per sample = one (slice, expression) pair.

Definitions (shared/docs/lsms-model-spec.md, "Metrics"):

- mDice = mean over samples of 2|P&G| / (|P| + |G|)
- mIoU  = mean over samples of |P&G| / |P|G|  (foreground IoU of each sample)
- oIoU  = sum |P&G| / sum |P|G| over the whole set (the "overall" or cumulative IoU of LAVT)
- Prec@X = share of samples whose IoU is at least X, X in 0.5, 0.6, 0.7, 0.8, 0.9

A sample whose ground truth and prediction are both empty scores 1.0 in Dice and IoU (our convention,
stated in every summary as ``empty_pair_score``); it adds nothing to oIoU's sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

PREC_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
EMPTY_PAIR_SCORE = 1.0


@dataclass(frozen=True)
class PairScore:
    intersection: int
    union: int
    pred_area: int
    gt_area: int

    @property
    def iou(self) -> float:
        return EMPTY_PAIR_SCORE if self.union == 0 else self.intersection / self.union

    @property
    def dice(self) -> float:
        total = self.pred_area + self.gt_area
        return EMPTY_PAIR_SCORE if total == 0 else 2.0 * self.intersection / total


def score_pair(pred, gt) -> PairScore:
    """Counts of one predicted mask against its ground truth (any shape, non-zero = foreground)."""
    p = np.asarray(pred) != 0
    g = np.asarray(gt) != 0
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth shape {g.shape}")
    inter = int(np.count_nonzero(p & g))
    pa = int(np.count_nonzero(p))
    ga = int(np.count_nonzero(g))
    return PairScore(intersection=inter, union=pa + ga - inter, pred_area=pa, gt_area=ga)


def summarize(scores: Iterable[PairScore]) -> dict:
    """mDice, mIoU, oIoU, Prec@0.5..0.9 and the sample count of a set of pair scores."""
    scores = list(scores)
    n = len(scores)
    if n == 0:
        out = {"samples": 0, "mDice": float("nan"), "mIoU": float("nan"), "oIoU": float("nan")}
        out.update({f"prec@{t}": float("nan") for t in PREC_THRESHOLDS})
        return out
    ious = np.array([s.iou for s in scores])
    dices = np.array([s.dice for s in scores])
    inter = sum(s.intersection for s in scores)
    union = sum(s.union for s in scores)
    out = {
        "samples": n,
        "mDice": float(dices.mean()),
        "mIoU": float(ious.mean()),
        "oIoU": float(inter / union) if union else EMPTY_PAIR_SCORE,
    }
    # A tiny tolerance so an IoU of exactly 0.7 computed as 0.69999... still counts at 0.7.
    out.update({f"prec@{t}": float(np.mean(ious >= t - 1e-9)) for t in PREC_THRESHOLDS})
    return out


@dataclass
class MetricAccumulator:
    """Collects pair scores, each tagged with its attribute groups, and summarises them.

    ``groups`` of a sample is a mapping such as ``{"size": "10-20 mm", "lesions_on_slice": "2+"}``; the
    summary's ``groups`` object holds the same figures for every (group, value) seen.
    """

    scores: list[PairScore] = field(default_factory=list)
    tags: list[dict] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def add(self, pred, gt, groups: dict | None = None, sample_id: str = "") -> PairScore:
        score = score_pair(pred, gt)
        self.add_score(score, groups, sample_id)
        return score

    def add_score(self, score: PairScore, groups: dict | None = None, sample_id: str = "") -> None:
        self.scores.append(score)
        self.tags.append(dict(groups or {}))
        self.ids.append(sample_id)

    def __len__(self) -> int:
        return len(self.scores)

    def summary(self, with_groups: bool = True) -> dict:
        out = summarize(self.scores)
        out["empty_pair_score"] = EMPTY_PAIR_SCORE
        if with_groups:
            groups: dict[str, dict[str, list[PairScore]]] = {}
            for score, tags in zip(self.scores, self.tags, strict=True):
                for key, value in tags.items():
                    groups.setdefault(key, {}).setdefault(str(value), []).append(score)
            out["groups"] = {
                key: {value: summarize(values[value]) for value in sorted(values, key=_natural)}
                for key, values in sorted(groups.items())
            }
        return out

    def worst(self, n: int) -> list[tuple[str, PairScore]]:
        order = np.argsort([s.dice for s in self.scores], kind="stable")[:n]
        return [(self.ids[i], self.scores[i]) for i in order]


def _natural(text: str):
    """Sort "2", "10", "<10 mm" sensibly: by the first number found, then the text."""
    digits = "".join(ch if ch.isdigit() or ch == "." else " " for ch in text).split()
    try:
        value = float(digits[0]) if digits else float("inf")
    except ValueError:
        value = float("inf")
    return (value - 1e-3 if text.lstrip().startswith("<") else value, text)

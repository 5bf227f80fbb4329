"""``lsms eval`` on the whole pipeline: what a user of ``lsms segment`` gets, scored per slice-expression.

Every pair goes through :func:`lsms_core.referring.pipeline.iter_refer` on its slice, as ``lsms segment``
runs it (candidates, resolution, refinement when a refiner is given). Reported, at native resolution:

- the final masks (refined when the refiner ran): mDice, mIoU, oIoU, Prec@X, ``hit``, per group;
- ``raw``: the same figures for the masks before refinement (what LSMS and the resolver chose);
- ``resolver``: how often each outcome (found, ambiguous, not found) came, and ``hit`` of the choice made
  by the network's referring score alone, the facts alone and both (the combination rule is measured on
  the same candidates, so the three differ only in the rule);
- ``nonsense`` (when asked): the share of nonsense expressions on slices with lesions that return an
  empty mask with a note.

``hit``: the prediction overlaps the referred lesion, and more than it overlaps any other lesion of the
slice (the other lines of the same image).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from lsms_core.evaluate import SliceLesions, is_hit, sample_groups, select_expressions, slice_lesion_counts
from lsms_core.metrics import MetricAccumulator

RULES = ("network", "facts", "both")


def is_windowed(dataset) -> bool:
    """Whether the dataset's images are windowed 8-bit PNGs (no HU: the pipeline cannot score them)."""
    return bool(dataset.samples) and dataset.load_pair(dataset.samples[0])[2]


def evaluate_pipeline(segmenter, dataset, *, split: str = "test", text_fraction: float | None = None,
                      refiner=None, threshold: float | None = None, nonsense: int = 0, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None, zoom: bool = True) -> dict:
    from lsms_core.errors import LSMSError
    from lsms_core.referring.pipeline import refer
    from lsms_core.referring.resolve import resolve

    samples = list(dataset.samples) if split == "all" else dataset.split(split)
    if not samples:
        raise LSMSError(f"{dataset.root} split {split!r}", "holds no samples to evaluate")
    counts = slice_lesion_counts(dataset.samples)
    lesions = SliceLesions(dataset)
    pairs = [(s, i, text, tag) for s in samples for i, text, tag in select_expressions(s, text_fraction)]
    final, raw = MetricAccumulator(), MetricAccumulator()
    hits: dict[str, dict[str, list[bool]]] = {"final": {}, "raw": {}}
    rule_hits: dict[str, list[bool]] = {r: [] for r in RULES}
    outcomes: Counter = Counter()
    for n, (sample, i, text, tag) in enumerate(pairs):
        image, mask, windowed = dataset.load_pair(sample)
        if windowed:
            raise LSMSError(dataset.root, "the pipeline needs CT in HU; windowed 8-bit images (LViT-style) "
                                          "are scored with the network alone (lsms eval --network-only)")
        spacing = (1.0, float(sample.spacing[0]), float(sample.spacing[1]))
        # --text-fraction 0 leaves no words: the network runs wordless and the resolver takes its choice
        referral = refer(segmenter, image, text, spacing, refiner=refiner, threshold=threshold, no_words_ok=True,
                         zoom=zoom)
        groups = sample_groups(sample, mask, sample.expressions[i], counts, tag)
        target = mask != 0
        others = lesions.others(sample)
        sid = f"{sample.id}#{i}"
        for name, pred, acc in (("final", referral.mask[0], final), ("raw", referral.raw_mask[0], raw)):
            acc.add(pred, target, groups, sid)
            hit = is_hit(pred, target, others)
            for key in ("all", *(f"{g}={v}" for g, v in groups.items())):
                hits[name].setdefault(key, []).append(hit)
        res = referral.resolution
        outcomes[res.status if res is not None else "all regions"] += 1
        if res is not None and res.candidates:
            for rule in RULES:
                alt = resolve(text, res.candidates, use_net=rule != "facts", use_facts=rule != "network")
                chosen = alt.chosen.on_slice(0) if alt.chosen is not None else np.zeros_like(target)
                rule_hits[rule].append(is_hit(chosen, target, others))
        elif res is not None:
            for rule in RULES:
                rule_hits[rule].append(False)
        if progress is not None:
            progress(n + 1, len(pairs))
    result = _with_hits(final.summary(), hits["final"])
    result["raw"] = _with_hits(raw.summary(), hits["raw"])
    result["resolver"] = {"outcomes": dict(outcomes),
                          "hit": {r: (float(np.mean(v)) if v else float("nan")) for r, v in rule_hits.items()}}
    if nonsense:
        result["nonsense"] = nonsense_rate(segmenter, dataset, samples, nonsense, seed, refiner, zoom)
    result.update({"split": split, "text_fraction": text_fraction, "lines": len(samples),
                   "stages": (["lsms"] + (["liver zoom"] if zoom and segmenter.has_aux else []) + ["candidates"]
                              + ([refiner.name] if refiner is not None else [])),
                   "resolution": "native", "pipeline": True})
    return result


def _with_hits(summary: dict, hits: dict[str, list[bool]]) -> dict:
    summary["hit"] = float(np.mean(hits["all"])) if hits.get("all") else float("nan")
    for key, values in hits.items():
        if key == "all":
            continue
        group, value = key.split("=", 1)
        summary.setdefault("groups", {}).setdefault(group, {}).setdefault(value, {})["hit"] = float(np.mean(values))
    return summary


def nonsense_rate(segmenter, dataset, samples, per_slice: int, seed: int, refiner=None, zoom: bool = True) -> dict:
    """Nonsense words on every slice with lesions: how often the answer is an empty mask with a note."""
    from lsms_core.referring.pipeline import refer
    from lsms_core.training.synth_stream import nonsense

    rng = np.random.default_rng(seed)
    seen, empty, tried, examples = set(), 0, 0, []
    for s in samples:
        if s.image in seen:
            continue
        seen.add(s.image)
        image, _, _ = dataset.load_pair(s)
        spacing = (1.0, float(s.spacing[0]), float(s.spacing[1]))
        for _ in range(per_slice):
            words = nonsense(rng)
            referral = refer(segmenter, image, words, spacing, refiner=refiner, zoom=zoom)
            tried += 1
            ok = not referral.mask.any() and referral.status == "not found"
            empty += ok
            if not ok and len(examples) < 5:
                examples.append(words)
    return {"tried": tried, "empty_with_note": empty, "rate": empty / tried if tried else float("nan"),
            "failures": examples}

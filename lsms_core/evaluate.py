"""Evaluation of a checkpoint on a dataset split, the way the paper measures LSMS.

Every expression of every manifest line is one sample. Masks are scored at two resolutions:

- model resolution: the logits at the network's input size against the ground truth resized to that size
  (area interpolation, then >= 0.5: the target the trainer uses);
- native resolution: the logits resized (bilinear) to the slice's own grid, as the engine does, against the
  mask as stored. The top-level figures of :func:`evaluate`'s result are the native ones.

Groups (figures per attribute value): lesion size (``attributes.diameter_mm`` or, when absent, the
equivalent diameter of the mask), comparative vs plain expressions, and the number of lesions on the slice
(``attributes.lesions_on_slice`` or, when absent, the number of manifest lines sharing the slice's image).

``text_fraction`` reproduces the partial-text protocol. ``None`` (the default) scores every expression as
written. A fraction F uses, on lines that tag their expressions with ``expression_fractions`` (what the
annotation mode and ``lsms data synth`` write: full, 50 % and 25 % versions composed by hand rules), the
expressions tagged F; elsewhere (untagged lines, or no expression tagged F) each full expression keeps F of
its words (at least one), chosen by a generator seeded with the sample id, in their original order.
``text_fraction=0`` removes the words entirely (only the encoder's special tokens remain): the "without
text" figure. Tagged lines also get a ``text_fraction`` group, so one default run reports all fractions.
"""

from __future__ import annotations

import heapq
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lsms_core.checks import check_threshold
from lsms_core.errors import LSMSError
from lsms_core.metrics import MetricAccumulator, PairScore, score_pair
from lsms_core.text import encode_without_words

SIZE_BINS = ((10.0, "<10 mm"), (20.0, "10-20 mm"), (40.0, "20-40 mm"), (math.inf, ">=40 mm"))
_COMPARATIVE = re.compile(
    r"\b(\w+er than|smaller|larger|bigger|smallest|largest|biggest|more|most|less|least|greater|"
    r"greatest|denser|densest|darker|darkest|brighter|brightest|other|second|third|another)\b",
    re.IGNORECASE,
)


def size_group(diameter_mm: float) -> str:
    for upper, label in SIZE_BINS:
        if diameter_mm < upper:
            return label
    return SIZE_BINS[-1][1]


def equivalent_diameter_mm(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    area = float(np.count_nonzero(mask)) * float(spacing[0]) * float(spacing[1])
    return 2.0 * math.sqrt(area / math.pi)


def is_comparative(expression: str) -> bool:
    return bool(_COMPARATIVE.search(expression))


def keep_words(expression: str, fraction: float, key: str) -> str:
    """The partial-text protocol: keep ``fraction`` of the words, seeded by ``key``, in order."""
    if fraction >= 1.0:
        return expression
    words = expression.split()
    if fraction <= 0.0 or not words:
        return ""
    n_keep = max(1, int(round(fraction * len(words))))
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    kept = sorted(rng.choice(len(words), size=n_keep, replace=False))
    return " ".join(words[i] for i in kept)


def encode_texts(encoder, texts: list[str]):
    """The encoder's (feats, mask) for ``texts``; an empty text gives the special tokens alone."""
    import torch

    if all(texts):
        return encoder.encode(texts)
    feats, masks = [], []
    for text in texts:
        if text:
            f, m = encoder.encode([text])
        else:
            f, m = encode_without_words(encoder)
        feats.append(f)
        masks.append(m)
    return torch.cat(feats), torch.cat(masks)


def expression_tags(sample) -> list[float] | None:
    tags = sample.extra.get("expression_fractions") if sample.extra else None
    if (isinstance(tags, list) and len(tags) == len(sample.expressions)
            and all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in tags)):
        return [float(t) for t in tags]
    return None


def select_expressions(sample, text_fraction: float | None) -> list[tuple[int, str, float | None]]:
    """(index, text to encode, tag) of every expression of ``sample`` scored under ``text_fraction``."""
    tags = expression_tags(sample)
    if text_fraction is None:
        return [(i, e, tags[i] if tags else None) for i, e in enumerate(sample.expressions)]
    if tags and text_fraction > 0:
        tagged = [(i, e, t) for i, (e, t) in enumerate(zip(sample.expressions, tags, strict=True))
                  if abs(t - text_fraction) < 1e-6]
        if tagged:
            return tagged
    full = [i for i, t in enumerate(tags) if t >= 1.0] if tags else []
    full = full or list(range(len(sample.expressions)))
    return [(i, keep_words(sample.expressions[i], text_fraction, f"{sample.id}#{i}"), text_fraction)
            for i in full]


def slice_lesion_counts(samples) -> Counter:
    return Counter(s.image for s in samples)


def sample_groups(sample, mask: np.ndarray, expression: str, counts: Counter, tag: float | None = None) -> dict:
    attrs = sample.attributes or {}
    diameter = attrs.get("diameter_mm")
    if not isinstance(diameter, (int, float)) or isinstance(diameter, bool):
        diameter = equivalent_diameter_mm(mask, sample.spacing)
    n_lesions = attrs.get("lesions_on_slice", attrs.get("n_lesions"))
    if not isinstance(n_lesions, int) or isinstance(n_lesions, bool) or n_lesions < 1:
        n_lesions = counts.get(sample.image, 1)
    comparative = attrs.get("comparative")
    if not isinstance(comparative, bool):
        comparative = is_comparative(expression)
    groups = {
        "lesion_size": size_group(float(diameter)),
        "expression": "comparative" if comparative else "plain",
        "lesions_on_slice": "1" if n_lesions <= 1 else "2+",
    }
    if tag is not None:
        groups["text_fraction"] = f"{tag:g}"
    return groups


def target_at(mask: np.ndarray, size: int):
    """The ground truth at the model's input size: area-resized, then >= 0.5 (as the trainer uses)."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    if m.shape[-2:] != (size, size):
        m = F.interpolate(m, size=(size, size), mode="area")
    return (m[0, 0] >= 0.5).numpy()


def prepare_image(image: np.ndarray, windowed: bool, config):
    """One dataset image -> ((1, 3, size, size) network input, its crop box), per the checkpoint."""
    from lsms_core.checkpoint import network_window
    from lsms_core.preprocess import prepare_slices

    x, boxes = prepare_slices(image, window=network_window(config), size=config.input_size,
                              mean=config.normalization["mean"], std=config.normalization["std"],
                              crop=getattr(config, "crop", "none"), windowed_uint8=windowed)
    return x, boxes[0]


class SliceLesions:
    """The lesion masks of each image of a dataset (every line sharing the image), loaded once, for ``hit``."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.by_image: dict[str, list] = {}
        for s in dataset.samples:
            self.by_image.setdefault(s.image, []).append(s)
        self._cache: dict[str, list] = {}

    def others(self, sample) -> list[np.ndarray]:
        if sample.image not in self._cache:
            masks = []
            for o in self.by_image.get(sample.image, []):
                try:
                    masks.append((o.id, self.dataset.load_pair(o)[1] != 0))
                except Exception:  # an unreadable sibling costs its comparison, not the sample
                    continue
            self._cache = {sample.image: masks}  # lines of one image are adjacent: keep one image
        return [m for oid, m in self._cache[sample.image] if oid != sample.id]


def is_hit(pred: np.ndarray, target: np.ndarray, others: list[np.ndarray]) -> bool:
    """The prediction overlaps the referred lesion, and more than it overlaps any other lesion of the slice."""
    overlap = int(np.count_nonzero(pred & target))
    if overlap == 0:
        return False
    return all(int(np.count_nonzero(pred & (o & ~target))) < overlap for o in others)


def evaluate(model, config, dataset, text_encoder, *, split: str = "test", text_fraction: float | None = None,
             threshold: float | None = None, batch_size: int = 8, device: str = "cpu",
             overlays: str | Path | None = None, worst: int = 16,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Score ``model`` on every (line, expression) of ``split``; see the module's docstring."""
    import torch

    from lsms_core.preprocess import crop_target, paste_logits

    # "all": every line, for a freshly generated held-out dataset whose every case is unseen.
    samples = list(dataset.samples) if split == "all" else dataset.split(split)
    if not samples:
        raise LSMSError(f"{dataset.root} split {split!r}", "holds no samples to evaluate")
    if text_fraction is not None and not 0.0 <= text_fraction <= 1.0:
        raise LSMSError("text fraction", f"must be between 0 and 1, got {text_fraction}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LSMSError("batch size", f"must be a whole number of at least 1, got {batch_size!r}")
    threshold = check_threshold(config.threshold if threshold is None else threshold, "threshold", LSMSError)
    logit_threshold = math.log(threshold / (1.0 - threshold))
    counts = slice_lesion_counts(dataset.samples)
    pairs = [(s, i, text, tag) for s in samples for i, text, tag in select_expressions(s, text_fraction)]
    native_acc, model_acc = MetricAccumulator(), MetricAccumulator()
    lesions = SliceLesions(dataset)
    hits: dict[str, list[bool]] = {}
    worst_heap: list = []
    model.eval()
    use_amp = str(device).startswith("cuda")
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start: start + batch_size]
        loaded = [dataset.load_pair(s) for s, _, _, _ in chunk]
        prepared = [prepare_image(img, windowed, config) for img, _, windowed in loaded]
        x = torch.cat([p[0] for p in prepared]).to(device)
        texts = [text for _, _, text, _ in chunk]
        feats, tmask = encode_texts(text_encoder, texts)
        with torch.inference_mode(), torch.autocast("cuda", enabled=use_amp):
            logits = model(x, feats.to(device), tmask.to(device))
        fg = model.foreground_logit(logits.float())
        for k, ((sample, i, _, tag), (image, mask, windowed)) in enumerate(zip(chunk, loaded, strict=True)):
            groups = sample_groups(sample, mask, sample.expressions[i], counts, tag)
            sid = f"{sample.id}#{i}"
            box = prepared[k][1]
            small = (fg[k] > logit_threshold).cpu().numpy()
            model_acc.add(small, crop_target(mask, box, config.input_size), groups, sid)
            native_logit = paste_logits(fg[k][None, None], [box], mask.shape)[0, 0]
            pred = (native_logit > logit_threshold).cpu().numpy()
            score = native_acc.add(pred, mask, groups, sid)
            hit = is_hit(pred, mask != 0, lesions.others(sample))
            for key in ("all", *(f"{g}={v}" for g, v in groups.items())):
                hits.setdefault(key, []).append(hit)
            if overlays is not None and worst > 0:
                item = (-score.dice, start + k, (sid, image, windowed, mask, pred, texts[k] or "(no words)",
                                                 score))
                if len(worst_heap) < worst:
                    heapq.heappush(worst_heap, item)
                elif item[0] > worst_heap[0][0]:
                    heapq.heapreplace(worst_heap, item)
        if progress is not None:
            progress(min(start + batch_size, len(pairs)), len(pairs))
    result = native_acc.summary()
    result["hit"] = float(np.mean(hits["all"])) if hits else float("nan")
    for key, values in hits.items():
        if key != "all":
            group, value = key.split("=", 1)
            result.setdefault("groups", {}).setdefault(group, {}).setdefault(value, {})["hit"] = float(np.mean(values))
    result["resolution"] = "native"
    result["model_resolution"] = model_acc.summary()
    result.update({"split": split, "text_fraction": text_fraction, "threshold": threshold,
                   "input_size": config.input_size, "lines": len(samples)})
    if overlays is not None and worst_heap:
        ranked = sorted(worst_heap, key=lambda t: (-t[0], t[1]))  # lowest Dice first
        result["overlays"] = write_overlays(Path(overlays), [t[2] for t in ranked], config)
    return result


def write_overlays(folder: Path, items, config) -> list[str]:
    """PNG per case, worst first: CT in the model's window, ground truth outlined green, prediction red."""
    from PIL import Image, ImageDraw
    from skimage.segmentation import find_boundaries

    from lsms_core.preprocess import window_to_unit

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for rank, (sid, image, windowed, mask, pred, text, score) in enumerate(items, start=1):
        grey = image.astype(np.float32) / 255.0 if windowed else window_to_unit(image, tuple(config.window))
        rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2).astype(np.float32)
        p = pred.astype(bool)
        rgb[p] = 0.55 * rgb[p] + 0.45 * np.array([255, 40, 40])
        rgb[find_boundaries(mask.astype(bool), mode="inner")] = (40, 255, 40)
        img = Image.fromarray(rgb.astype(np.uint8))
        if max(img.size) < 384:
            factor = int(math.ceil(384 / max(img.size)))
            img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
        canvas = Image.new("RGB", (img.width, img.height + 36), (0, 0, 0))
        canvas.paste(img, (0, 36))
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 2), f"{sid}  Dice {score.dice:.3f}  IoU {score.iou:.3f}", fill=(255, 255, 255))
        draw.text((4, 18), text[:90], fill=(255, 255, 0))
        name = f"{rank:03d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', sid)}.png"
        tmp = folder / f".{name}.tmp"
        canvas.save(tmp, format="PNG")
        tmp.replace(folder / name)
        written.append(str(folder / name))
    return written


__all__ = ["evaluate", "keep_words", "is_comparative", "size_group", "score_pair", "PairScore"]

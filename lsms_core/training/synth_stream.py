"""Fresh synthetic training data every epoch, in batches that teach the words to matter.

A fixed data set is memorised within two or three CPU epochs (the demo weights' record). Here every epoch
draws ``cases`` new cases from the generator, seeded by (seed, epoch, case), so a resumed run replays what
an uninterrupted one would have seen. Each slice of a case becomes a *group* of samples that share the
image and are batched together:

- up to ``lesions_per_slice`` of its visible lesions, each with one of its expressions (full or partial):
  two expressions of one slice naming different lesions are each other's hard negatives;
- now and then a sample whose words match no lesion on the slice, with an empty target: words of another
  density, segment or calcification than any lesion there has, lesion words about another organ, or
  nonsense; lesion-free liver slices get a liver-lesion expression. So unmatched or nonsense words learn
  to return nothing;
- now and then a sample with no words at all, whose target is every visible lesion (what "segment the
  lesions" means).

No image is flipped: left and right are words the network must learn (columns run patient right -> left).
Every sample also carries the liver and all-lesion maps (the network's text-free heads) and the lesion
label map the per-lesion contrast pools over.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

#: lesion words about organs the generator never puts a lesion in: the target is empty
OTHER_ORGAN_EXPRESSIONS = (
    "the cyst in the left kidney", "the hypodense lesion in the right kidney", "the splenic lesion",
    "the nodule in the right lung", "the mass in the pancreatic head", "the gallbladder stone",
    "the lesion in the spleen", "the renal cyst", "the adrenal nodule", "the lytic lesion in the vertebra",
    "the hyperdense lesion in the left kidney", "the nodule in the left lung base",
    "the aortic aneurysm", "the enlarged lymph node", "the bowel wall thickening",
)
#: words that are not about anything on a CT: the target is empty
_SALAD = ("weather", "window", "table", "blue", "running", "music", "garden", "quickly", "paper", "river",
          "yesterday", "coffee", "engine", "happy", "mountain", "letter", "green", "seven", "door", "phone",
          "tomorrow", "please", "book", "train", "cloud", "apple", "dance", "chair", "forest", "silver")


def nonsense(rng: np.random.Generator) -> str:
    """Gibberish ("asdkjh qwpoeiru") or a word salad ("garden seven quickly")."""
    if rng.uniform() < 0.5:
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = ["".join(rng.choice(list(letters), size=int(rng.integers(3, 9)))) for _ in range(rng.integers(1, 4))]
        return " ".join(words)
    return " ".join(str(w) for w in rng.choice(_SALAD, size=int(rng.integers(1, 5)), replace=False))


def contradicting_expression(facts: list, rng: np.random.Generator) -> str | None:
    """Words naming a lesion like one on the slice but with a density, segment or calcification that no
    lesion on the slice has (so no lesion there fits them), or None when no such words exist."""
    from lsms_core.data.expressions import render
    from lsms_core.data.facts import LOBE_OF_SEGMENT, SEGMENT_NAMES

    if not facts:
        return None
    base = facts[int(rng.integers(len(facts)))]
    options = []
    densities = {f.density for f in facts}
    for d in ("hypo", "hyper"):
        if d not in densities and None not in densities:
            options.append(("density", replace(base, density=d)))
    segments = {f.segment for f in facts}
    if None not in segments:
        free = [s for s in SEGMENT_NAMES if s not in segments]
        if free:
            seg = str(rng.choice(free))
            options.append(("location", replace(base, segment=seg, lobe=LOBE_OF_SEGMENT[seg],
                                                segment_estimated=False)))
    if not any(f.calcified for f in facts):
        options.append(("calcification", replace(base, calcified=True)))
    if not options:
        return None
    attr, fake = options[int(rng.integers(len(options)))]
    attrs = {attr}
    for extra in ("size", "density", "location"):
        usable = (extra != "density" or fake.density is not None) and (extra != "location" or fake.segment)
        if extra != attr and usable and rng.uniform() < 0.3:
            attrs.add(extra)
    return render(fake, attrs, None, 1, rng)


#: samples per rendered slice of the default generator (see ``SynthEpochs.approx_batches``)
SAMPLES_PER_SLICE = 1.55


@dataclass
class SliceGroup:
    """Samples of one slice: the network input once, and per sample (text, target, target label)."""

    image: np.ndarray  # (3, S, S) float32, pre-processed
    aux: np.ndarray  # (2, S, S) uint8: liver, every visible lesion
    labels: np.ndarray  # (S, S) uint8: visible lesion k (1-based) of the slice
    samples: list  # (text, target (S, S) uint8, target label (0 = none), kind)


def _mix(*values) -> int:
    return zlib.crc32(",".join(str(v) for v in values).encode())


def patch_window(rng: np.random.Generator, size: int, patch: int, lesions: np.ndarray, liver: np.ndarray
                 ) -> tuple[slice, slice]:
    """A ``patch`` x ``patch`` window of a ``size`` image: around a lesion pixel half the time (when the
    slice has one), else around a liver pixel, shifted by up to a quarter patch, kept inside the image."""
    if patch >= size:
        return slice(0, size), slice(0, size)
    pool = lesions if lesions.any() and rng.uniform() < 0.5 else liver
    if pool.any():
        rows, cols = np.nonzero(pool)
        i = int(rng.integers(len(rows)))
        centre = np.array([rows[i], cols[i]], float) + rng.uniform(-0.25, 0.25, 2) * patch
    else:
        centre = np.array([size / 2, size / 2])
    r0, c0 = (np.clip(np.round(centre - patch / 2), 0, size - patch)).astype(int)
    return slice(int(r0), int(r0) + patch), slice(int(c0), int(c0) + patch)


def vary_appearance(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The slice as another scanner and reconstruction might show it: a Gaussian blur (sigma 0-1 px, a
    softer kernel), added noise that is spatially correlated as CT noise is (0-12 HU, grain 0.7-1.5 px), and
    a gain of 0.92-1.08 about 60 HU with an offset of -10..10 HU (calibration and contrast timing).

    Contrasts between tissues keep their sign and nearly their size, so the words written from the rendered
    slice (hypo/hyperdense, calcified above 250 HU) stay true."""
    from scipy import ndimage

    out = hu.astype(np.float32)
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.2:
        out = ndimage.gaussian_filter(out, sigma)
    grain = rng.uniform(0.7, 1.5)
    noise = ndimage.gaussian_filter(rng.standard_normal(out.shape).astype(np.float32), grain)
    noise *= rng.uniform(0.0, 12.0) / max(float(noise.std()), 1e-6)
    return (out + noise - 60.0) * rng.uniform(0.92, 1.08) + 60.0 + rng.uniform(-10.0, 10.0)


def case_groups(case, rng: np.random.Generator, *, input_size: int, window, mean, std, crop: str,
                lesions_per_slice: int = 2, unmatched_fraction: float = 0.25, empty_text_fraction: float = 0.05,
                lesion_free_fraction: float = 0.3, other_case_expressions: list[str] | None = None,
                patch: int = 0, appearance: float = 0.0) -> list[SliceGroup]:
    """Every usable slice of one synthetic case as a :class:`SliceGroup`.

    ``patch`` > 0 cuts each slice's network input (and its targets) to a window of that many pixels at the
    same pixel size, around a lesion or the liver (see ``patch_window``): a 160 px window of a 256 px input
    costs 0.39 of the whole image per step, so the CPU's hours give 2.5 times the optimiser steps. The
    network is fully convolutional apart from its global decoder terms; it still runs on the whole input.
    ``appearance``: the share of slices passed through :func:`vary_appearance` (after their facts and words
    are taken from the rendered slice).
    """
    from lsms_core.data.synth_dataset import case_samples
    from lsms_core.preprocess import crop_target, prepare_slices

    per_slice: dict[int, list[dict]] = {}
    for s in case_samples(case, rng):
        per_slice.setdefault(s["slice"], []).append(s)
    liver = case.liver
    groups: list[SliceGroup] = []
    # its own generator: varying the look never changes which samples, words and windows a slice gets
    look = np.random.default_rng([int(case.seed), 11])
    for k in range(case.ct.shape[0]):
        found = per_slice.get(k, [])
        if not found and (not liver[k].any() or rng.uniform() >= lesion_free_fraction):
            continue
        hu = vary_appearance(case.ct[k], look) if appearance > 0 and look.uniform() < appearance else case.ct[k]
        x, boxes = prepare_slices(hu, window=window, size=input_size, mean=mean, std=std, crop=crop)
        box = boxes[0]
        masks = [crop_target(s["mask"], box, input_size) for s in found]
        labels = np.zeros((input_size, input_size), np.uint8)
        for i, m in enumerate(masks, start=1):
            labels[m & (labels == 0)] = i
        union = labels > 0
        aux = np.stack([crop_target(liver[k], box, input_size), union]).astype(np.uint8)
        image = x[0].numpy()
        if patch:
            win = patch_window(rng, input_size, patch, union, aux[0] > 0)
            image, aux, labels, union = image[:, win[0], win[1]], aux[:, win[0], win[1]], labels[win], union[win]
            masks = [m[win] for m in masks]
        side = labels.shape[0]
        empty = np.zeros((side, side), np.uint8)
        samples = []
        order = rng.permutation(len(found))[:lesions_per_slice]
        for i in order:
            texts = found[i]["expressions"]
            text, frac = texts[int(rng.integers(len(texts)))]
            samples.append((text, masks[i].astype(np.uint8), int(i) + 1, f"lesion:{frac:g}"))
        if not found:
            pool = other_case_expressions or []
            text = pool[int(rng.integers(len(pool)))] if pool else "the hypodense lesion in the liver"
            samples.append((text, empty, 0, "unmatched:lesion-free"))
        elif rng.uniform() < unmatched_fraction:
            u = rng.uniform()
            text, kind = None, ""
            if u < 0.6:
                text, kind = contradicting_expression([s["facts"] for s in found], rng), "unmatched:contradicting"
            if text is None and u < 0.8:
                text, kind = str(rng.choice(OTHER_ORGAN_EXPRESSIONS)), "unmatched:other-organ"
            if text is None:
                text, kind = nonsense(rng), "unmatched:nonsense"
            samples.append((text, empty, 0, kind))
        if found and rng.uniform() < empty_text_fraction:
            samples.append(("", union.astype(np.uint8), 0, "no-words"))
        groups.append(SliceGroup(np.ascontiguousarray(image), np.ascontiguousarray(aux),
                                 np.ascontiguousarray(labels), samples))
    return groups


class SynthEpochs:
    """An iterable of training batches for one epoch; ``set_epoch`` chooses which epoch's cases.

    Each DataLoader worker renders the cases whose index modulo the worker count is its own, shuffles the
    slice groups of a few cases together, and packs groups into batches of at least ``batch_size``
    samples (groups are never split, so hard negatives stay together).
    """

    def __init__(self, *, cases: int, seed: int, size: int, slices: int, input_size: int, window, mean, std,
                 crop: str, batch_size: int, lesions_per_slice: int = 2, unmatched_fraction: float = 0.25,
                 empty_text_fraction: float = 0.05, shuffle_cases: int = 4, patch: int = 0,
                 appearance: float = 0.0):
        from lsms_core.preprocess import window_arg

        self.cases = cases
        self.seed = seed
        self.size = size
        self.slices = slices
        self.kw = dict(input_size=input_size, window=window_arg(window), mean=mean, std=std,
                       crop=crop, lesions_per_slice=lesions_per_slice, unmatched_fraction=unmatched_fraction,
                       empty_text_fraction=empty_text_fraction, patch=patch, appearance=appearance)
        self.batch_size = batch_size
        self.shuffle_cases = shuffle_cases
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def case(self, index: int):
        from lsms_core.data.synth import synth_case

        case_seed = _mix(self.seed, self.epoch, index)
        return synth_case(case_seed, size=self.size, n_slices=self.slices, case_id=f"e{self.epoch}c{index}")

    def __iter__(self):
        import torch

        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = list(range(worker, self.cases, workers))
        rng = np.random.default_rng(_mix(self.seed, self.epoch, "worker", worker, workers))
        recent: list[str] = []
        pending: list[SliceGroup] = []
        batch: list[SliceGroup] = []
        for n, index in enumerate(mine):
            case = self.case(index)
            groups = case_groups(case, np.random.default_rng(_mix(self.seed, self.epoch, index, "groups")),
                                 other_case_expressions=recent, **self.kw)
            recent = [t for g in groups for t, _, label, _ in g.samples if label][:32] or recent
            pending.extend(groups)
            if len(pending) and ((n + 1) % self.shuffle_cases == 0 or n == len(mine) - 1):
                for i in rng.permutation(len(pending)):
                    batch.append(pending[i])
                    if sum(len(g.samples) for g in batch) >= self.batch_size:
                        yield collate(batch)
                        batch = []
                pending = []
        if batch:
            yield collate(batch)

    def approx_batches(self) -> int:
        """Batches per epoch, estimated without rendering: the learning-rate schedule's length comes from it.

        About 1.55 samples per rendered slice (lesions, unmatched words, wordless samples, lesion-free
        slices). The earlier constant (5.5 samples per case whatever its slices) was 40 % short at 6 slices
        per case, so a 12-epoch run's learning rate reached 0 during epoch 8 (measured: 231 batches per
        200 cases, estimated 137)."""
        return max(1, int(round(self.cases * self.slices * SAMPLES_PER_SLICE / self.batch_size)))


def collate(groups: list[SliceGroup]) -> dict:
    """Slice groups -> one batch of tensors (a sample per row; the image repeated for a group's samples)."""
    import torch

    xs, aux, labels, targets, target_labels, texts, kinds = [], [], [], [], [], [], []
    for g in groups:
        for text, target, label, kind in g.samples:
            xs.append(g.image)
            aux.append(g.aux)
            labels.append(g.labels)
            targets.append(target)
            target_labels.append(label)
            texts.append(text)
            kinds.append(kind)
    return {
        "x": torch.from_numpy(np.stack(xs)),
        "target": torch.from_numpy(np.stack(targets)).long(),
        "aux": torch.from_numpy(np.stack(aux)),
        "aux_valid": torch.ones(len(xs), dtype=torch.bool),
        "labels": torch.from_numpy(np.stack(labels)),
        "target_label": torch.tensor(target_labels, dtype=torch.long),
        "texts": texts,
        "kinds": kinds,
    }

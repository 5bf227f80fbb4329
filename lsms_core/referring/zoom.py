"""A second, closer look at the liver: the network again on a square around the liver it found, merged
with the first look.

The checkpoint's pre-processing shows the network the whole body (``crop: body``, 256 px): a 6 mm
metastasis then covers one or two cells of the stride-4 output, and the lesion map misses it. The liver
map of the first pass says where to look; the square around it, resized to the same input size, shows
the liver 1.3-1.7 times larger (more where the liver's section is small, up to ``MAX_GAIN``). Lesion and
referring maps are merged by their maximum (a lesion either look sees is a candidate; the masks are the
union of both looks' masks, so thresholding never depends on how probabilities were stored); the liver
map stays the first look's (it needs the whole body around it).

Measured with the demo weights before adoption, on a generated tuning set (seed 5151, 468 expressions;
never the test set), ``lsms eval --split all --refine off`` with ``--zoom off`` and ``on``: hit 0.727 ->
0.810, on slices with two or more lesions 0.648 -> 0.767, lesions under 20 mm 0.378 -> 0.622, mDice
0.533 -> 0.586; "not found" 21 -> 9. Offline, with the candidates rebuilt from kept maps, the named lesion
was among the candidates for 82.1 % of expressions with one look and 91.0 % with both (of the lesions the
first look missed, 19 of 26 peaked above 0.5 in the second), and 3D-IRCADb 1.7's tumour slices went from
hit 0.913 to 0.921. The cost is a second forward pass over the slices that show liver.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from lsms_core.progress import relay

#: a liver section smaller than this (mm2) is a tip of the organ: no second look
MIN_LIVER_MM2 = 100.0
#: the square reaches this share of the liver's extent beyond it on each side
MARGIN = 0.05
#: below this gain over the first look the second one shows nothing new
MIN_GAIN = 1.15
#: beyond this gain lesions would be larger than any the network was trained on
MAX_GAIN = 3.0
LIVER_THRESHOLD = 0.5
#: slices per pass of the second look (each merged before the next is run)
CHUNK_SLICES = 16
#: a candidate region where the first look's lesion probability never reaches this is the second look's alone
FIRST_LOOK_SUPPORT = 0.05


def liver_boxes(slices_hu: np.ndarray, liver_probs: np.ndarray, spacing_yx: tuple[float, float],
                crop: str) -> dict[int, tuple[int, int, int]]:
    """Per slice that shows enough liver, the square (row0, col0, side) of the second look."""
    from lsms_core.preprocess import crop_box

    min_px = MIN_LIVER_MM2 / (spacing_yx[0] * spacing_yx[1])
    out: dict[int, tuple[int, int, int]] = {}
    for k in range(len(liver_probs)):
        liver = liver_probs[k] > LIVER_THRESHOLD
        if liver.sum() < min_px:
            continue
        rows = np.flatnonzero(liver.any(axis=1))
        cols = np.flatnonzero(liver.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        first = crop_box(slices_hu[k], crop)
        first_side = first.side or max(slices_hu[k].shape)
        side = int(round(max(r1 - r0, c1 - c0) * (1.0 + 2 * MARGIN))) + 8
        side = max(side, int(np.ceil(first_side / MAX_GAIN)))
        if first_side / side < MIN_GAIN:
            continue
        out[k] = (int(round((r0 + r1 - side) / 2)), int(round((c0 + c1 - side) / 2)), side)
    return out


def iter_second_look(segmenter, slices_hu: np.ndarray, expression: str, first, spacing_yx: tuple[float, float], *,
                     batch_size: int | None = None, threshold: float | None = None,
                     cancel: Callable[[], bool] | None = None, no_words_ok: bool = False,
                     ) -> Generator[tuple[int, int], None, tuple[object, int, np.ndarray | None]]:
    """Yields (slices done, slices to look at again); returns (the merged Prediction, slices looked at, the
    first look's support: where its lesion probability reached ``FIRST_LOOK_SUPPORT``, packed like
    ``Prediction.mask_bits``; None when there was no second look).

    ``first``: the first look's Prediction over ``slices_hu`` (N, H, W); it needs the liver map. The
    second look is merged into ``first`` in place: a volume's maps are hundreds of megabytes."""
    if first.liver_probs is None:
        return first, 0, None
    boxes = liver_boxes(slices_hu, first.liver_probs, spacing_yx, segmenter.config.crop)
    if not boxes:
        return first, 0, None
    support = np.packbits(first.lesion_probs >= FIRST_LOOK_SUPPORT, axis=-1)
    idx = np.array(sorted(boxes))
    # In chunks merged as they come: the second look over a whole volume never holds its own full-volume
    # maps beside the first look's.
    for start in range(0, len(idx), CHUNK_SLICES):
        part = idx[start:start + CHUNK_SLICES]
        second = yield from relay(
            segmenter.iter_predict(slices_hu[part], expression, batch_size=batch_size, threshold=threshold,
                                   cancel=cancel, no_words_ok=no_words_ok, crop_boxes=[boxes[k] for k in part]),
            lambda done, _, offset=start: (offset + done, len(idx)))
        first.probs[part] = np.maximum(first.probs[part], second.probs)
        first.mask_bits[part] |= second.mask_bits
        first.lesion_probs[part] = np.maximum(first.lesion_probs[part], second.lesion_probs)
        first.seconds += second.seconds
        first.notes.extend(n for n in second.notes if n not in first.notes)
    first._masks = None  # unpacked before the merge: stale
    return first, len(idx), support


def first_look_supported(candidates: list, support: np.ndarray, width: int) -> tuple[list, int]:
    """The candidates whose region the first look saw at all (its lesion probability reached
    ``FIRST_LOOK_SUPPORT`` somewhere in it), renumbered 1..n in their order, and how many were left out.

    The second look also finds regions the first one gave no weight at all; where a slice held one lesion,
    they competed with it. Measured with the demo weights on two generated tuning sets (never the test
    set), no refiner: hit 0.799 -> 0.810 (seed 5151; two or more lesions 0.741 -> 0.763, one lesion 0.879
    -> 0.874) and 0.769 -> 0.785 (seed 9090; 0.583 -> 0.598, 0.850 -> 0.866); 2.7-3.1 -> 2.3 candidates
    per expression. Thresholds from 0.02 to 0.5 were all within a point of 0.05."""
    kept = []
    for c in candidates:
        z, rows, cols = c.region
        bits = np.unpackbits(support[z, rows], axis=-1, count=width)[..., cols].view(bool)
        if (bits & c.crop).any():
            kept.append(c)
    for i, c in enumerate(kept):
        c.number = i + 1
    return kept, len(candidates) - len(kept)

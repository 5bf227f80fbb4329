"""Refining a referred region slice by slice, and carrying it to the neighbouring slices.

Why the rules below (README, "Two-stage referring", has the numbers, measured on 3D-IRCADb 1.7 with
degraded prompts): LSMS at 160 px draws on a 40x40 grid, so its region is a blob around the lesion's core,
too small or off-centre, and LiteMedSAM draws only what its box holds. A box from the referring map at a
lower threshold (the region grown through ``probs > grow_threshold``) holds the lesion where the raw
region held part of it (0.76 -> 0.96 Dice with a one-sided map). Re-boxing from LiteMedSAM's own mask for
more passes (``BoxRule.passes``; each costs one decoder run on the cached embedding) is kept as an option:
it gained nothing measurable over the grown box.

Propagation: the referring network may miss the lesion's first and last slices, where it is small. From
each end of the slices LiteMedSAM drew, the box of the last drawn mask prompts the next slice; it continues
while the new mask is at least ``min_area_mm2`` and ``min_shrink`` of the previous one, overlaps it
(``min_overlap`` of its area) and keeps the lesion's density (mean HU within ``max_hu_drift`` of the
referred slices'; measured on 3D-IRCADb 1.7: past the tumour's poles LiteMedSAM keeps drawing liver in the
box, 40 to 110 HU denser than the tumour, with the same overlap and size), and never more than
``max_propagation`` slices each way, which keeps a volume run's cost at (region slices + 2 x
max_propagation) encoder runs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from lsms_core.errors import Cancelled
from lsms_core.refiner.boxes import Box, box_iou, component_in_box, grown_region, mask_box, pad_box


@dataclass(frozen=True)
class BoxRule:
    """How a slice's box is chosen. The defaults are the measured best (README)."""

    grow_threshold: float | None = 0.2  # None: the raw region's box only
    # 1: decode once. More: re-box from the refined mask until stable. Measured: no gain once the box is
    # grown (within 0.001 Dice), and from a raw box it lost Dice (a mask cut by a short box re-boxes
    # shorter still), so one pass is the default.
    passes: int = 1
    stable_iou: float = 0.9  # boxes this similar end the passes
    margin_mm: float = 5.0
    rebox_margin_mm: float = 2.0  # around LiteMedSAM's own mask, which follows the edge already
    # A mask that runs into a side of its box was cut by it: that side moves out by this much (mm) for the
    # next pass. Without it re-boxing can only shrink the box, never find the part a short box left out.
    expand_mm: float = 10.0
    # A refined mask smaller than this share of the raw region means LiteMedSAM did not see the lesion the
    # referring network was confident about (a faint pole, an iso-dense part): that slice keeps the raw
    # region. 0 turns the fallback off.
    keep_raw_below: float = 0.5


@dataclass
class RefinedRegion:
    mask: np.ndarray  # bool (N, H, W)
    boxes: dict[int, Box] = field(default_factory=dict)  # run slice -> the box of the last pass
    notes: list[str] = field(default_factory=list)
    passes: dict[int, int] = field(default_factory=dict)  # run slice -> decoder runs
    propagated: list[int] = field(default_factory=list)  # run slices added beyond the raw region


def _margin_px(mm: float, spacing_yx: tuple[float, float]) -> tuple[float, float]:
    return mm / max(spacing_yx[0], 1e-6), mm / max(spacing_yx[1], 1e-6)


def refine_slice(refiner, slice_hu: np.ndarray, raw: np.ndarray, probs: np.ndarray | None,
                 spacing_yx: tuple[float, float], rule: BoxRule = BoxRule(),
                 ) -> tuple[np.ndarray, Box | None, int, list[np.ndarray]]:
    """(mask, last box, decoder runs, the mask of every pass, then the raw region when it was kept) for
    one slice; an empty ``raw`` gives an empty mask and no box."""
    shape = raw.shape
    seed = raw
    if rule.grow_threshold is not None and probs is not None:
        seed = grown_region(raw, probs, rule.grow_threshold)
    tight = mask_box(seed)
    if tight is None:
        return np.zeros(shape, bool), None, 0, []
    box = pad_box(tight, _margin_px(rule.margin_mm, spacing_yx), shape)
    history: list[np.ndarray] = []
    mask = np.zeros(shape, bool)
    for _ in range(max(1, rule.passes)):
        mask = component_in_box(refiner.segment_box(slice_hu, box), box)
        history.append(mask)
        tight = mask_box(mask)
        if tight is None:
            break
        new = rebox(mask, tight, box, spacing_yx, rule)
        if box_iou(new, box) >= rule.stable_iou:
            break
        if len(history) < rule.passes:
            box = new
    if rule.keep_raw_below > 0 and mask.sum() < rule.keep_raw_below * raw.sum():
        return raw.copy(), box, len(history), history + [raw.copy()]
    return mask, box, len(history), history


def rebox(mask: np.ndarray, tight: Box, box: Box, spacing_yx: tuple[float, float], rule: BoxRule) -> Box:
    """The next pass's box: the mask's own box with a small margin, pushed out on every side where the mask
    touches the box it was drawn from (and the image goes on)."""
    my, mx = _margin_px(rule.rebox_margin_mm, spacing_yx)
    ey, ex = _margin_px(rule.expand_mm, spacing_yx)
    h, w = mask.shape
    x0, y0, x1, y1 = pad_box(tight, (my, mx), (h, w))
    if rule.expand_mm > 0:
        if tight[0] <= box[0] + 1:
            x0 = max(0, int(round(box[0] - ex)))
        if tight[1] <= box[1] + 1:
            y0 = max(0, int(round(box[1] - ey)))
        if tight[2] >= box[2] - 1:
            x1 = min(w - 1, int(round(box[2] + ex)))
        if tight[3] >= box[3] - 1:
            y1 = min(h - 1, int(round(box[3] + ey)))
    return x0, y0, x1, y1


def _mean_hu(slices: np.ndarray, masks: np.ndarray, ks: list[int], offset: int | None = None) -> float:
    """Mean HU under ``masks[k]`` over ``ks`` (``offset``: the slice of ``slices`` a single mask lies on)."""
    values = [slices[k if offset is None else offset][masks[k]] for k in ks]
    values = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    return float(values.mean()) if values.size else float("nan")


def _check(slices: np.ndarray, raw: np.ndarray, probs: np.ndarray) -> None:
    if slices.ndim != 3 or raw.shape != slices.shape or probs.shape != slices.shape:
        raise ValueError(f"refine_region: slices {slices.shape}, raw {raw.shape} and probs {probs.shape} must "
                         "be the same (N, H, W)")


def refine_region(refiner, slices_hu: np.ndarray, raw: np.ndarray, probs: np.ndarray,
                  spacing_zyx: tuple[float, float, float], cancel: Callable[[], bool] | None = None, *,
                  rule: BoxRule | None = None, max_propagation: int = 8, min_area_mm2: float = 4.0,
                  min_overlap: float = 0.3, min_shrink: float = 0.2,
                  max_hu_drift: float = 40.0) -> Generator[tuple[int, int], None, RefinedRegion]:
    slices = np.asarray(slices_hu)
    if slices.ndim == 2:
        slices, raw, probs = slices[None], np.asarray(raw)[None], np.asarray(probs)[None]
    # probs stay as given (the engine's are float16): a float32 copy of a 512x512x300 run is 300 MB; each
    # slice is converted when it is refined
    raw, probs = np.asarray(raw, bool), np.asarray(probs)
    _check(slices, raw, probs)
    rule = rule or BoxRule(margin_mm=refiner.box_margin_mm)
    spacing_yx = (float(spacing_zyx[1]), float(spacing_zyx[2]))
    pixel_mm2 = spacing_yx[0] * spacing_yx[1]
    n = len(slices)
    out = RefinedRegion(np.zeros(raw.shape, bool))
    todo = [int(k) for k in np.flatnonzero(raw.reshape(n, -1).any(axis=1))]
    planned = len(todo)
    done = 0

    def check_cancel() -> None:
        if cancel is not None and cancel():
            raise Cancelled("refinement", f"cancelled after {done} of {planned} slice(s)")

    kept = 0
    drawn: list[int] = []  # slices LiteMedSAM drew itself: the only ones propagation starts from
    for k in todo:
        check_cancel()
        mask, box, runs, history = refine_slice(refiner, slices[k], raw[k], np.asarray(probs[k], np.float32),
                                                spacing_yx, rule)
        out.mask[k] = mask
        if box is not None:
            out.boxes[k] = box
        out.passes[k] = runs
        kept += len(history) > runs
        if mask.any() and len(history) == runs:
            drawn.append(k)
        done += 1
        yield done, planned
    if kept:
        out.notes.append(f"refinement: LiteMedSAM drew less than {rule.keep_raw_below:.0%} of the referred region "
                         f"on {kept} of {len(todo)} slice(s); those keep the region as LSMS drew it")

    if drawn and max_propagation > 0:
        seed_hu = _mean_hu(slices, out.mask, drawn)
        for step, end in ((-1, drawn[0]), (1, drawn[-1])):
            k, prev = end + step, out.mask[end]
            added = 0
            while 0 <= k < n and added < max_propagation and not raw[k].any() and not out.mask[k].any():
                check_cancel()
                planned += 1
                box = pad_box(mask_box(prev), _margin_px(rule.rebox_margin_mm, spacing_yx), prev.shape)
                mask = component_in_box(refiner.segment_box(slices[k], box), box)
                done += 1
                yield done, planned
                area = mask.sum() * pixel_mm2
                overlap = (mask & prev).sum() / max(mask.sum(), 1)
                if (area < min_area_mm2 or overlap < min_overlap or mask.sum() < min_shrink * prev.sum()
                        or abs(_mean_hu(slices, mask[None], [0], k) - seed_hu) > max_hu_drift):
                    break
                out.mask[k] = mask
                out.boxes[k] = box
                out.passes[k] = 1
                out.propagated.append(k)
                prev, k, added = mask, k + step, added + 1
    if out.propagated:
        out.notes.append(f"refinement: carried the lesion to {len(out.propagated)} neighbouring slice(s) the "
                         "referring network had left out")
    out.notes.append(f"refinement: {refiner.name} on {len(todo) + len(out.propagated)} slice(s), "
                     f"{sum(out.passes.values())} decoder run(s)")
    return out

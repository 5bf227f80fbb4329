"""From words and slices to the one lesion they mean: the pipeline ``lsms segment``, ``lsms eval`` and the
viewer share.

1. LSMS on every slice of the run (the engine's ``iter_predict``): the referring probability, and for
   networks with aux heads the liver and every-lesion maps; then, for those networks, a second, closer
   look at the liver the first one found (``zoom``), merged into the first (``zoom=False`` skips it).
2. Candidates (``candidates``): the lesion map's connected regions (3-D over a run of slices, 2-D for one
   slice), with their facts and the network's referring score.
3. Resolution (``resolve``): the candidate the words mean, or "ambiguous", or "not found" with the reason.
4. Refinement (optional): a box-prompted delineation network redraws the chosen candidate on each of its
   slices (``refiner.refine_region``), from the candidate's box.

``keep="all"`` skips 2-3 and keeps every region above the threshold (what ``--all-regions`` asks).
Progress runs over both stages; cancel is checked between batches and between refined slices.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from lsms_core.progress import ProgressFn, relay, run_to_end
from lsms_core.referring.candidates import FALLBACK_THRESHOLD, slice_candidates, volume_candidates
from lsms_core.referring.resolve import Resolution, resolve
from lsms_core.referring.zoom import first_look_supported, iter_second_look


@dataclass
class Referral:
    expression: str
    prediction: object  # lsms_core.engine.Prediction over the run's slices
    raw_mask: np.ndarray  # bool (N, H, W): what LSMS chose, before refinement
    mask: np.ndarray  # bool (N, H, W): the final mask (refined when a refiner ran; else raw_mask itself)
    resolution: Resolution | None  # None with keep="all"
    candidate_source: str = ""
    stages: list[str] = field(default_factory=list)
    boxes: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # run slice -> refiner box
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "all regions" if self.resolution is None else self.resolution.status

    @property
    def found(self) -> bool:
        return bool(self.mask.any())

    def summary(self) -> dict:
        out = {"expression": self.expression, "status": self.status, "stages": list(self.stages),
               "voxels": int(self.mask.sum()), "raw_voxels": int(self.raw_mask.sum()), "notes": list(self.notes),
               "candidate_source": self.candidate_source, "seconds": round(self.seconds, 3)}
        if self.resolution is not None:
            out["resolution"] = self.resolution.summary()
        if self.boxes:
            out["boxes"] = {str(k): list(v) for k, v in sorted(self.boxes.items())}
        return out


def iter_refer(segmenter, slices_hu: np.ndarray, expression: str, spacing_zyx: tuple[float, float, float], *,
               keep: str = "referred", refiner=None, batch_size: int | None = None, threshold: float | None = None,
               cancel: Callable[[], bool] | None = None, slice_offset: int = 0, no_words_ok: bool = False,
               zoom: bool = True) -> Generator[tuple[int, int], None, Referral]:
    """Yields (steps done, total steps) over both stages; returns the :class:`Referral`.

    ``slices_hu``: (N, H, W) consecutive axial slices (or one (H, W) slice); ``spacing_zyx``: slice, row and
    column spacing in mm; ``slice_offset``: the index of the first slice in its volume (reported only).
    """
    if keep not in ("referred", "all"):
        raise ValueError(f"keep must be 'referred' or 'all', got {keep!r}")
    start = time.perf_counter()
    slices = np.asarray(slices_hu)
    single = slices.ndim == 2
    if single:
        slices = slices[None]
    n = len(slices)
    refine_steps = n if refiner is not None and keep == "referred" else 0
    zoom_steps = n if zoom and keep == "referred" and segmenter.has_aux else 0
    total = n + zoom_steps + refine_steps
    pred = yield from relay(segmenter.iter_predict(slices, expression, batch_size=batch_size, threshold=threshold,
                                                   cancel=cancel, no_words_ok=no_words_ok),
                            lambda done, _: (done, total))
    stages = ["lsms"]
    support = None
    if zoom_steps:
        pred, looked, support = yield from relay(
            iter_second_look(segmenter, slices, expression, pred, spacing_zyx[1:], batch_size=batch_size,
                             threshold=threshold, cancel=cancel, no_words_ok=no_words_ok),
            lambda done, m: (n + (done * n) // max(1, m), total))  # the second look's steps scaled to its share
        if looked:
            stages.append("liver zoom")
        yield n + zoom_steps, total
    notes = list(pred.notes)
    if keep == "all":
        mask = pred.unpack_masks()
        return Referral(expression, pred, mask, mask.copy(), None, "", stages, notes=notes,
                        seconds=time.perf_counter() - start)
    probs, lesions, liver = pred.probs, pred.lesion_probs, pred.liver_probs
    if single or n == 1:
        cands, source = slice_candidates(slices[0], probs[0], None if lesions is None else lesions[0],
                                         None if liver is None else liver[0], spacing_zyx[1:],
                                         slice_index=slice_offset)
        for c in cands:
            c.as_run()
            c.slice_index = 0
            c.slices = (slice_offset, slice_offset)
    else:
        cands, source = volume_candidates(slices, probs, lesions, liver, spacing_zyx, slice_offset=slice_offset)
    if support is not None:
        cands, dropped = first_look_supported(cands, support, slices.shape[-1])
        if dropped:
            notes.append(f"{dropped} region(s) only the second look saw left out of the candidates")
    stages.append("candidates")
    resolution = resolve(expression, cands)
    raw = np.zeros(slices.shape, bool)
    chosen = resolution.chosen
    if chosen is not None:
        region = chosen.region
        raw[region] = chosen.crop
        if lesions is None:  # regions of the referring map at a lower threshold: keep what passes the threshold
            thr = segmenter.config.threshold if threshold is None else float(threshold)
            # Slice by slice within the region (never a full-volume temporary); above FALLBACK_THRESHOLD the
            # masks are the run's own, thresholded before the probabilities were rounded to float16.
            for z in range(region[0].start, region[0].stop):
                inside = (slice(z, z + 1), *region[1:])
                passes = (pred.unpack_masks(inside) if thr >= FALLBACK_THRESHOLD
                          else probs[inside] > FALLBACK_THRESHOLD)
                raw[inside] &= passes
    notes.append(resolution.note())
    mask = raw  # the final mask is the raw one unless a refiner redraws it (a new array then)
    boxes: dict[int, tuple[int, int, int, int]] = {}
    if refiner is not None and raw.any():
        refined = yield from relay(refiner.refine_region(slices, raw, probs, spacing_zyx, cancel=cancel),
                                   lambda done, _: (n + zoom_steps + done, total))
        mask, boxes = refined.mask, refined.boxes
        stages.append(refiner.name)
        notes.extend(refined.notes)
    yield total, total
    return Referral(expression, pred, raw, mask, resolution, source, stages, boxes, notes,
                    seconds=time.perf_counter() - start)


def refer(segmenter, slices_hu, expression: str, spacing_zyx, *, progress: ProgressFn | None = None,
          **kw) -> Referral:
    return run_to_end(iter_refer(segmenter, slices_hu, expression, spacing_zyx, **kw), progress)

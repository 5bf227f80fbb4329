"""The viewer's one path to the engine, without Qt: a lazily loaded Segmenter and the referred-mask pipeline.

``segment_slices`` is everything a run does between the words and the mask on the CT's grid: the network
on the chosen slices, keeping the one region the words refer to, and pasting the result onto the grid. It
is the same pipeline ``lsms segment`` runs; when the engine offers it as one function, this is the only
place that changes. The worker thread calls it; nothing here touches a widget.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import Cancelled

#: At most this many slices per batch in the viewer: progress and Cancel answer within one batch.
VIEWER_MAX_BATCH = 4


def refiner_installed() -> bool:
    """Whether the box-prompted refiner's weights are installed (what Refine "auto" needs)."""
    from lsms_core.refiner import available

    return available()


class EngineHost:
    """A lazily loaded Segmenter for one checkpoint and device (thread-safe, Qt-free).

    Loading the text encoder takes seconds, so it happens once, inside the worker thread, on the first run.
    """

    def __init__(self, checkpoint: str | Path, device: str = "auto", threshold: float | None = None,
                 threads: int | None = None, one_region: bool = True, refine: str = "auto",
                 precision: str = "auto"):
        self.checkpoint = checkpoint
        self.device_choice = device
        # "auto" (float32 on the CPU, autocast on GPUs) or "bfloat16" (Tools ▸ Device, on CPUs that have it)
        self.precision = precision
        self.threshold = threshold
        self.threads = threads
        # The words name one lesion: keep the connected region with the most probability (as
        # `lsms segment` does). False keeps every region above the threshold (Tools menu).
        self.one_region = one_region
        # The box-prompted refiner that redraws the chosen lesion: "auto" (when its weights are installed),
        # "on" (an error when they are not) or "off" (the network's own, coarser mask).
        self.refine = refine
        self._segmenter = None
        self._refiner = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._segmenter is not None

    @property
    def segmenter(self):
        """The Segmenter once loaded, else None (never loads)."""
        return self._segmenter

    def get(self):
        with self._lock:
            if self._segmenter is None:
                from lsms_core.engine import Segmenter

                self._segmenter = Segmenter.from_checkpoint(self.checkpoint, device=self.device_choice,
                                                            threads=self.threads, precision=self.precision)
            return self._segmenter

    def get_refiner(self, required: bool = False):
        """The refiner to run after the network, loaded on first use; None when switched off (or "auto"
        without its weights). ``required`` (the Box tool, Refine label): loaded whatever the switch says,
        and a missing refiner is an error that says so."""
        from lsms_core.refiner import Refiner, available

        if not required and (self.refine == "off" or (self.refine == "auto" and not available())):
            return None
        # The network's device, so both stages share the GPU (or the CPU); the Box tool needs no network.
        if self._segmenter is not None:
            device = self._segmenter.device
        else:
            from lsms_core.device import resolve_device

            device = resolve_device(self.device_choice)
        with self._lock:
            if self._refiner is None:
                self._refiner = Refiner.load("medsam-lite", device=device)
            return self._refiner

    def describe(self) -> str:
        """One line for the status bar."""
        if self._segmenter is None:
            return f"model {Path(str(self.checkpoint)).name} · device {self.device_choice} (loads on first run)"
        seg = self._segmenter
        trained = "" if seg.trained else " · untrained weights"
        precision = " · bfloat16" if seg.precision == "bfloat16" else ""
        return f"model {seg.name} · device {seg.device}{precision}{trained}"


@dataclass
class SegmentRequest:
    """One run: slices [start, stop) of ``volume`` with ``expression``; ``label_id`` = replace that label."""

    volume: object  # lsms_core.volume.Volume; compared by identity when the result comes back
    start: int
    stop: int
    expression: str
    label_id: int | None = None
    batch_size: int | None = None


@dataclass
class SegmentResult:
    request: SegmentRequest
    mask: np.ndarray  # bool, the whole volume's shape: the referred lesion on the requested slices
    seconds: float
    device: str
    checkpoint: str
    trained: bool
    notes: list[str] = field(default_factory=list)
    raw_mask: np.ndarray | None = None  # what the network and the resolver chose, before the refiner
    stages: list[str] = field(default_factory=list)  # e.g. ["lsms", "candidates", "medsam-lite"]
    # Every lesion the network saw in the run (lsms_core.referring.candidates.Candidate; their slices are
    # volume indices, their regions relative to request.start), which one the words chose, and the close
    # runners-up when ambiguous.
    candidates: list = field(default_factory=list)
    status: str = ""  # found | ambiguous | not found | all regions
    chosen: int | None = None
    alternatives: list[int] = field(default_factory=list)
    boxes: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # volume slice -> refiner box


def segment_slices(host: EngineHost, request: SegmentRequest,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> SegmentResult:
    """Run ``request`` to the end through the pipeline ``lsms segment`` runs (lsms_core.referring): the
    network on the chosen slices, its candidates, the one the words mean (when ``host.one_region``), the
    refiner's outline of it (when on), pasted onto the volume's grid. Raises ``Cancelled`` and the engine's
    errors."""
    from lsms_core.referring.pipeline import refer

    segmenter = host.get()
    refiner = host.get_refiner() if host.one_region else None
    if cancel is not None and cancel():
        raise Cancelled("segmentation", "cancelled before the first slice")
    volume = request.volume
    slices = volume.array[request.start:request.stop]
    sx, sy, sz = volume.spacing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = request.batch_size or min(segmenter.default_batch_size(), VIEWER_MAX_BATCH)
        referral = refer(segmenter, slices, request.expression, (sz, sy, sx), progress=progress,
                         keep="referred" if host.one_region else "all", refiner=refiner, batch_size=batch,
                         threshold=host.threshold, cancel=cancel, slice_offset=request.start)
    notes = list(referral.notes) + [str(w.message) for w in caught]
    mask = np.zeros(volume.shape, bool)
    mask[request.start:request.stop] = referral.mask
    raw = np.zeros(volume.shape, bool)
    raw[request.start:request.stop] = referral.raw_mask
    resolution = referral.resolution
    return SegmentResult(request=request, mask=mask, seconds=float(referral.seconds),
                         device=referral.prediction.device, checkpoint=segmenter.name, trained=segmenter.trained,
                         notes=notes, raw_mask=raw, stages=list(referral.stages),
                         candidates=list(resolution.candidates) if resolution is not None else [],
                         status=referral.status,
                         chosen=resolution.chosen.number if resolution is not None and resolution.chosen else None,
                         alternatives=[a.number for a in resolution.alternatives] if resolution is not None else [],
                         boxes={k + request.start: v for k, v in referral.boxes.items()})


def candidate_mask(result: SegmentResult, number: int) -> np.ndarray:
    """Candidate ``number`` of ``result`` on the whole volume's grid (what "take #2" puts in the label)."""
    for c in result.candidates:
        if c.number == number:
            mask = np.zeros(result.mask.shape, bool)
            mask[result.request.start:result.request.stop] = c.full_mask
            return mask
    raise KeyError(f"no candidate #{number} in this run")


def take_candidate(host: EngineHost, result: SegmentResult, number: int,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> tuple[np.ndarray, list[str]]:
    """Candidate ``number`` of ``result`` as a label mask on the volume's grid, redrawn by the refiner when
    it is on (as the chosen one was), and the stages that made it."""
    mask = candidate_mask(result, number)
    refiner = host.get_refiner()
    # The stages that found the candidate (with or without the second look at the liver), then the refiner's.
    stages = (result.stages[:result.stages.index("candidates") + 1] if "candidates" in result.stages
              else ["lsms", "candidates"])
    if refiner is None:
        return mask, stages
    req = result.request
    slices = req.volume.array[req.start:req.stop]
    raw = mask[req.start:req.stop]
    sx, sy, sz = req.volume.spacing
    # The run's probabilities are not kept (a volume's worth of floats per run): the candidate's own region
    # is the refiner's prompt.
    from lsms_core.progress import run_to_end

    refined = run_to_end(refiner.refine_region(slices, raw, raw.astype(np.float32), (sz, sy, sx), cancel=cancel),
                         progress)
    out = np.zeros(result.mask.shape, bool)
    out[req.start:req.stop] = refined.mask
    return out, stages + [refiner.name]


def segment_box(host: EngineHost, volume, k: int, box: tuple[int, int, int, int],
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """The refiner's lesion inside ``box`` ((x0, y0, x1, y1), inclusive voxel corners) on slice ``k`` of
    ``volume``: a bool (H, W) mask on the slice's grid (what the Box tool and Refine label write)."""
    refiner = host.get_refiner(required=True)
    if cancel is not None and cancel():
        raise Cancelled("box", "cancelled before the refiner ran")
    mask = refiner.segment_box(np.asarray(volume.array[k]), box)
    if progress is not None:
        progress(1, 1)
    return mask

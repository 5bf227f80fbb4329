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


class EngineHost:
    """A lazily loaded Segmenter for one checkpoint and device (thread-safe, Qt-free).

    Loading the text encoder takes seconds, so it happens once, inside the worker thread, on the first run.
    """

    def __init__(self, checkpoint: str | Path, device: str = "auto", threshold: float | None = None,
                 threads: int | None = None, one_region: bool = True):
        self.checkpoint = checkpoint
        self.device_choice = device
        self.threshold = threshold
        self.threads = threads
        # The words name one lesion: keep the connected region with the most probability (as
        # `lsms segment` does). False keeps every region above the threshold (Tools menu).
        self.one_region = one_region
        self._segmenter = None
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
                                                            threads=self.threads)
            return self._segmenter

    def describe(self) -> str:
        """One line for the status bar."""
        if self._segmenter is None:
            return f"model {Path(str(self.checkpoint)).name} · device {self.device_choice} (loads on first run)"
        seg = self._segmenter
        trained = "" if seg.trained else " · untrained weights"
        return f"model {seg.name} · device {seg.device}{trained}"


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


def segment_slices(host: EngineHost, request: SegmentRequest,
                   progress: Callable[[int, int], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> SegmentResult:
    """Run ``request`` to the end: load the model if needed, predict, keep the referred region (when
    ``host.one_region``), paste onto the volume's grid. Raises ``Cancelled`` and the engine's errors."""
    segmenter = host.get()
    if cancel is not None and cancel():
        raise Cancelled("segmentation", "cancelled before the first slice")
    volume = request.volume
    slices = volume.array[request.start:request.stop]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = request.batch_size or min(segmenter.default_batch_size(), VIEWER_MAX_BATCH)
        prediction = segmenter.predict(slices, request.expression, batch_size=batch, threshold=host.threshold,
                                       progress=progress, cancel=cancel)
    notes = list(prediction.notes) + [str(w.message) for w in caught]
    masks = np.asarray(prediction.masks, dtype=bool)
    if host.one_region:
        from lsms_core.postprocess import keep_referred_lesion

        referred = keep_referred_lesion(prediction.probs, masks)
        masks = referred.mask
        if referred.note():
            notes.append(referred.note())
    mask = np.zeros(volume.shape, bool)
    mask[request.start:request.stop] = masks
    return SegmentResult(request=request, mask=mask, seconds=float(prediction.seconds), device=prediction.device,
                         checkpoint=segmenter.name, trained=segmenter.trained, notes=notes)

"""Background inference: a QObject worker living in a QThread that calls ``lsms_core.engine.Segmenter``.

The worker never touches a widget; it only emits (napari's rule). The GUI thread keeps the Document and
applies a finished result itself, so a failed or cancelled run can never leave half a label behind.

``EngineHost`` (no Qt) owns the loaded ``Segmenter`` across runs: loading the text encoder takes seconds,
so it happens once, inside the worker thread, on the first run.
"""

from __future__ import annotations

import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from lsms_core.errors import Cancelled, LSMSError


class EngineHost:
    """A lazily loaded Segmenter for one checkpoint and device (thread-safe, Qt-free)."""

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
    masks: np.ndarray  # bool (stop - start, H, W)
    seconds: float
    device: str
    checkpoint: str
    trained: bool
    notes: list[str] = field(default_factory=list)


class SegmentWorker(QObject):
    """Runs one request. Signals are delivered to the GUI thread through queued connections."""

    loading = Signal()  # the model is being loaded (first run only)
    progress = Signal(int, int)  # slices done, total
    finished = Signal(object)  # SegmentResult
    failed = Signal(str, str)  # title, message (what went wrong and what to do)
    cancelled = Signal(str)
    done = Signal()  # always last, after exactly one of finished / failed / cancelled

    def __init__(self, host: EngineHost, request: SegmentRequest):
        super().__init__()
        self.host = host
        self.request = request
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Thread-safe: the engine checks it between batches."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @Slot()
    def run(self) -> None:
        try:
            self._run()
        finally:
            self.done.emit()

    def _run(self) -> None:
        from lsms_core.engine import OutOfMemory

        req = self.request
        try:
            if not self.host.loaded:
                self.loading.emit()
            segmenter = self.host.get()
            if self._cancel.is_set():
                raise Cancelled("segmentation", "cancelled before the first slice")
            slices = req.volume.array[req.start:req.stop]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                # At most 4 slices per batch: progress and Cancel answer within one batch in the window.
                batch = req.batch_size or min(segmenter.default_batch_size(), 4)
                prediction = segmenter.predict(
                    slices, req.expression, batch_size=batch, threshold=self.host.threshold,
                    progress=lambda done, total: self.progress.emit(done, total),
                    cancel=self._cancel.is_set,
                )
            notes = list(prediction.notes) + [str(w.message) for w in caught]
            masks = np.asarray(prediction.masks, dtype=bool)
            if self.host.one_region:
                from lsms_core.postprocess import keep_referred_lesion

                referred = keep_referred_lesion(prediction.probs, masks)
                masks = referred.mask
                if referred.note():
                    notes.append(referred.note())
            self.finished.emit(SegmentResult(
                request=req, masks=masks, seconds=float(prediction.seconds),
                device=prediction.device, checkpoint=segmenter.name, trained=segmenter.trained, notes=notes,
            ))
        except Cancelled as exc:
            self.cancelled.emit(exc.why)
        except OutOfMemory as exc:
            self.failed.emit("Not enough memory",
                             f"{exc.why}\n\nTry a smaller slice range, or close other programs.")
        except LSMSError as exc:
            self.failed.emit("Segmentation failed", f"{exc.what}: {exc.why}")
        except Exception as exc:  # a bug must reach the user as a message, never kill the app
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.failed.emit("Segmentation failed unexpectedly",
                             f"{detail}\n\nExisting labels are unchanged. Details:\n{traceback.format_exc(limit=4)}")


class _WorkerThread(QObject):
    """A worker object and the QThread it runs in; the worker's ``done`` signal ends the thread."""

    def __init__(self, worker: QObject, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName(name)
        self.worker = worker
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        # Direct: QThread.quit is thread-safe, and a queued call would wait for the GUI thread, which may
        # itself be waiting for this thread (closing the window during a run).
        self.worker.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self.worker.cancel()

    def is_running(self) -> bool:
        return self.thread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self.thread.wait(ms)


class SegmentationRun(_WorkerThread):
    """Owns a worker and its thread for one request; emits the worker's signals and cleans up after itself."""

    def __init__(self, host: EngineHost, request: SegmentRequest, parent: QObject | None = None):
        super().__init__(SegmentWorker(host, request), "lsms-segmentation", parent)
        self.request = request


class TaskWorker(QObject):
    """Runs ``fn(progress, cancel)`` in a thread (loading a study); same signal shape as SegmentWorker."""

    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal(str)
    done = Signal()

    def __init__(self, fn, title: str):
        super().__init__()
        self.fn = fn
        self.title = title
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        try:
            result = self.fn(lambda done, total: self.progress.emit(done, total), self._cancel.is_set)
            self.finished.emit(result)
        except Cancelled as exc:
            self.cancelled.emit(exc.why)
        except LSMSError as exc:
            self.failed.emit(self.title, f"{exc.what}\n\n{exc.why}")
        except Exception as exc:  # a loader bug must reach the user as a message, never kill the app
            self.failed.emit(self.title, f"{type(exc).__name__}: {exc}")
        finally:
            self.done.emit()


class TaskRun(_WorkerThread):
    """A TaskWorker and its thread."""

    def __init__(self, fn, title: str, parent: QObject | None = None):
        super().__init__(TaskWorker(fn, title), "lsms-task", parent)
        self.context = None  # what the caller needs back with the result (e.g. the path being read)

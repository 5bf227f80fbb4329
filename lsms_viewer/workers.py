"""Background work: QObject workers living in QThreads, for a model run and for reading a study.

A worker never touches a widget; it only emits (napari's rule). The GUI thread keeps the Document and
applies a finished result itself, so a failed or cancelled run can never leave half a label behind. The
model run itself is ``lsms_viewer.inference.segment_slices`` (Qt-free).
"""

from __future__ import annotations

import threading
import traceback

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from lsms_core.errors import Cancelled, LSMSError
from lsms_viewer.inference import EngineHost, SegmentRequest, segment_slices


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

    @Slot()
    def run(self) -> None:
        try:
            self._run()
        finally:
            self.done.emit()

    def _run(self) -> None:
        from lsms_core.engine import OutOfMemory

        try:
            if not self.host.loaded:
                self.loading.emit()
            self.finished.emit(segment_slices(self.host, self.request,
                                              progress=lambda done, total: self.progress.emit(done, total),
                                              cancel=self._cancel.is_set))
        except Cancelled as exc:
            self.cancelled.emit(exc.why)
        except OutOfMemory as exc:
            self.failed.emit("Not enough memory",
                             f"{exc.why}\n\nTry a smaller slice range, or close other programs.")
        except LSMSError as exc:
            self.failed.emit("Segmentation failed", f"{exc.what}: {exc.why}")
        except Exception as exc:  # a bug must reach the user as a message, never kill the app
            from lsms_core.engine import is_out_of_memory

            if is_out_of_memory(exc):  # outside the engine's own recovery: candidates, the refiner
                self.failed.emit("Not enough memory", f"{type(exc).__name__}: {exc}\n\nTry a smaller slice "
                                 "range, switch off Tools ▸ Refine with LiteMedSAM, or close other programs.")
                return
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

"""Candidates after a run: the panel lists what the network saw, the outlines show it on the image, and
taking another candidate ("did you mean #2?") puts it in the run's label as one undo step.

A taken candidate is redrawn by the refiner when that is on (in a worker thread, like a run), so it is
outlined as carefully as the one the words chose.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject

from lsms_viewer.inference import EngineHost, SegmentResult, take_candidate
from lsms_viewer.main_window import MainWindow
from lsms_viewer.state.document import RunInfo
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.state.maskbits import PackedMask
from lsms_viewer.views.candidates_panel import CandidateOutlines, CandidatesPanel
from lsms_viewer.workers import TaskRun


class CandidatesController(QObject):
    def __init__(self, window: MainWindow, history: UndoHistory, engine_of: Callable[[], EngineHost | None]):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.history = history
        self.engine_of = engine_of
        self.panel = CandidatesPanel()
        planes = window.planes
        self.outlines = CandidateOutlines(window.slice_view, [planes.coronal, planes.sagittal])
        self.result: SegmentResult | None = None
        self.label_id: int | None = None
        self._task: TaskRun | None = None
        self.panel.take_requested.connect(self.take)
        self.panel.hovered.connect(self.outlines.set_hover)
        for view in self.outlines.views:
            view.slice_changed.connect(lambda _k, v=view: self.outlines.redraw(v))
        events = self.document.events
        events.volume_changed.connect(self._forget)
        events.label_removed.connect(lambda label: label.id == self.label_id and self._forget())

    def show_result(self, label_id: int, result: SegmentResult) -> None:
        """A run was applied to ``label_id``: list its candidates and draw them."""
        self.result, self.label_id = result, label_id
        reason = next((n for n in result.notes if n.startswith(("candidate #", "not found"))), "")
        if result.status == "all regions":
            self.panel.clear("Every region above the threshold was kept (Tools ▸ Keep only the referred "
                             "region is off): no candidates to choose from.")
            self.outlines.clear()
            return
        self.panel.show_run(result.candidates, result.status, result.chosen, result.alternatives, reason,
                            result.request.start)
        self.outlines.set_candidates(result.candidates, result.request.start, result.chosen)

    def _forget(self) -> None:
        self.result, self.label_id = None, None
        self.panel.clear()
        self.outlines.clear()

    def take(self, number: int) -> None:
        """Put candidate ``number`` in the run's label (refined when the refiner is on)."""
        result, engine = self.result, self.engine_of()
        if result is None or engine is None or self._task is not None:
            return
        if self.label_id is None or not self.document.has_label(self.label_id) \
                or self.document.volume is not result.request.volume:
            self.window.statusBar().showMessage("That run's label is gone; run the words again.", 8000)
            self._forget()
            return
        label_id = self.label_id
        task = TaskRun(lambda progress, cancel: take_candidate(engine, result, number, progress, cancel),
                       f"Candidate #{number}", self)
        task.context = (label_id, result, number)
        # Bound methods of this GUI-thread object: Qt queues the worker's signals to the GUI thread.
        task.worker.finished.connect(self._on_taken)
        task.worker.failed.connect(self._on_failed)
        task.thread.finished.connect(self._task_done)
        self._task = task
        self.panel.set_busy(True)
        self.window.statusBar().showMessage(f"Drawing candidate #{number}…")
        task.start()

    def _on_taken(self, out) -> None:
        label_id, result, number = self._task.context
        self._apply(label_id, result, number, *out)

    def _on_failed(self, title: str, message: str) -> None:
        self.window.show_error(title, message)

    def _task_done(self) -> None:
        self._task = None
        self.panel.set_busy(False)

    def _apply(self, label_id: int, result: SegmentResult, number: int, mask, stages: list[str]) -> None:
        if self.result is not result or not self.document.has_label(label_id):
            return  # the study or the run changed meanwhile
        req = result.request
        label = self.document.label(label_id)
        previous = result.chosen
        run = RunInfo(expression=label.expression, seconds=0.0, device=result.device, checkpoint=result.checkpoint,
                      trained=result.trained, slices=(req.start, req.stop),
                      notes=[f"candidate #{number} taken by hand"
                             + (f" in place of #{previous}, the words' choice" if previous else "")],
                      mask=PackedMask.of(mask), stages=stages)
        with self.history.batch(f"candidate #{number} for “{label.name}”"):
            self.document.replace_mask(label_id, mask, run=run)
        result.chosen = number
        self.panel.show_run(result.candidates, "found", number, [], run.notes[0], req.start)
        self.outlines.set_candidates(result.candidates, req.start, number)
        voxels = int(mask.sum())
        self.window.statusBar().showMessage(f"Candidate #{number} is now “{label.name}”: {voxels:,} voxels "
                                            f"(Ctrl+Z goes back).", 10000)

    def wait(self, ms: int = 60000) -> None:
        """Tests and closing: let a candidate being drawn finish."""
        if self._task is not None:
            self._task.wait(ms)

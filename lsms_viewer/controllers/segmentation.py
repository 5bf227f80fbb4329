"""Segmenting by words: the request from the expression bar, the worker thread, the result on the Document.

A run goes through explicit phases (``RunPhase``): RUNNING while the worker computes, CANCELLING once
Cancel was asked (the worker stops after its batch), WAITING_FOR_STROKE when its result arrives while a
brush stroke is still open (it is applied when the stroke ends, so the run stays its own undo step instead
of joining the stroke's), ENDING once the outcome is known and the worker's thread winds down, then IDLE.
``done(outcome)`` is emitted exactly once per run, when it is back to IDLE, so no second thread ever starts
beside a finishing one.

The controller also owns the model settings of the Tools menu: checkpoint, detection threshold, keeping
only the referred region, device.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QFileDialog, QInputDialog

from lsms_core.errors import LSMSError
from lsms_viewer import settings as user_settings
from lsms_viewer.actions import make_action
from lsms_viewer.inference import EngineHost, SegmentRequest, SegmentResult, refiner_installed
from lsms_viewer.main_window import MainWindow
from lsms_viewer.state.document import RunInfo, auto_name
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.state.maskbits import PackedMask
from lsms_viewer.workers import SegmentationRun

DEVICES = (("auto", "Automatic (GPU when present)"), ("cpu", "CPU"), ("cuda", "CUDA GPU"), ("mps", "Apple GPU (MPS)"))
_WAIT_MS = 20  # how often a result waiting for a brush stroke checks whether the stroke has ended


class RunPhase(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    CANCELLING = "cancelling"
    WAITING_FOR_STROKE = "waiting for the brush stroke to end"
    ENDING = "ending"


@dataclass
class _Run:
    """The run in progress: its worker thread, and what is known of its end."""

    thread: SegmentationRun
    phase: RunPhase = RunPhase.RUNNING
    outcome: str = "finished"  # "finished", "failed" or "cancelled"
    result: SegmentResult | None = None  # a result waiting for the brush stroke to end
    thread_done: bool = False


def short_name(expression: str) -> str:
    """A label's automatic name (``Document``'s rule: the expression, no ellipsis)."""
    return auto_name(expression)


def _legacy_name(expression: str) -> str:
    """The automatic name older versions gave (six words and an ellipsis), still in saved sessions."""
    words = expression.split()
    return " ".join(words[:6]) + ("…" if len(words) > 6 else "")


class SegmentationController(QObject):
    started = Signal()
    applied = Signal(int, object)  # label id, previous mask (None = a new label)
    result_applied = Signal(int, object)  # label id, SegmentResult (its candidates, for the Candidates panel)
    done = Signal(str)  # "finished", "failed" or "cancelled": always emitted once per run
    busy_changed = Signal()

    def __init__(self, window: MainWindow, history: UndoHistory, device: str = "auto",
                 threshold: float | None = None, engine: EngineHost | None = None,
                 checkpoint: str | Path | None = None):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.history = history
        self.bar = window.expression_bar
        self._device_choice = device
        self._threshold = threshold
        self._one_region = user_settings.keep_one_region()
        self._refine = "auto" if user_settings.refine_with_refiner() else "off"
        self._precision = engine.precision if engine is not None else "auto"
        self.engine: EngineHost | None = engine
        if self.engine is None and checkpoint is not None:
            self.engine = EngineHost(checkpoint, device=device, threshold=threshold, one_region=self._one_region,
                                     refine=self._refine)
        elif self.engine is not None:
            self.engine.one_region = self._one_region
            self._refine = self.engine.refine  # an engine handed over keeps its own refiner choice
        self._run: _Run | None = None
        self._running_text = ""
        self._default_checkpoint = False  # the engine is the default checkpoint ('demo'), not one asked for
        self._build_actions()

        self.bar.run_requested.connect(self.segment)
        self.bar.cancel_requested.connect(self.cancel)
        self.bar.scope_chosen.connect(self._on_scope_chosen)
        window.slice_view.numbering_changed.connect(lambda: self.bar.set_numbering(window.slice_view.numbering))
        window.label_panel.rerun_requested.connect(self._prepare_rerun)
        window.closing.connect(self._stop)
        events = self.document.events
        events.volume_changed.connect(self._on_volume_changed)
        events.label_removed.connect(self._on_label_removed)
        events.label_added.connect(lambda _label: self._update_actions())
        # The line under the box describes the last run: an edit, an undo or another study makes it stale.
        events.mask_changed.connect(self._forget_message)
        events.label_removed.connect(self._forget_message)
        self._update_device_label()
        self._update_actions()

    # -- actions -------------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        w = self.window
        self.focus_expression_action = make_action(w, "&Segment by words…", self.focus_expression, "Ctrl+L",
                                                   "Type an expression and press Enter")
        # Esc stops what runs: this run, and (connected by the composition root) a study being read.
        self.cancel_action = make_action(w, "&Cancel segmentation", self.cancel, "Esc")
        self.checkpoint_action = make_action(w, "Load &checkpoint…", self.checkpoint_dialog,
                                             tip="Use another model checkpoint folder")
        self.threshold_action = make_action(w, "Detection &threshold…", self.threshold_dialog,
                                            tip="Probability above which a voxel belongs to the lesion")
        self.one_region_action = make_action(
            w, "Keep only the &referred region", self.set_one_region,
            tip="The words name one lesion: keep the connected region the model is surest of. "
                "Off: keep every region above the threshold", checkable=True)
        self.one_region_action.setChecked(self._one_region)
        self.refine_action = make_action(
            w, "Refine with &LiteMedSAM", self.set_refine,
            tip="Redraw the chosen lesion's edge with LiteMedSAM from a box around the network's region "
                "(two-stage; needs the refiner's weights). Off: the network's own, coarser mask",
            checkable=True)
        self.refine_action.setChecked(self._refine != "off")
        tools = w.menus["tools"]
        tools.addAction(self.focus_expression_action)
        tools.addAction(self.cancel_action)
        tools.addSeparator()
        tools.addAction(self.checkpoint_action)
        tools.addAction(self.threshold_action)
        tools.addAction(self.one_region_action)
        tools.addAction(self.refine_action)
        self.device_menu = tools.addMenu("&Device")
        self.device_actions: dict[str, QAction] = {}
        group = QActionGroup(w)
        for key, title in DEVICES:
            action = make_action(w, title, lambda _=False, k=key: self.set_device(k), checkable=True)
            group.addAction(action)
            self.device_menu.addAction(action)
            self.device_actions[key] = action
        if self._device_choice in self.device_actions:
            self.device_actions[self._device_choice].setChecked(True)
        self.device_menu.addSeparator()
        self.bf16_action = self._bf16_action()
        self.device_menu.addAction(self.bf16_action)
        tools.addSeparator()

    def _update_actions(self) -> None:
        has_volume = self.document.volume is not None
        self.focus_expression_action.setEnabled(has_volume)
        can_run = has_volume and self.engine is not None and self._run is None
        if self.engine is None:
            why = "No model loaded: Tools ▸ Load checkpoint…, or start with --checkpoint DIR"
        elif not has_volume:
            why = "Open a study first"
        elif self._run is not None:
            why = "A segmentation is running"
        else:
            why = "Run the model on the chosen slices (Enter)"
        self.bar.set_can_run(can_run, why, can_type=has_volume)
        self.busy_changed.emit()

    def _update_device_label(self) -> None:
        label = self.window.device_label
        if self.engine is None:
            label.setText("no model loaded")
            label.setToolTip("Tools ▸ Load checkpoint… or start with --checkpoint DIR")
        else:
            default = " (default checkpoint 'demo')" if self._default_checkpoint else ""
            label.setText(self.engine.describe() + default)
            label.setToolTip(f"{self.engine.checkpoint}{default}; Tools ▸ Load checkpoint… uses another")

    def focus_expression(self) -> None:
        self.bar.focus_words()

    # -- running -------------------------------------------------------------------------------------
    @property
    def phase(self) -> RunPhase:
        return RunPhase.IDLE if self._run is None else self._run.phase

    def is_segmenting(self) -> bool:
        return self._run is not None

    @property
    def current_run(self) -> SegmentationRun | None:
        """The run in progress (its ``worker`` emits progress), or None."""
        return None if self._run is None else self._run.thread

    def scope_range(self, scope: str) -> tuple[int, int]:
        volume = self.document.volume
        k = self.window.current_slice()
        if scope == "slice":
            return k, k + 1
        if scope == "range":
            return self.bar.slice_range()
        if scope == "volume":
            return 0, volume.shape[0]
        raise ValueError(f"unknown scope {scope!r}")

    def segment(self, expression: str, scope: str = "slice") -> bool:
        """Start a run in the worker thread. Returns False (with a message) when it cannot start."""
        if self.document.volume is None:
            self.bar.show_message("Open a study first.", error=True)
            return False
        if self.engine is None:
            self.window.show_error("No model loaded", "Segmentation needs a checkpoint: use Tools ▸ Load "
                                   "checkpoint… or start the viewer with --checkpoint DIR (or --demo).")
            return False
        if self._run is not None:
            self.bar.show_message("A segmentation is already running; wait or press Cancel.")
            return False
        start, stop = self.scope_range(scope)
        label_id = self.bar.rerun_label_id
        if label_id is not None and not self.document.has_label(label_id):
            self.bar.clear_rerun()
            label_id = None
        request = SegmentRequest(self.document.volume, start, stop, expression, label_id)
        thread = SegmentationRun(self.engine, request, self)
        worker = thread.worker
        worker.loading.connect(self._on_model_loading)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        thread.thread.finished.connect(self._on_thread_finished)
        self._run = _Run(thread)
        count = stop - start
        self.bar.set_busy(True, count, cancellable=count > 1)
        where = f"{'slice' if count == 1 else 'slices'} {self.window.slice_view.numbering.span_text(start, stop)}"
        self._running_text = f"Segmenting “{expression}” on {where}…"
        self.bar.show_message(self._running_text)
        self._update_actions()
        self.started.emit()
        thread.start()
        # The words are sent: keys go back to the image (1-5 windows, arrows scroll), not into the box.
        # Ctrl+L returns to the words.
        self.window.slice_view.canvas.setFocus()
        return True

    def cancel(self) -> None:
        """Stop the run after its current batch (Esc, Cancel)."""
        if self._run is not None and self._run.phase is RunPhase.RUNNING:
            self._run.phase = RunPhase.CANCELLING
            self._run.thread.cancel()
            self.bar.set_cancelling()

    def _stop(self) -> None:
        """The window closes: stop the worker and wait for its thread."""
        if self._run is not None:
            self._run.thread.cancel()
            self._run.thread.wait(60000)

    def _on_progress(self, done: int, total: int) -> None:
        if self.bar.waiting_for_first_batch:  # the model is loaded now
            self.bar.show_message(self._running_text)
            self._update_device_label()
        self.bar.set_progress(done, total)

    def _on_model_loading(self) -> None:
        self.bar.show_message("Loading the model (first run only)…")

    def _on_finished(self, result: SegmentResult) -> None:
        if self.history.in_batch:
            self._run.phase = RunPhase.WAITING_FOR_STROKE
            self._run.result = result
            QTimer.singleShot(_WAIT_MS, self, self._apply_when_stroke_ends)
            return
        self._apply_result(result)

    def _apply_when_stroke_ends(self) -> None:
        run = self._run
        if run is None or run.phase is not RunPhase.WAITING_FOR_STROKE:
            return
        if self.history.in_batch:
            QTimer.singleShot(_WAIT_MS, self, self._apply_when_stroke_ends)
            return
        result, run.result = run.result, None
        self._apply_result(result)
        if run.thread_done:
            self._on_thread_finished()

    def _apply_result(self, result: SegmentResult) -> None:
        req = result.request
        volume = self.document.volume
        if volume is not req.volume:
            self.bar.show_message("The study changed during the run; its result was discarded.")
            self._end_run("cancelled")
            return
        run_info = RunInfo(expression=req.expression, seconds=result.seconds, device=result.device,
                           checkpoint=result.checkpoint, trained=result.trained, slices=(req.start, req.stop),
                           notes=list(result.notes), mask=PackedMask.of(result.mask), stages=list(result.stages))
        with self.history.model_run(run_info):
            if req.label_id is not None and self.document.has_label(req.label_id):
                label = self.document.label(req.label_id)
                # still the automatic name: follow the words
                renamed = label.name in (short_name(label.expression), _legacy_name(label.expression))
                previous = self.document.replace_mask(req.label_id, result.mask, expression=req.expression,
                                                      run=run_info)
                if renamed and short_name(req.expression):
                    self.document.update_label(req.label_id, name=short_name(req.expression))
                label_id = req.label_id
                self.bar.clear_rerun()
            else:
                previous = None
                try:
                    label_id = self.document.add_label(result.mask, expression=req.expression, run=run_info).id
                except RuntimeError as exc:  # the study already holds the most labels the overlay can code
                    self._end_run("failed")
                    self.window.show_error("Cannot add another label",
                                           f"{exc}. Delete or merge labels, then run again.")
                    return
        voxels = int(result.mask[req.start:req.stop].sum())
        found = (f"{voxels:,} voxels ({voxels * volume.voxel_volume_ml:.2f} mL)" if voxels
                 else "nothing found on these slices")
        untrained = " · untrained weights: the mask is not meaningful" if not result.trained else ""
        if len(result.stages) > 2:
            run = slice(req.start, req.stop)
            kept = result.raw_mask is not None and np.array_equal(result.mask[run], result.raw_mask[run])
            untrained += (f" · {result.stages[-1]} kept the network's outline" if kept
                          else f" · outlined by {result.stages[-1]}")
        self.bar.show_message(f"“{req.expression}”: {found} in {result.seconds:.1f} s on {result.device}{untrained}")
        for note in result.notes:
            self.window.statusBar().showMessage(note, 10000)
        self._end_run("finished")
        self.applied.emit(label_id, previous)
        self.result_applied.emit(label_id, result)

    def _on_failed(self, title: str, message: str) -> None:
        self.bar.show_message(f"{title}.", error=True)
        self._end_run("failed")
        self.window.show_error(title, message)

    def _on_cancelled(self, why: str) -> None:
        # The engine says "cancelled after 4 of 12 slice(s)": say "Cancelled" once, not "Cancelled (cancelled …)".
        rest = why[len("cancelled"):].strip() if why.lower().startswith("cancelled") else f"({why})"
        self.bar.show_message(f"Cancelled {rest}; existing labels are unchanged." if rest
                              else "Cancelled; existing labels are unchanged.")
        self._end_run("cancelled")

    def _end_run(self, outcome: str) -> None:
        self.bar.set_busy(False)
        self._update_device_label()
        self._run.phase = RunPhase.ENDING
        self._run.outcome = outcome

    def _on_thread_finished(self) -> None:
        run = self._run
        if run.phase is RunPhase.WAITING_FOR_STROKE:  # the run is over once its result is applied
            run.thread_done = True
            return
        self._run = None
        self._update_actions()
        self.done.emit(run.outcome)

    # -- re-running a label --------------------------------------------------------------------------
    def _prepare_rerun(self, label_id: int) -> None:
        label = self.document.label(label_id)
        self.bar.set_rerun(label_id, label.name, label.expression)
        if label.run is not None:
            start, stop = label.run.slices
            if stop - start == 1:
                self.bar.set_scope("slice")
                self.window.slice_view.set_slice(start)
            elif (start, stop) == (0, self.document.volume.shape[0]):
                self.bar.set_scope("volume")
            else:
                self.bar.set_scope("range")
                self.bar.set_slice_range(start, stop)

    def _on_label_removed(self, label) -> None:
        if self.bar.rerun_label_id == label.id:
            self.bar.clear_rerun()
        self._update_actions()

    def _on_scope_chosen(self, scope: str) -> None:
        """Choosing 'Slices' centres the range on the slice shown now (it kept the range centred on the
        slice shown when the study opened: 55-65 while on slice 96)."""
        volume = self.document.volume
        if scope == "range" and volume is not None:
            self.bar.centre_range(self.window.current_slice(), volume.shape[0])

    def _forget_message(self, *_args) -> None:
        if self._run is None:  # a run's own result is described when it is applied
            self.bar.show_message("")

    def _on_volume_changed(self) -> None:
        # A run on the previous study is stopped; were its result to arrive, it would be discarded.
        self.cancel()
        if self._run is None:
            self.bar.show_message("")
        self.bar.clear_rerun()
        volume = self.document.volume
        self.bar.set_slice_count(volume.shape[0], self.window.current_slice())
        self._update_actions()

    # -- model settings ------------------------------------------------------------------------------
    def _refuse_while_running(self) -> bool:
        if self._run is not None:
            self.window.show_error("A segmentation is running", "Wait for it to finish or cancel it first.")
            return True
        return False

    def use_default_checkpoint(self) -> bool:
        """Use the default checkpoint ('demo'), loaded lazily on the first run; the status bar says which.
        Without the demo weights the window says so (no error dialog: nothing was asked for)."""
        from lsms_core.checkpoint import read_config, resolve_checkpoint

        try:
            resolved = resolve_checkpoint("demo")
            read_config(resolved)
        except LSMSError as exc:
            self.window.statusBar().showMessage(f"No model: the default checkpoint 'demo' cannot be used "
                                                f"({exc.why}). Tools ▸ Load checkpoint…", 15000)
            self._update_device_label()
            return False
        self.use_checkpoint(resolved)
        self._default_checkpoint = True
        self._update_device_label()
        self.window.statusBar().showMessage(f"Model: the default checkpoint 'demo' ({resolved.name}), loaded on "
                                            "the first run.", 15000)
        return True

    def use_checkpoint(self, folder: str | Path) -> None:
        if self._refuse_while_running():
            return
        self._default_checkpoint = False
        from lsms_core.checkpoint import read_config, resolve_checkpoint

        try:
            resolved = resolve_checkpoint(folder)
            read_config(resolved)  # a clear error now rather than at the first run
        except LSMSError as exc:
            self.window.show_error("Cannot use this checkpoint", f"{exc.what}\n\n{exc.why}")
            return
        self.engine = EngineHost(resolved, device=self._device_choice, threshold=self._threshold,
                                 one_region=self._one_region, refine=self._refine, precision=self._precision)
        self.window.clear_notice("model")
        self._update_device_label()
        self._update_actions()
        self.window.statusBar().showMessage(f"Checkpoint {resolved.name} will load on the next run.", 8000)

    def checkpoint_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window,
                                                  "Choose a checkpoint folder (model.safetensors + config.json)")
        if folder:
            self.use_checkpoint(folder)

    def set_threshold(self, value: float | None) -> None:
        """Probability threshold for the next runs (None = the checkpoint's own)."""
        self._threshold = value
        if self.engine is not None:
            self.engine.threshold = value
        shown = "the checkpoint's default" if value is None else f"{value:.2f}"
        self.window.statusBar().showMessage(f"Detection threshold: {shown} (applies to the next run).", 8000)

    def threshold_dialog(self) -> None:
        current = self._threshold
        if current is None and self.engine is not None and self.engine.segmenter is not None:
            current = float(self.engine.segmenter.config.threshold)
        value, ok = QInputDialog.getDouble(
            self.window, "Detection threshold", "Probability above which a voxel is part of the lesion\n"
            "(lower finds more, higher finds less):", 0.5 if current is None else current, 0.01, 0.99, 2)
        if ok:
            self.set_threshold(value)

    def set_one_region(self, on: bool) -> None:
        """Keep only the most probable connected region (the referred lesion) from the next run on."""
        self._one_region = bool(on)
        user_settings.set_keep_one_region(self._one_region)
        if self.engine is not None:
            self.engine.one_region = self._one_region
        self.one_region_action.setChecked(self._one_region)  # no signal loop: triggered, not toggled
        what = "only the referred region" if self._one_region else "every region above the threshold"
        self.window.statusBar().showMessage(f"Segmentation keeps {what} (applies to the next run).", 8000)

    def set_refine(self, on: bool) -> None:
        """Two-stage runs (the refiner redraws the chosen lesion) from the next run on; remembered."""
        self._refine = "auto" if on else "off"
        user_settings.set_refine_with_refiner(bool(on))
        if self.engine is not None:
            self.engine.refine = self._refine
        self.refine_action.setChecked(bool(on))
        if on and not refiner_installed():
            what = "LiteMedSAM's weights are not installed: runs keep the network's own mask"
        else:
            what = "the chosen lesion is redrawn by LiteMedSAM" if on else "runs keep the network's own mask"
        self.window.statusBar().showMessage(f"Refine: {what} (applies to the next run).", 8000)

    def _bf16_action(self) -> QAction:
        """bfloat16 on the CPU: offered where the CPU computes it natively (AVX512-BF16, AMX); elsewhere
        disabled, its text and tip saying why (emulated bfloat16 is about 15x slower than float32)."""
        from lsms_core.cpu import bf16_support

        support = bf16_support()
        self.bf16_support = support
        action = make_action(self.window, "&bfloat16 on the CPU", self.set_bf16, tip=support.reason, checkable=True)
        if support.native is False:
            action.setText("bfloat16 on the CPU (not on this CPU: no AVX512-BF16 or AMX)")
            action.setEnabled(False)
        self.device_menu.setToolTipsVisible(True)
        action.setChecked(self._precision == "bfloat16")
        return action

    def set_bf16(self, on: bool) -> None:
        """CPU runs in bfloat16 (faster where native) or float32, from the next run on."""
        if self._refuse_while_running():
            self.bf16_action.setChecked(self._precision == "bfloat16")
            return
        if on and self.bf16_support.native is False:
            self.bf16_action.setChecked(False)
            self.window.show_error("bfloat16 is not offered", self.bf16_support.reason)
            return
        self._precision = "bfloat16" if on else "auto"
        self.bf16_action.setChecked(on)
        if self.engine is not None and self.engine.precision != self._precision:
            self.engine = EngineHost(self.engine.checkpoint, device=self._device_choice, threshold=self._threshold,
                                     one_region=self._one_region, refine=self._refine, precision=self._precision)
        self._update_device_label()
        what = "bfloat16" if on else "float32"
        self.window.statusBar().showMessage(f"CPU runs use {what} from the next run.", 8000)

    def set_device(self, device: str) -> None:
        """Run the model on ``device`` from the next run on (the model is reloaded there)."""
        if self._refuse_while_running():
            return
        self._device_choice = device
        if device in self.device_actions:
            self.device_actions[device].setChecked(True)
        if self.engine is not None and self.engine.device_choice != device:
            self.engine = EngineHost(self.engine.checkpoint, device=device, threshold=self._threshold,
                                     one_region=self._one_region, refine=self._refine, precision=self._precision)
        self._update_device_label()
        self.window.statusBar().showMessage(f"The model will run on {device} from the next run.", 8000)

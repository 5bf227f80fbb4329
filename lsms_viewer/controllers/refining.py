"""Drawing a lesion from a box: the Box tool (drag a rectangle, LiteMedSAM fills the lesion inside it into
the active label, or a new one) and Refine label (LiteMedSAM redraws the active label on the shown slice
from the label's own box). The correction loop users of box-prompted tools expect, each one undo step.

The refiner runs in a worker thread (seconds per new slice on a CPU; later boxes on the same slice reuse
its cached image embedding); only the GUI thread writes the label.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject

from lsms_viewer.actions import make_action
from lsms_viewer.inference import EngineHost, segment_box
from lsms_viewer.main_window import MainWindow
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.tools.box import BoxTool
from lsms_viewer.workers import TaskRun

#: Refine label grows the label's box by this much on each side (the refiner wants the whole lesion inside)
REFINE_MARGIN_MM = 5.0


class RefiningController(QObject):
    def __init__(self, window: MainWindow, history: UndoHistory, engine_of: Callable[[], EngineHost | None]):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.history = history
        self.engine_of = engine_of
        self.tool = BoxTool(self.box_drawn, lambda: self.document.volume.shape)
        self._task: TaskRun | None = None
        self._own_engine: EngineHost | None = None
        self.refine_label_action = make_action(
            window, "Re&fine label on this slice", self.refine_active_label, "Ctrl+R",
            "LiteMedSAM redraws the active label on the shown slice from the label's own box (one undo step)")
        window.addAction(self.refine_label_action)
        window.menus["tools"].addAction(self.refine_label_action)
        self.document.events.volume_changed.connect(self._update_actions)
        self.document.events.active_label_changed.connect(lambda _label: self._update_actions())
        self._update_actions()

    def _update_actions(self) -> None:
        self.refine_label_action.setEnabled(self.document.active_label is not None and self._task is None)

    @property
    def busy(self) -> bool:
        return self._task is not None

    # -- requests ------------------------------------------------------------------------------------
    def box_drawn(self, k: int, box: tuple[int, int, int, int]) -> None:
        """The Box tool's rectangle on slice ``k``: the lesion inside goes into the active label."""
        self._start(k, box, "box")

    def refine_active_label(self) -> None:
        label = self.document.active_label
        volume = self.document.volume
        if label is None or volume is None:
            return
        k = self.window.current_slice()
        rows, cols = np.nonzero(label.mask[k])
        if not rows.size:
            self.window.statusBar().showMessage(f"“{label.name}” has nothing on slice {k + 1} to refine.", 8000)
            return
        sx, sy, _ = volume.spacing
        mx, my = int(np.ceil(REFINE_MARGIN_MM / sx)), int(np.ceil(REFINE_MARGIN_MM / sy))
        _, h, w = volume.shape
        box = (max(int(cols.min()) - mx, 0), max(int(rows.min()) - my, 0),
               min(int(cols.max()) + mx, w - 1), min(int(rows.max()) + my, h - 1))
        self._start(k, box, "refine")

    def _start(self, k: int, box: tuple[int, int, int, int], kind: str) -> None:
        engine, volume = self.engine_of(), self.document.volume
        if volume is None:
            return
        if self._task is not None:
            self.window.statusBar().showMessage("LiteMedSAM is still drawing the last box.", 5000)
            return
        if engine is None:  # the refiner needs no network: a host of its own keeps it loaded between boxes
            if self._own_engine is None:
                self._own_engine = EngineHost("demo")
            engine = self._own_engine
        task = TaskRun(lambda progress, cancel: segment_box(engine, volume, k, box, progress, cancel),
                       "LiteMedSAM", self)
        task.context = (volume, k, box, kind, self.document.active_label.id if kind == "refine" else None)
        task.worker.finished.connect(self._on_drawn)
        task.worker.failed.connect(self._on_failed)
        task.thread.finished.connect(self._task_done)
        self._task = task
        self._update_actions()
        self.window.statusBar().showMessage(f"LiteMedSAM is drawing the lesion in the box on slice {k + 1}…")
        task.start()

    # -- results -------------------------------------------------------------------------------------
    def _on_drawn(self, mask: np.ndarray) -> None:
        volume, k, box, kind, label_id = self._task.context
        if self.document.volume is not volume:
            return  # the study changed meanwhile
        x0, y0, x1, y1 = box
        if not mask.any():
            self.window.statusBar().showMessage(f"LiteMedSAM found no lesion in the box on slice {k + 1}; "
                                                "nothing changed.", 8000)
            return
        with self.history.batch("box prompt" if kind == "box" else "refine label"):
            if kind == "refine" and label_id is not None and self.document.has_label(label_id):
                label = self.document.label(label_id)
                new = mask
            else:
                label = self.document.active_label
                if label is None:
                    label = self.document.add_label(np.zeros(volume.shape, bool), name="lesion (box)")
                # Inside the box the refiner's drawing replaces the label; outside it the label stays.
                new = label.mask[k].copy()
                new[y0:y1 + 1, x0:x1 + 1] = False
                new |= mask
            self.document.write_region(label.id, (slice(k, k + 1), slice(None), slice(None)), new[None])
        voxels = int(mask.sum())
        what = "Box" if kind == "box" else "Refine"
        self.window.statusBar().showMessage(f"{what}: LiteMedSAM drew {voxels:,} pixels of “{label.name}” on "
                                            f"slice {k + 1} (Ctrl+Z undoes it).", 10000)

    def _on_failed(self, title: str, message: str) -> None:
        self.window.show_error(title, message)

    def _task_done(self) -> None:
        self._task = None
        self._update_actions()

    def wait(self, ms: int = 120000) -> None:
        """Tests and closing: let a box being drawn finish."""
        if self._task is not None:
            self._task.wait(ms)

"""Editing, measuring, annotating and autosave, attached to the main window in one call.

``attach_editing(window)`` is called at the end of ``MainWindow.__init__``. It only uses the window's
public surface (``document``, ``slice_view``, ``menus``, ``toolbar``, ``statusBar()``, ``add_dock``,
``current_slice()``, and the ``segmentation_applied`` signal when present) and returns the
:class:`EditingController`, also stored as ``window.editing``.

What it adds:
- Edit menu: Undo/Redo (Ctrl+Z, Ctrl+Shift+Z and Ctrl+Y) naming the step, fill holes, clear slice,
  interpolate; toolbar: Pan, Brush (B), Eraser (E), Fill (F), Keep piece (K), Remove piece (Shift+K).
- An "Editing" dock: brush radius in mm ([ and ] change it), the threshold limit (HU range, default the
  current window), 3D pieces.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer.actions import make_action
from lsms_viewer.editing import EditError, clear_slice, fill_holes, interpolate_between
from lsms_viewer.state import session as sessions
from lsms_viewer.state.edit_context import MAX_RADIUS_MM, MIN_RADIUS_MM, EditContext, EditSettings
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.tools.brush import BrushTool
from lsms_viewer.tools.click import FillTool, PieceTool
from lsms_viewer.views.annotation_panel import AnnotationPanel
from lsms_viewer.views.measure_panel import MeasurePanel


def undo_budget_bytes() -> int:
    """The undo memory budget: ``$LSMS_UNDO_BUDGET_MB`` if set to a positive number, else 256 MB."""
    import os

    from lsms_viewer.state.history import DEFAULT_BUDGET_BYTES

    try:
        mb = float(os.environ.get("LSMS_UNDO_BUDGET_MB", ""))
    except ValueError:
        return DEFAULT_BUDGET_BYTES
    return int(mb * 1024 * 1024) if mb > 0 else DEFAULT_BUDGET_BYTES


RADIUS_STEPS_MM = (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100)


class EditingPanel(QWidget):
    """Brush size, threshold limit and piece options, plus the one-shot slice operations."""

    def __init__(self, controller: EditingController, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        settings = controller.context.settings

        self.radius = QDoubleSpinBox()
        self.radius.setRange(MIN_RADIUS_MM, MAX_RADIUS_MM)
        self.radius.setDecimals(1)
        self.radius.setSingleStep(0.5)
        self.radius.setSuffix(" mm")
        self.radius.setValue(settings.radius_mm)
        self.radius.setToolTip("Brush and eraser radius in millimetres ([ and ] change it)")
        self.radius.valueChanged.connect(self._on_radius)

        self.threshold = QCheckBox("Limit to HU range")
        self.threshold.setToolTip("Brush and fill only touch voxels whose HU lies in the range")
        self.threshold.toggled.connect(self._on_threshold)
        self.hu_low, self.hu_high = QDoubleSpinBox(), QDoubleSpinBox()
        for box in (self.hu_low, self.hu_high):
            box.setRange(-3000, 5000)
            box.setDecimals(0)
            box.setSingleStep(10)
            box.setSuffix(" HU")
            box.valueChanged.connect(self._on_hu_range)
        self.from_window = QPushButton("From window")
        self.from_window.setToolTip("Use the current display window (level ± width/2)")
        self.from_window.clicked.connect(self.use_window)
        hu_row = QHBoxLayout()
        hu_row.addWidget(self.hu_low)
        hu_row.addWidget(QLabel("to"))
        hu_row.addWidget(self.hu_high)
        hu_row.addWidget(self.from_window)

        self.three_d = QCheckBox("Pieces are 3D lesions (else: this slice)")
        self.three_d.setToolTip("Keep/remove piece works on the connected lesion through all slices")
        self.three_d.toggled.connect(lambda on: setattr(settings, "three_d", bool(on)))

        brush_box = QGroupBox("Brush")
        form = QFormLayout(brush_box)
        form.addRow("Radius", self.radius)
        form.addRow(self.threshold)
        form.addRow(hu_row)
        form.addRow(self.three_d)

        ops = QGroupBox("Active label")
        ops_layout = QVBoxLayout(ops)
        for action in controller.slice_actions:
            button = QPushButton(action.text().replace("&", ""))
            button.setToolTip(action.toolTip())
            button.clicked.connect(action.trigger)
            ops_layout.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(brush_box)
        layout.addWidget(ops)
        layout.addStretch(1)
        # The range follows the display window until the user types one (then "From window" re-links it).
        self.follow_window = True
        self.use_window()
        self._on_threshold(False)
        controller.window.slice_view.window_changed.connect(self._on_window_changed)

    def use_window(self) -> None:
        low, high = self.controller.window.slice_view.window.levels
        for box, value in ((self.hu_low, low), (self.hu_high, high)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.follow_window = True
        self._store_range()

    def _on_window_changed(self, _window) -> None:
        if self.follow_window:
            self.use_window()

    def _on_radius(self, value: float) -> None:
        self.controller.context.settings.radius_mm = float(value)

    def _on_threshold(self, on: bool) -> None:
        self.controller.context.settings.threshold = bool(on)
        for widget in (self.hu_low, self.hu_high, self.from_window):
            widget.setEnabled(bool(on))

    def _on_hu_range(self, *_args) -> None:
        self.follow_window = False
        self._store_range()

    def _store_range(self) -> None:
        low, high = sorted((self.hu_low.value(), self.hu_high.value()))
        self.controller.context.settings.hu_range = (float(low), float(high))


class RestoreBanner(QWidget):
    """A yes/no question inside the window (restore saved work?), answered with two buttons."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.yes_button = QPushButton("Restore")
        self.no_button = QPushButton("Keep aside")
        self.yes_button.clicked.connect(lambda: self.answer(True))
        self.no_button.clicked.connect(lambda: self.answer(False))
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.yes_button)
        layout.addWidget(self.no_button)
        self.setStyleSheet("background: #24425c; color: #e8f1f8;")
        self._callback = None

    def set_question(self, title: str, text: str, callback) -> None:
        self.label.setText(f"<b>{title}</b><br>{text}".replace("\n\n", "<br>").replace("\n", "<br>"))
        self._callback = callback

    def text(self) -> str:
        return self.label.text()

    def answer(self, yes: bool) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback(bool(yes))


class EditingController(QObject):
    """Owns the undo history, the tools and their actions for one main window."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.history = UndoHistory(self.document, budget_bytes=undo_budget_bytes())
        self.context = EditContext(self.document, self.history, EditSettings(), self.message)
        self.tools = {
            "brush": BrushTool(self.context),
            "eraser": BrushTool(self.context, erase=True),
            "fill": FillTool(self.context),
            "keep": PieceTool(self.context, keep=True),
            "remove": PieceTool(self.context, keep=False),
        }
        self._build_actions()
        self.panel = EditingPanel(self)
        self.dock = window.add_dock(self.panel, "Editing", Qt.DockWidgetArea.RightDockWidgetArea)
        self.measure_panel = MeasurePanel(self.document, window.slice_view)
        self.measure_dock = window.add_dock(self.measure_panel, "Measurements", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.annotation_panel = AnnotationPanel(self.document, window.slice_view, window_of=self._window_levels)
        self.annotation_dock = window.add_dock(self.annotation_panel, "Annotation", Qt.DockWidgetArea.RightDockWidgetArea)
        self.annotation_mode_action = self.annotation_dock.toggleViewAction()
        self.annotation_mode_action.setText("&Annotation mode")
        self.annotation_mode_action.setShortcut(QKeySequence("Ctrl+Shift+A"))
        if hasattr(window, "tabifyDockWidget"):
            window.tabifyDockWidget(self.dock, self.annotation_dock)
        self.annotation_dock.hide()  # annotation mode is off until asked for
        self.annotation_mode_action.toggled.connect(lambda on: on and self.annotation_dock.raise_())
        window.menus["tools"].addSeparator()
        window.menus["tools"].addAction(self.annotation_mode_action)
        self.history.changed.connect(self._update_actions)
        self.document.events.volume_changed.connect(self._update_actions)
        self.document.events.active_label_changed.connect(lambda _label: self._update_actions())
        self.document.events.label_removed.connect(lambda _label: self._update_actions())
        applied = getattr(window, "segmentation_applied", None)
        if applied is not None:
            applied.connect(self._on_segmentation_applied)
        self._update_actions()

        # Never lose work: autosave after every step, offer to restore after a crash or on reopening.
        self.autosaver = sessions.Autosaver(self.document, self.history, view_state=self._view_state)
        self._pending_restore: sessions.SessionData | None = None
        self.last_restore: sessions.SessionData | None = None
        self.pending_question: RestoreBanner | None = None
        self.banner: RestoreBanner | None = None
        self.banner_dock = None
        self.document.events.volume_changed.connect(self._on_volume_changed_session)
        window.installEventFilter(self)
        QTimer.singleShot(0, self, self.offer_crash_recovery)

    # -- actions ------------------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        action = make_action(self.window, text, slot, shortcut, tip, checkable)
        self.window.addAction(action)  # shortcuts work wherever the focus is in the window
        self._actions.append(action)
        return action

    def _build_actions(self) -> None:
        w = self.window
        self._actions: list[QAction] = []
        self.undo_action = self._action("&Undo", self.undo, QKeySequence.StandardKey.Undo, "Undo the last edit")
        self.redo_action = self._action("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo what was undone")
        self.fill_holes_action = self._action("Fill &holes on this slice", self.fill_holes_slice, "Ctrl+H",
                                              "Fill the holes of the active label on the current slice")
        self.fill_holes_all_action = self._action("Fill holes on &all slices", self.fill_holes_all,
                                                  tip="Fill the holes of the active label slice by slice")
        self.clear_slice_action = self._action("&Clear slice", self.clear_current_slice, "Ctrl+Backspace",
                                               "Remove the active label from the current slice")
        self.interpolate_action = self._action(
            "&Interpolate between edited slices", self.interpolate, "Ctrl+Shift+I",
            "Fill the slices between the last two slices you drew on (or across the gap at this slice)")
        self.slice_actions = [self.fill_holes_action, self.fill_holes_all_action, self.clear_slice_action,
                              self.interpolate_action]
        edit = w.menus["edit"]
        first = edit.actions()[0] if edit.actions() else None
        edit.insertAction(first, self.undo_action)
        edit.insertAction(first, self.redo_action)
        if first is not None:
            edit.insertSeparator(first)
        edit.addSeparator()
        for action in self.slice_actions:
            edit.addAction(action)

        self.tool_group = QActionGroup(self.window)
        self.tool_group.setExclusive(True)
        specs = [
            ("pan", "Pan", "H", "Left-drag pans (the middle button always pans)"),
            ("brush", "Brush", "B", "Paint the active label (Shift erases; [ ] size)"),
            ("eraser", "Eraser", "E", "Erase the active label"),
            ("fill", "Fill", "F", "Fill the region inside the label's outline on this slice"),
            ("keep", "Keep piece", "K", "Click a piece of the label to keep only it (Ctrl: 3D)"),
            ("remove", "Remove piece", "Shift+K", "Click a piece of the label to remove it (Ctrl: 3D)"),
        ]
        self.tool_actions: dict[str, QAction] = {}
        w.toolbar.addSeparator()
        w.toolbar.addAction(self.undo_action)
        w.toolbar.addAction(self.redo_action)
        w.toolbar.addSeparator()
        tools_menu = w.menus["tools"]
        tools_menu.addSeparator()
        for key, text, shortcut, tip in specs:
            action = self._action(text, lambda _=False, k=key: self.set_tool(k), shortcut,
                                  f"{text} ({shortcut}): {tip}", checkable=True)
            self.tool_group.addAction(action)
            w.toolbar.addAction(action)
            tools_menu.addAction(action)
            self.tool_actions[key] = action
        self.tool_actions["pan"].setChecked(True)
        self.smaller_action = self._action("Smaller brush", lambda: self.step_radius(-1), "[")
        self.larger_action = self._action("Larger brush", lambda: self.step_radius(1), "]")
        self._drop_clashing_shortcuts()

    def _drop_clashing_shortcuts(self) -> None:
        """An ambiguous shortcut fires neither action: the window's own actions win over ours."""
        mine = set(self._actions)
        taken = {seq.toString() for a in self.window.findChildren(QAction) if a not in mine for seq in a.shortcuts()}
        self.dropped_shortcuts: list[str] = []
        for action in self._actions:
            keep = [seq for seq in action.shortcuts() if seq.toString() not in taken]
            if len(keep) != len(action.shortcuts()):
                self.dropped_shortcuts += [f"{action.text()}: {seq.toString()}" for seq in action.shortcuts()
                                           if seq not in keep]
                action.setShortcuts(keep)

    def set_tool(self, key: str) -> None:
        """Give the left button to a tool: pan, brush, eraser, fill, keep, remove."""
        self.window.slice_view.set_tool(self.tools.get(key))
        self.tool_actions[key].setChecked(True)

    @property
    def active_tool(self) -> str:
        tool = self.window.slice_view.tool
        return next((k for k, t in self.tools.items() if t is tool), "pan")

    def step_radius(self, direction: int) -> None:
        r = self.context.settings.radius_mm
        if direction > 0:
            bigger = [s for s in RADIUS_STEPS_MM if s > r + 1e-6]
            r = bigger[0] if bigger else MAX_RADIUS_MM
        else:
            smaller = [s for s in RADIUS_STEPS_MM if s < r - 1e-6]
            r = smaller[-1] if smaller else MIN_RADIUS_MM
        self.panel.radius.setValue(r)
        self.message(f"Brush radius {r:g} mm")

    def message(self, text: str) -> None:
        self.window.statusBar().showMessage(text, 5000)

    def _update_actions(self, *_args) -> None:
        h = self.history
        self.undo_action.setEnabled(h.can_undo)
        self.redo_action.setEnabled(h.can_redo)
        self.undo_action.setText(f"&Undo {h.undo_text}" if h.can_undo else "&Undo")
        self.redo_action.setText(f"&Redo {h.redo_text}" if h.can_redo else "&Redo")
        self.undo_action.setIconText("Undo")
        self.redo_action.setIconText("Redo")
        has_label = self.document.active_label is not None
        for action in self.slice_actions:
            action.setEnabled(has_label)
        for action in self.tool_actions.values():
            action.setEnabled(self.document.volume is not None)

    # -- undo ---------------------------------------------------------------------------------------
    def undo(self) -> None:
        what = self.history.undo()
        self.message(f"Undone: {what}" if what else "Nothing to undo")

    def redo(self) -> None:
        what = self.history.redo()
        self.message(f"Redone: {what}" if what else "Nothing to redo")

    def _window_levels(self) -> tuple[float, float]:
        w = self.window.slice_view.window
        return (float(w.width), float(w.level))

    def _on_segmentation_applied(self, label_id: int, _previous) -> None:
        """Keep the model's mask for the export's provenance, and make the whole run one undo step
        (the run, the rename that may follow it, and this bookkeeping)."""
        from lsms_viewer.state.annotation import encode_mask

        if not self.document.has_label(label_id):
            return
        label = self.document.label(label_id)
        meta = dict(label.meta)
        meta["first_model_mask"] = encode_mask(label.mask)
        self.document.update_label(label_id, meta=meta)
        h = self.history
        h.flush()
        steps = h._undo
        run_index = next((i for i in range(len(steps) - 1, -1, -1) if steps[i].description.startswith("model run")), None)
        if run_index is not None and all(label_id in s.label_ids for s in steps[run_index:]):
            h.merge_last(len(steps) - run_index)

    # -- one-shot operations on the active label ------------------------------------------------------
    def _active(self):
        label = self.document.active_label
        if label is None:
            self.message("No active label: select one in the label list")
        return label

    def _apply(self, description: str, make_change) -> bool:
        label = self._active()
        if label is None:
            return False
        try:
            change = make_change(label)
        except EditError as exc:
            self.message(str(exc))
            return False
        if change.empty:
            self.message(f"{description}: nothing to change")
            return False
        with self.history.batch(description):
            self.context.apply(label, change)
        self.message(f"{description}: {change.changed_voxels:,} voxels")
        return True

    def fill_holes_slice(self) -> bool:
        z = self.window.current_slice()
        return self._apply("fill holes", lambda label: fill_holes(label.mask, z=z))

    def fill_holes_all(self) -> bool:
        return self._apply("fill holes (all slices)", lambda label: fill_holes(label.mask))

    def clear_current_slice(self) -> bool:
        z = self.window.current_slice()
        return self._apply("clear slice", lambda label: clear_slice(label.mask, z))

    def interpolation_keys(self, label) -> tuple[int, int] | None:
        """The two key slices to interpolate between: the last two slices drawn by hand (at least one
        slice apart), else the nearest slices holding the label on both sides of the current one."""
        edited = [z for z in self.context.edited_slices.get(label.id, []) if label.mask[z].any()]
        if len(edited) >= 2:
            a = edited[-1]
            others = [z for z in reversed(edited[:-1]) if abs(z - a) >= 2]
            if others:
                return tuple(sorted((a, others[0])))
        z = self.window.current_slice()
        filled = np.flatnonzero(label.mask.any(axis=(1, 2)))
        below, above = filled[filled < z], filled[filled > z]
        if below.size and above.size:
            return int(below[-1]), int(above[0])
        return None

    def interpolate(self) -> bool:
        label = self._active()
        if label is None:
            return False
        keys = self.interpolation_keys(label)
        if keys is None:
            self.message("Draw the label on two slices (with empty slices between them), then interpolate")
            return False
        sx, sy, _ = self.document.volume.spacing
        done = self._apply(f"interpolate slices {keys[0] + 1}–{keys[1] + 1}",
                           lambda lab: interpolate_between(lab.mask, keys[0], keys[1], (sy, sx)))
        return done


    # -- sessions ---------------------------------------------------------------------------------
    def _view_state(self) -> dict:
        view = self.window.slice_view
        return {"slice": int(view.current_slice), "window": [view.window.width, view.window.level]}

    def ask(self, title: str, text: str, answer) -> RestoreBanner:
        """Ask yes/no in a banner docked at the top of the window; ``answer(bool)`` gets the reply.

        Never a dialog: a restore offer must not block a scripted or headless start, nor steal the
        window's focus and shortcuts while the user already works.
        """
        if self.banner is None:
            self.banner = RestoreBanner()
            self.banner_dock = self.window.add_dock(self.banner, "Saved work", Qt.DockWidgetArea.TopDockWidgetArea)

        def done(yes: bool) -> None:
            self.pending_question = None
            self.banner_dock.hide()
            answer(yes)

        self.banner.set_question(title, text, done)
        self.banner_dock.show()
        self.pending_question = self.banner
        return self.banner

    def eventFilter(self, obj, event) -> bool:
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.autosaver.save(clean_exit=True)
        return False

    def offer_crash_recovery(self) -> None:
        """At start: offer the newest session of a viewer that crashed or was killed."""
        try:
            found = sessions.crashed_sessions(self.autosaver.folder)
        except OSError:
            return
        if not found or self.pending_question is not None:
            return
        data = found[0]
        text = (f"The viewer did not close properly last time. Restore your work?\n\n{data.describe()}"
                f"\n\n“Keep aside” keeps the session file in {data.path.parent}.")
        self.ask("Restore unsaved work", text, lambda yes: self._answer_crash(data, yes))

    def _answer_crash(self, data: sessions.SessionData, yes: bool) -> bool:
        if not yes:
            sessions.set_aside(data.path)
            return False
        source = data.source
        if source is None or not source.exists():
            self.message(f"Cannot reopen the study of the saved session ({source}); open it to get its labels back")
            return False
        # open_path reads in the background: the labels are restored when the volume arrives.
        self._pending_restore = data
        opened = self.window.open_path(source) if hasattr(self.window, "open_path") else False
        if not opened:
            self._pending_restore = None
            self.message(f"Cannot reopen {source}; open it to get its labels back")
        return bool(opened)

    def _on_volume_changed_session(self) -> None:
        data, self._pending_restore = self._pending_restore, None
        if data is not None:
            QTimer.singleShot(0, self, lambda: self.restore(data.path))
        else:
            QTimer.singleShot(0, self, self.offer_session_for_volume)

    def offer_session_for_volume(self) -> None:
        """On opening a study: offer the labels saved in its session, if any."""
        path = self.autosaver.path()
        if path is None or not path.exists() or self.document.labels or self.pending_question is not None:
            return
        try:
            data = sessions.read_session(path, masks=False)
        except sessions.SessionError:
            return
        if not data.header.get("labels") or not sessions.matches(data, self.document.volume):
            return

        def answer(yes: bool) -> None:
            if yes:
                self.restore(path)
            else:
                sessions.set_aside(path)

        self.ask("Restore labels", f"This study has saved work:\n\n{data.describe()}\n\nRestore it?", answer)

    def restore(self, path) -> bool:
        """Replace the labels by those of a session file (the undo history starts afresh)."""
        try:
            data = sessions.read_session(path)
            sessions.restore_labels(self.document, data)
        except sessions.SessionError as exc:
            self.message(str(exc))
            return False
        view = data.header.get("view") or {}
        if "slice" in view:
            self.window.slice_view.set_slice(int(view["slice"]))
        if len(view.get("window") or []) == 2:
            from lsms_viewer.display.windowing import Window

            self.window.slice_view.set_window(Window(float(view["window"][0]), float(view["window"][1])))
        self.history.clear()
        self.autosaver.save()
        self.last_restore = data
        self.message(f"Restored {len(data.labels)} label(s) from {data.path.name}")
        return True


def attach_editing(window) -> EditingController:
    """Add the editing tools to a main window (idempotent); returns the controller."""
    existing = getattr(window, "editing", None)
    if isinstance(existing, EditingController):
        return existing
    controller = EditingController(window)
    window.editing = controller
    return controller

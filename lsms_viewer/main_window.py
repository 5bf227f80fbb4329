"""The main window: slice view, expression bar, label panel, menus, status bar; runs the engine in a worker.

Public surface other parts build on (the editing tools attach through it): ``document``, ``slice_view``,
``label_panel``, ``expression_bar``, ``menus`` (dict: file, edit, view, tools, help), ``toolbar``,
``statusBar()``, ``add_dock(widget, title, area)``, ``current_slice()``, and the signal
``segmentation_applied(label_id, previous_mask_or_None)`` emitted after a model run changed the Document
(``None`` = a new label), which is what an undo history records for a run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from lsms_core.errors import LSMSError
from lsms_viewer import settings as user_settings
from lsms_viewer.actions import make_action
from lsms_viewer.display.windowing import PRESETS, preset
from lsms_viewer.state.document import Document, RunInfo
from lsms_viewer.views.expression_bar import ExpressionBar
from lsms_viewer.views.label_panel import LabelPanel
from lsms_viewer.views.slice_view import CursorInfo, SliceView
from lsms_viewer.workers import EngineHost, SegmentationRun, SegmentRequest, SegmentResult, TaskRun

APP_TITLE = "LSMS Viewer"
OPEN_FILTER = "CT volumes (*.nii *.nii.gz *.nrrd *.mha *.mhd *.dcm);;All files (*)"


def patient_position_text(lps: tuple[float, float, float]) -> str:
    """LPS millimetres as radiologists read them: '12.3 R  45.6 A  7.8 S' (no sign conventions to guess)."""
    parts = []
    for value, (pos, neg) in zip(lps, (("L", "R"), ("P", "A"), ("S", "I")), strict=True):
        parts.append(f"{abs(value):.1f} {pos if value >= 0 else neg}")
    return "  ".join(parts)


class MainWindow(QMainWindow):
    segmentation_applied = Signal(int, object)  # label id, previous mask (None = new label)
    segmentation_started = Signal()
    segmentation_done = Signal(str)  # "finished", "failed" or "cancelled": always emitted once per run
    volume_opened = Signal()
    open_failed = Signal(str, str)
    load_done = Signal()  # a background read ended (whatever the outcome)

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto",
                 threshold: float | None = None, engine: EngineHost | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.document = Document()
        self._one_region = user_settings.keep_one_region()
        self.engine: EngineHost | None = engine
        if self.engine is None and checkpoint is not None:
            self.engine = EngineHost(checkpoint, device=device, threshold=threshold, one_region=self._one_region)
        elif self.engine is not None:
            self.engine.one_region = self._one_region
        self._device_choice = device
        self._threshold = threshold
        self._run: SegmentationRun | None = None
        self._load: TaskRun | None = None
        # (SeriesChoice, parent) -> UID or None; None = the standard dialog. Scripts and tests set it.
        self.series_chooser = None
        self._pending_outcome = "finished"
        self._deferred_result: SegmentResult | None = None  # a result waiting for a brush stroke to end
        self._thread_done_waiting = False
        self._closing_by_user = False
        self._running_text = ""
        self.last_error: tuple[str, str] | None = None  # (title, message) of the last error shown
        self._message_boxes: list[QMessageBox] = []

        self.slice_view = SliceView(self.document)
        self.expression_bar = ExpressionBar()
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("background: #5a4a14; color: #fbe9b0; padding: 5px 10px;")
        self.notice.hide()
        self._notices: dict[str, str] = {}
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.notice)
        layout.addWidget(self.slice_view, 1)
        layout.addWidget(self.expression_bar)
        self.setCentralWidget(central)

        # Side panels run the full height; a bottom panel (measurements) sits under the image only.
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self._docks_sized = False
        self.label_panel = LabelPanel(self.document)
        self.label_dock = self.add_dock(self.label_panel, "Labels", Qt.DockWidgetArea.RightDockWidgetArea)

        self.cursor_label = QLabel("")
        self.slice_label = QLabel("")
        self.device_label = QLabel("")
        for widget in (self.cursor_label, self.slice_label, self.device_label):
            widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.cursor_label.font()
        font.setFamily("monospace")
        self.cursor_label.setFont(font)
        self.statusBar().addWidget(self.cursor_label, 1)
        self.load_progress = QProgressBar()
        self.load_progress.setMaximumWidth(160)
        self.load_progress.setTextVisible(False)
        self.load_progress.hide()
        self.statusBar().addPermanentWidget(self.load_progress)
        self.statusBar().addPermanentWidget(self.slice_label)
        self.statusBar().addPermanentWidget(self.device_label)

        self.menus: dict[str, object] = {}
        self.toolbar = QToolBar("Main")
        self.toolbar.setObjectName("main-toolbar")
        self.toolbar.setMovable(False)
        self.addToolBar(self.toolbar)
        self._build_actions()

        self.slice_view.cursor_moved.connect(self._show_cursor)
        self.slice_view.slice_changed.connect(self._show_slice)
        self.slice_view.window_changed.connect(self._window_changed)
        self.expression_bar.run_requested.connect(self.segment)
        self.expression_bar.cancel_requested.connect(self.cancel_segmentation)
        self.label_panel.rerun_requested.connect(self._prepare_rerun)
        self.label_panel.overlay_mode_changed.connect(self.set_overlay_mode)
        self.document.events.label_removed.connect(self._on_label_removed)
        self.document.events.label_added.connect(lambda _label: self._update_actions())
        self.document.events.volume_changed.connect(self._on_volume_changed)

        self.set_overlay_mode(user_settings.overlay_mode(), remember=False)
        self.apply_preset(user_settings.default_preset())
        self._update_device_label()
        self._update_actions()
        self.resize(1280, 860)
        self._attach_extensions()
        self._restore_layout()  # after every panel exists, so their sizes and places come back too

    # -- integration surface -----------------------------------------------------------------------
    def add_dock(self, widget: QWidget, title: str,
                 area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        if "view" in getattr(self, "menus", {}):
            self.menus["view"].addAction(dock.toggleViewAction())
        return dock

    def current_slice(self) -> int:
        return self.slice_view.current_slice

    def _attach_extensions(self) -> None:
        """The editing, measuring and annotation tools (issue 5) build on the surface above."""
        from lsms_viewer.editing_ui import attach_editing

        attach_editing(self)

    # -- actions and menus -------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        return make_action(self, text, slot, shortcut, tip, checkable)

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        edit_menu = bar.addMenu("&Edit")
        view_menu = bar.addMenu("&View")
        tools_menu = bar.addMenu("&Tools")
        help_menu = bar.addMenu("&Help")
        self.menus = {"file": file_menu, "edit": edit_menu, "view": view_menu, "tools": tools_menu,
                      "help": help_menu}

        self.open_action = self._action("&Open file…", self.open_file_dialog, QKeySequence.StandardKey.Open,
                                        "Open a NIfTI, NRRD, MetaImage or DICOM file")
        self.open_folder_action = self._action("Open DICOM &folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                               "Open a folder of DICOM files (searched recursively)")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.import_action = self._action("&Import labels…", self.import_labels_dialog, "Ctrl+I",
                                          "Add the labels of a mask file on this CT's grid (e.g. an earlier export)")
        self.export_action = self._action("&Export labels…", self.export_dialog, "Ctrl+E",
                                          "Save all labels as one multi-label NIfTI with a JSON sidecar")
        self.export_each_action = self._action("Export labels as &separate files…", self.export_each_dialog,
                                               "Ctrl+Shift+E", "Save one NIfTI mask per label into a folder")
        self.quit_action = self._action("&Quit", self.quit_by_user, QKeySequence.StandardKey.Quit)
        for action in (self.open_action, self.open_folder_action):
            file_menu.addAction(action)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.import_action)
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.export_each_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self._rebuild_recent_menu()

        self.delete_label_action = self._action("&Delete label", self.label_panel.delete_selected,
                                                QKeySequence.StandardKey.Delete, "Delete the selected label")
        self.delete_label_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.label_panel.addAction(self.delete_label_action)
        edit_menu.addAction(self.delete_label_action)

        # Window presets: 1..5 as in the issue; QLineEdit takes printable keys first, so typing "1" in
        # the expression box never changes the window.
        self.preset_menu = view_menu.addMenu("&Window preset")
        self.preset_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for p in PRESETS:
            action = self._action(f"{p.title}  (W{p.window.width:.0f} / L{p.window.level:.0f})",
                                  lambda _=False, key=p.key: self.apply_preset(key), p.shortcut,
                                  f"Window {p.title}", checkable=True)
            group.addAction(action)
            self.preset_menu.addAction(action)
            self.preset_actions[p.key] = action
        self.preset_menu.addSeparator()
        self.default_preset_action = self._action("Use current preset as default", self.save_default_preset,
                                                  tip="Open every study with this window")
        self.preset_menu.addAction(self.default_preset_action)
        view_menu.addSeparator()
        self.overlay_toggle_action = self._action("&Outline labels", self._toggle_overlay, "O",
                                                  "Show labels as outlines instead of a filled tint",
                                                  checkable=True)
        view_menu.addAction(self.overlay_toggle_action)
        self.reset_view_action = self._action("&Reset view", self.slice_view.reset_view, "Ctrl+0",
                                              "Fit the slice to the window")
        self.zoom_in_action = self._action("Zoom &in", lambda: self.slice_view.zoom(0.8), QKeySequence.StandardKey.ZoomIn)
        self.zoom_out_action = self._action("Zoom &out", lambda: self.slice_view.zoom(1.25), QKeySequence.StandardKey.ZoomOut)
        self.next_slice_action = self._action("Next slice", lambda: self.slice_view.step(1), "Ctrl+Down")
        self.prev_slice_action = self._action("Previous slice", lambda: self.slice_view.step(-1), "Ctrl+Up")
        for action in (self.reset_view_action, self.zoom_in_action, self.zoom_out_action,
                       self.prev_slice_action, self.next_slice_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.label_dock.toggleViewAction())

        self.focus_expression_action = self._action("&Segment by words…", self.focus_expression, "Ctrl+L",
                                                    "Type an expression and press Enter")
        self.cancel_action = self._action("&Cancel segmentation", self.cancel_segmentation, "Esc")
        self.checkpoint_action = self._action("Load &checkpoint…", self.checkpoint_dialog,
                                              tip="Use another model checkpoint folder")
        for action in (self.focus_expression_action, self.cancel_action):
            tools_menu.addAction(action)
        tools_menu.addSeparator()
        tools_menu.addAction(self.checkpoint_action)
        self.threshold_action = self._action("Detection &threshold…", self.threshold_dialog,
                                             tip="Probability above which a voxel belongs to the lesion")
        tools_menu.addAction(self.threshold_action)
        self.one_region_action = self._action(
            "Keep only the &referred region", self.set_one_region,
            tip="The words name one lesion: keep the connected region the model is surest of. "
                "Off: keep every region above the threshold", checkable=True)
        self.one_region_action.setChecked(self._one_region)
        tools_menu.addAction(self.one_region_action)
        self.device_menu = tools_menu.addMenu("&Device")
        self.device_actions: dict[str, QAction] = {}
        device_group = QActionGroup(self)
        for key, title in (("auto", "Automatic (GPU when present)"), ("cpu", "CPU"), ("cuda", "CUDA GPU"),
                           ("mps", "Apple GPU (MPS)")):
            action = self._action(title, lambda _=False, k=key: self.set_device(k), checkable=True)
            device_group.addAction(action)
            self.device_menu.addAction(action)
            self.device_actions[key] = action
        if self._device_choice in self.device_actions:
            self.device_actions[self._device_choice].setChecked(True)
        tools_menu.addSeparator()

        help_menu.addAction(self._action("&Keyboard and mouse", self.show_shortcuts, QKeySequence.StandardKey.HelpContents))
        help_menu.addAction(self._action("&About LSMS Viewer", self.show_about))
        help_menu.addAction(self._action("LSMS &paper (arXiv 2408.17347)", lambda: QDesktopServices.openUrl(
            QUrl("https://arxiv.org/abs/2408.17347"))))

        for action in (self.open_action, self.export_action):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        for key in ("abdomen", "liver", "lung", "bone", "brain"):
            action = self.preset_actions[key]
            action.setIconText(preset(key).title)
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.overlay_toggle_action)
        self.toolbar.addAction(self.reset_view_action)
        self.overlay_toggle_action.setIconText("Outline")
        self.reset_view_action.setIconText("Fit")

    def _update_actions(self) -> None:
        has_volume = self.document.volume is not None
        has_labels = has_volume and bool(self.document.labels)
        for action in (self.export_action, self.export_each_action):
            action.setEnabled(has_labels)
        for action in (self.reset_view_action, self.zoom_in_action, self.zoom_out_action,
                       self.next_slice_action, self.prev_slice_action, self.focus_expression_action,
                       self.import_action):
            action.setEnabled(has_volume)
        self.cancel_action.setEnabled(self._run is not None or self._load is not None)
        for action in (self.open_action, self.open_folder_action):
            action.setEnabled(self._load is None)
        can_run = has_volume and self.engine is not None and self._run is None
        self.expression_bar.run_button.setEnabled(can_run)
        if self.engine is None:
            why = "No model loaded: Tools ▸ Load checkpoint…, or start with --checkpoint DIR"
        elif not has_volume:
            why = "Open a study first"
        elif self._run is not None:
            why = "A segmentation is running"
        else:
            why = "Run the model on the chosen slices (Enter)"
        self.expression_bar.run_button.setToolTip(why)
        self.expression_bar.edit.setEnabled(has_volume)

    # -- opening -----------------------------------------------------------------------------------
    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a CT volume", self._last_folder(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a DICOM folder", self._last_folder())
        if path:
            self.open_path(path)

    def _last_folder(self) -> str:
        recent = user_settings.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def open_path(self, path: str | Path, series: str | None = None) -> bool:
        """Read a DICOM folder/file or a NIfTI/NRRD/MHA file in the background.

        Returns False if a read is already running. Emits ``volume_opened`` on success and
        ``open_failed(title, message)`` on failure (also shown as a dialog); the open study and its
        labels stay untouched until the new volume is complete.
        """
        from lsms_viewer.opening import read_study

        if self._load is not None:
            self.statusBar().showMessage("Still reading the previous study…", 5000)
            return False
        path = Path(path)
        run = TaskRun(lambda progress, cancel: read_study(path, series, progress, cancel),
                      "Cannot open this study", self)
        run.context = path
        # Bound methods of this QObject, never lambdas: PySide then queues the calls into the GUI thread
        # (a lambda would run in the worker's thread and touch widgets from there).
        run.worker.progress.connect(self._load_progress)
        run.worker.finished.connect(self._on_loaded)
        run.worker.failed.connect(self._on_load_failed)
        run.worker.cancelled.connect(self._on_load_cancelled)
        run.thread.finished.connect(self._on_load_thread_finished)
        self._load = run
        self.load_progress.setRange(0, 0)
        self.load_progress.show()
        self.statusBar().showMessage(f"Reading {path.name}…")
        QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        self._update_actions()
        run.start()
        return True

    def is_loading(self) -> bool:
        return self._load is not None

    def _load_progress(self, done: int, total: int) -> None:
        self.load_progress.setRange(0, max(total, 1))
        self.load_progress.setValue(done)

    def _on_load_cancelled(self, why: str) -> None:
        self.statusBar().showMessage(f"Opening cancelled ({why}).", 6000)

    def _on_loaded(self, result) -> None:
        from lsms_viewer.opening import SeriesChoice, ask_series

        path = self._load.context

        if isinstance(result, SeriesChoice):
            # Ask after this read's thread is done, so the next read can start.
            QTimer.singleShot(0, lambda: self._choose_series_then_open(result, self.series_chooser or ask_series))
            return
        self.statusBar().clearMessage()
        if not self.set_volume(result):
            return
        user_settings.add_recent_file(path)
        self._rebuild_recent_menu()
        if result.warnings:
            self.show_notice("Loaded with warnings:\n• " + "\n• ".join(result.warnings), key="study")

    def _choose_series_then_open(self, choice, ask) -> None:
        if self._load is not None:  # the previous thread is still winding down
            QTimer.singleShot(20, lambda: self._choose_series_then_open(choice, ask))
            return
        uid = ask(choice, self)
        if uid is not None:
            self.open_path(choice.path, series=uid)

    def _on_load_failed(self, title: str, message: str) -> None:
        self.statusBar().clearMessage()
        path = self._load.context if self._load is not None else None
        if path is not None and not Path(path).exists():
            user_settings.remove_recent_file(path)  # moved or deleted: stop offering it
            self._rebuild_recent_menu()
        self.show_error(title, message)
        self.open_failed.emit(title, message)

    def _on_load_thread_finished(self) -> None:
        self._load = None
        self.load_progress.hide()
        QApplication.restoreOverrideCursor()
        self._update_actions()
        self.load_done.emit()

    def import_labels(self, path: str | Path) -> bool:
        """Add the labels of a mask file (e.g. one exported earlier) that lies on the open CT's grid."""
        from lsms_viewer.opening import read_label_file

        if self.document.volume is None:
            self.show_error("Cannot import labels", "Open the CT they belong to first.")
            return False
        try:
            imported = read_label_file(path, self.document.volume)
        except LSMSError as exc:
            self.show_error("Cannot import labels", f"{exc.what}\n\n{exc.why}")
            return False
        for item in imported:
            self.document.add_label(item.mask, expression=item.expression, name=item.name, color=item.color,
                                    meta={"imported_from": str(path), "value_in_file": item.value})
        self.statusBar().showMessage(f"Imported {len(imported)} label(s) from {Path(path).name}.", 8000)
        return True

    def import_labels_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import labels", self._last_folder(),
                                              "Label masks (*.nii *.nii.gz *.nrrd *.mha *.mhd);;All files (*)")
        if path:
            self.import_labels(path)

    def set_volume(self, volume) -> bool:
        """Show ``volume`` (an lsms_core Volume) in place of the open study.

        The previous study's labels are saved in its session first (reopening it offers them back); if
        that save fails the switch is refused, so no labels are ever dropped unsaved. Returns whether the
        volume is now shown.
        """
        previous, count = self.document.volume, len(self.document.labels)
        editing = getattr(self, "editing", None)
        if previous is not None and previous is not volume and count and editing is not None:
            if editing.autosaver.save() is None:
                self.show_error("The open study's labels are not saved",
                                f"{editing.autosaver.last_error or 'autosave is off'}\n\nExport the labels "
                                "(File ▸ Export labels) or delete them, then open the other study again.")
                return False
            old = previous.source.name if getattr(previous, "source", None) else "the previous study"
            self.statusBar().showMessage(f"{count} label(s) of {old} saved in its session: reopening it "
                                         "offers them back.", 15000)
        if self._run is not None:
            self.cancel_segmentation()
        self.expression_bar.clear_rerun()
        self.clear_notice("study")
        self.document.set_volume(volume)
        return True

    def _on_volume_changed(self) -> None:
        volume = self.document.volume
        name = volume.source.name if getattr(volume, "source", None) else (volume.meta or {}).get(
            "series_description", "untitled")
        self.setWindowTitle(f"{name} — {APP_TITLE}")
        self.expression_bar.set_slice_count(volume.shape[0], self.slice_view.current_slice)
        self._show_slice(self.slice_view.current_slice)
        self._update_actions()
        self.slice_view.canvas.setFocus()
        self.volume_opened.emit()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = user_settings.recent_files()
        for path in files:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(files))

    def _clear_recent(self) -> None:
        user_settings.clear_recent_files()
        self._rebuild_recent_menu()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            # Let the drop finish before a possibly long load (the source app waits for it otherwise).
            QTimer.singleShot(0, lambda: self.open_path(paths[0]))

    # -- display -----------------------------------------------------------------------------------
    def apply_preset(self, key: str) -> None:
        p = preset(key)
        self.slice_view.set_window(p.window)

    def save_default_preset(self) -> None:
        from lsms_viewer.display.windowing import matching_preset

        p = matching_preset(self.slice_view.window)
        if p is None:
            self.statusBar().showMessage("The current window is not a preset; choose one first (1–5).", 6000)
            return
        user_settings.set_default_preset(p.key)
        self.statusBar().showMessage(f"{p.title} window is now the default for every study.", 6000)

    def _window_changed(self, window) -> None:
        from lsms_viewer.display.windowing import matching_preset

        p = matching_preset(window)
        for key, action in self.preset_actions.items():
            action.setChecked(p is not None and p.key == key)

    def set_overlay_mode(self, mode: str, remember: bool = True) -> None:
        self.slice_view.set_overlay_mode(mode)
        self.label_panel.set_overlay_mode(mode)
        self.overlay_toggle_action.setChecked(mode == "outline")
        if remember and mode != user_settings.overlay_mode():
            user_settings.set_overlay_mode(mode)

    def _toggle_overlay(self) -> None:
        self.set_overlay_mode("outline" if self.slice_view.overlay_mode == "fill" else "fill")

    def show_notice(self, text: str, key: str = "general") -> None:
        """A banner above the image; one line per ``key`` ("study": load warnings, "model", "demo")."""
        if text:
            self._notices[key] = text
        else:
            self._notices.pop(key, None)
        self.notice.setText("\n".join(self._notices.values()))
        self.notice.setVisible(bool(self._notices))

    def clear_notice(self, key: str) -> None:
        self.show_notice("", key)

    def _show_cursor(self, info: CursorInfo | None) -> None:
        if info is None:
            self.cursor_label.setText("")
            return
        self.cursor_label.setText(
            f"{info.hu:7.0f} HU   {patient_position_text(info.lps)} mm   voxel ({info.col}, {info.row}, {info.slice_index})"
        )

    def _show_slice(self, k: int) -> None:
        volume = self.document.volume
        if volume is None:
            self.slice_label.setText("")
            return
        z = float(volume.index_to_world((0, 0, k))[2])
        self.slice_label.setText(f"Slice {k + 1} / {volume.shape[0]} · z {z:+.1f} mm")

    def _update_device_label(self) -> None:
        if self.engine is None:
            self.device_label.setText("no model loaded")
            self.device_label.setToolTip("Tools ▸ Load checkpoint… or start with --checkpoint DIR")
        else:
            self.device_label.setText(self.engine.describe())
            self.device_label.setToolTip(str(self.engine.checkpoint))

    # -- segmentation --------------------------------------------------------------------------------
    def focus_expression(self) -> None:
        self.expression_bar.edit.setFocus()
        self.expression_bar.edit.selectAll()

    def scope_range(self, scope: str) -> tuple[int, int]:
        volume = self.document.volume
        k = self.slice_view.current_slice
        if scope == "slice":
            return k, k + 1
        if scope == "range":
            return self.expression_bar.slice_range()
        if scope == "volume":
            return 0, volume.shape[0]
        raise ValueError(f"unknown scope {scope!r}")

    def segment(self, expression: str, scope: str = "slice") -> bool:
        """Start a run in the worker thread. Returns False (with a message) when it cannot start."""
        if self.document.volume is None:
            self.expression_bar.show_message("Open a study first.", error=True)
            return False
        if self.engine is None:
            self.show_error("No model loaded", "Segmentation needs a checkpoint: use Tools ▸ Load checkpoint… "
                            "or start the viewer with --checkpoint DIR (or --demo).")
            return False
        if self._run is not None:
            self.expression_bar.show_message("A segmentation is already running; wait or press Cancel.")
            return False
        start, stop = self.scope_range(scope)
        label_id = self.expression_bar.rerun_label_id
        if label_id is not None and not self.document.has_label(label_id):
            self.expression_bar.clear_rerun()
            label_id = None
        request = SegmentRequest(self.document.volume, start, stop, expression, label_id)
        run = SegmentationRun(self.engine, request, self)
        worker = run.worker
        worker.loading.connect(self._on_model_loading)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        run.thread.finished.connect(self._on_thread_finished)
        self._run = run
        count = stop - start
        self.expression_bar.set_busy(True, count, cancellable=count > 1)
        where = f"slice {start + 1}" if count == 1 else f"slices {start + 1}–{stop}"
        self._running_text = f"Segmenting “{expression}” on {where}…"
        self.expression_bar.show_message(self._running_text)
        self._update_actions()
        self.segmentation_started.emit()
        run.start()
        return True

    def _on_progress(self, done: int, total: int) -> None:
        if self.expression_bar.progress.maximum() == 0:  # first batch: the model is loaded now
            self.expression_bar.show_message(self._running_text)
            self._update_device_label()
        self.expression_bar.set_progress(done, total)

    def _on_model_loading(self) -> None:
        self.expression_bar.show_message("Loading the model (first run only)…")

    def is_segmenting(self) -> bool:
        return self._run is not None

    @property
    def current_run(self) -> SegmentationRun | None:
        """The run in progress (its ``worker`` emits progress), or None."""
        return self._run

    def cancel_segmentation(self) -> None:
        """Esc: stop a running read or segmentation (segmentation stops after its current batch)."""
        if self._load is not None:
            self._load.cancel()
        if self._run is not None:
            self._run.cancel()
            self.expression_bar.cancel_button.setEnabled(False)
            self.expression_bar.show_message("Cancelling after the current batch…")

    def _stroke_in_progress(self) -> bool:
        editing = getattr(self, "editing", None)
        return editing is not None and editing.history.in_batch

    def _on_finished(self, result: SegmentResult) -> None:
        if self._stroke_in_progress():
            # Applied when the stroke ends: the run stays its own undo step instead of joining the stroke's.
            self._deferred_result = result
            QTimer.singleShot(20, self, self._apply_deferred_result)
            return
        self._apply_result(result)

    def _apply_deferred_result(self) -> None:
        if self._deferred_result is None:
            return
        if self._stroke_in_progress():
            QTimer.singleShot(20, self, self._apply_deferred_result)
            return
        result, self._deferred_result = self._deferred_result, None
        self._apply_result(result)
        if self._thread_done_waiting:
            self._thread_done_waiting = False
            self._on_thread_finished()

    def _apply_result(self, result: SegmentResult) -> None:
        req = result.request
        volume = self.document.volume
        if volume is not req.volume:
            self.expression_bar.show_message("The study changed during the run; its result was discarded.")
            self._end_run("cancelled")
            return
        mask = np.zeros(volume.shape, bool)
        mask[req.start:req.stop] = result.masks
        run_info = RunInfo(expression=req.expression, seconds=result.seconds, device=result.device,
                           checkpoint=result.checkpoint, trained=result.trained, slices=(req.start, req.stop),
                           notes=list(result.notes))
        if req.label_id is not None and self.document.has_label(req.label_id):
            label = self.document.label(req.label_id)
            renamed = label.name == _short_name(label.expression)  # still the automatic name: follow the words
            previous = self.document.replace_mask(req.label_id, mask, expression=req.expression, run=run_info)
            if renamed and _short_name(req.expression):
                self.document.update_label(req.label_id, name=_short_name(req.expression))
            label_id = req.label_id
            self.expression_bar.clear_rerun()
        else:
            previous = None
            try:
                label_id = self.document.add_label(mask, expression=req.expression, run=run_info).id
            except RuntimeError as exc:  # the study already holds the most labels the overlay can code
                self._end_run("failed")
                self.show_error("Cannot add another label", f"{exc}. Delete or merge labels, then run again.")
                return
        voxels = int(result.masks.sum())
        found = (f"{voxels:,} voxels ({voxels * volume.voxel_volume_ml:.2f} mL)" if voxels
                 else "nothing found on these slices")
        untrained = " · untrained weights: the mask is not meaningful" if not result.trained else ""
        self.expression_bar.show_message(f"“{req.expression}”: {found} in {result.seconds:.1f} s on "
                                         f"{result.device}{untrained}")
        for note in result.notes:
            self.statusBar().showMessage(note, 10000)
        self._end_run("finished")
        self.segmentation_applied.emit(label_id, previous)

    def _on_failed(self, title: str, message: str) -> None:
        self.expression_bar.show_message(f"{title}.", error=True)
        self._end_run("failed")
        self.show_error(title, message)

    def _on_cancelled(self, why: str) -> None:
        self.expression_bar.show_message(f"Cancelled ({why}); existing labels are unchanged.")
        self._end_run("cancelled")

    def _end_run(self, outcome: str) -> None:
        self.expression_bar.set_busy(False)
        self._update_device_label()
        # _run stays set until the thread has really finished, so no second QThread starts beside it.
        self._pending_outcome = outcome

    def _on_thread_finished(self) -> None:
        if self._deferred_result is not None:  # the run is over once its result is applied
            self._thread_done_waiting = True
            return
        self._run = None
        self._update_actions()
        self.segmentation_done.emit(self._pending_outcome)

    def _prepare_rerun(self, label_id: int) -> None:
        label = self.document.label(label_id)
        self.expression_bar.set_rerun(label_id, label.name, label.expression)
        if label.run is not None:
            start, stop = label.run.slices
            if stop - start == 1:
                self.expression_bar.set_scope("slice")
                self.slice_view.set_slice(start)
            elif (start, stop) == (0, self.document.volume.shape[0]):
                self.expression_bar.set_scope("volume")
            else:
                self.expression_bar.set_scope("range")
                self.expression_bar.set_slice_range(start, stop)

    def _on_label_removed(self, label) -> None:
        if self.expression_bar.rerun_label_id == label.id:
            self.expression_bar.clear_rerun()
        self._update_actions()

    def use_checkpoint(self, folder: str | Path) -> None:
        if self._run is not None:
            self.show_error("A segmentation is running", "Wait for it to finish or cancel it first.")
            return
        from lsms_core.checkpoint import read_config, resolve_checkpoint

        try:
            resolved = resolve_checkpoint(folder)
            read_config(resolved)  # a clear error now rather than at the first run
        except LSMSError as exc:
            self.show_error("Cannot use this checkpoint", f"{exc.what}\n\n{exc.why}")
            return
        self.engine = EngineHost(resolved, device=self._device_choice, threshold=self._threshold,
                                 one_region=self._one_region)
        self.clear_notice("model")
        self._update_device_label()
        self._update_actions()
        self.statusBar().showMessage(f"Checkpoint {resolved.name} will load on the next run.", 8000)

    def set_threshold(self, value: float | None) -> None:
        """Probability threshold for the next runs (None = the checkpoint's own)."""
        self._threshold = value
        if self.engine is not None:
            self.engine.threshold = value
        shown = "the checkpoint's default" if value is None else f"{value:.2f}"
        self.statusBar().showMessage(f"Detection threshold: {shown} (applies to the next run).", 8000)

    def set_one_region(self, on: bool) -> None:
        """Keep only the most probable connected region (the referred lesion) from the next run on."""
        self._one_region = bool(on)
        user_settings.set_keep_one_region(self._one_region)
        if self.engine is not None:
            self.engine.one_region = self._one_region
        self.one_region_action.setChecked(self._one_region)  # no signal loop: triggered, not toggled
        what = "only the referred region" if self._one_region else "every region above the threshold"
        self.statusBar().showMessage(f"Segmentation keeps {what} (applies to the next run).", 8000)

    def threshold_dialog(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        current = self._threshold
        if current is None and self.engine is not None and self.engine.segmenter is not None:
            current = float(self.engine.segmenter.config.threshold)
        value, ok = QInputDialog.getDouble(
            self, "Detection threshold", "Probability above which a voxel is part of the lesion\n"
            "(lower finds more, higher finds less):", 0.5 if current is None else current, 0.01, 0.99, 2)
        if ok:
            self.set_threshold(value)

    def set_device(self, device: str) -> None:
        """Run the model on ``device`` from the next run on (the model is reloaded there)."""
        if self._run is not None:
            self.show_error("A segmentation is running", "Wait for it to finish or cancel it first.")
            return
        self._device_choice = device
        if device in getattr(self, "device_actions", {}):
            self.device_actions[device].setChecked(True)
        if self.engine is not None and self.engine.device_choice != device:
            self.engine = EngineHost(self.engine.checkpoint, device=device, threshold=self._threshold,
                                     one_region=self._one_region)
        self._update_device_label()
        self.statusBar().showMessage(f"The model will run on {device} from the next run.", 8000)

    def checkpoint_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a checkpoint folder (model.safetensors + config.json)")
        if folder:
            self.use_checkpoint(folder)

    # -- export ------------------------------------------------------------------------------------
    def export_labels(self, path: str | Path) -> bool:
        from lsms_viewer.state.export import export_multilabel

        return self._export(lambda: export_multilabel(self.document, path))

    def export_labels_separately(self, folder: str | Path, stem: str = "label") -> bool:
        from lsms_viewer.state.export import export_per_label

        return self._export(lambda: export_per_label(self.document, folder, stem))

    def _export(self, do) -> bool:
        try:
            report = do()
        except LSMSError as exc:
            self.show_error("Export failed", f"{exc.what}\n\n{exc.why}")
            return False
        except OSError as exc:
            self.show_error("Export failed", str(exc))
            return False
        self.last_export = report
        self.statusBar().showMessage(report.summary().replace("\n", " "), 15000)
        return True

    def export_dialog(self) -> None:
        from lsms_viewer.state.export import default_export_path

        path, _ = QFileDialog.getSaveFileName(self, "Export labels", str(default_export_path(self.document)),
                                              "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)")
        if path:
            self.export_labels(path)

    def export_each_dialog(self) -> None:
        from lsms_viewer.state.export import default_export_path

        folder = QFileDialog.getExistingDirectory(self, "Export one mask per label into…",
                                                  str(default_export_path(self.document).parent))
        if folder:
            self.export_labels_separately(folder)

    # -- messages ----------------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """A window-modal message that never blocks the caller (tests and workers keep running)."""
        self.last_error = (title, message)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self._message_boxes.remove(b) if b in self._message_boxes else None)
        self._message_boxes.append(box)
        box.open()

    def show_shortcuts(self) -> None:
        text = (
            "<table cellspacing=4>"
            "<tr><td><b>Wheel, ↑/↓, PgUp/PgDn, Home/End</b></td><td>change slice</td></tr>"
            "<tr><td><b>Ctrl+wheel, Ctrl +/−</b></td><td>zoom; Ctrl+0 fits the slice</td></tr>"
            "<tr><td><b>Middle drag / left drag (pan tool)</b></td><td>pan</td></tr>"
            "<tr><td><b>Right drag</b></td><td>window: left/right = width, up/down = level</td></tr>"
            "<tr><td><b>1 – 5</b></td><td>abdomen, liver, lung, bone, brain windows</td></tr>"
            "<tr><td><b>O</b></td><td>filled / outlined labels</td></tr>"
            "<tr><td><b>Ctrl+L, Enter</b></td><td>type an expression, run it; Esc cancels</td></tr>"
            "<tr><td><b>Ctrl+E</b></td><td>export labels as NIfTI</td></tr>"
            "</table>"
        )
        QMessageBox.information(self, "Keyboard and mouse", text)

    def show_about(self) -> None:
        from lsms_core import __version__

        QMessageBox.about(self, "About LSMS Viewer",
                          f"<b>LSMS Viewer {__version__}</b><p>Referring lesion segmentation on CT with the "
                          "LSMS network (arXiv 2408.17347).</p><p>Research software, not for clinical use.</p>")

    # -- lifecycle ---------------------------------------------------------------------------------
    _LAYOUT_VERSION = 1  # bump when panels change so an old saved arrangement is not forced on a new one

    def _restore_layout(self) -> None:
        s = user_settings.settings()
        geometry, state = s.value("window/geometry"), s.value("window/state")
        if isinstance(geometry, (bytes, bytearray)) or geometry is not None and hasattr(geometry, "size"):
            self.restoreGeometry(geometry)
        if state is not None and hasattr(state, "size") and self.restoreState(state, self._LAYOUT_VERSION):
            self._docks_sized = True  # the user's own panel sizes win over the defaults

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._docks_sized:
            self._docks_sized = True
            # The image is the point of the window: panels start narrow and short; users can drag them.
            docks = [d for d in self.findChildren(QDockWidget) if not d.isFloating() and d.isVisible()]
            right = [d for d in docks if self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
            bottom = [d for d in docks if self.dockWidgetArea(d) == Qt.DockWidgetArea.BottomDockWidgetArea]
            if right:
                width = int(min(380, max(260, 0.28 * self.width())))
                self.resizeDocks(right, [width] * len(right), Qt.Orientation.Horizontal)
            if bottom:
                self.resizeDocks(bottom, [150] * len(bottom), Qt.Orientation.Vertical)

    def closeEvent(self, event) -> None:
        if self._load is not None:
            self._load.cancel()
            self._load.wait(60000)
        if self._run is not None:
            self._run.cancel()
            self._run.wait(60000)
        # Only a close the user asked for (window button, File > Quit) stores the layout: windows closed
        # by scripts and tests must not rearrange the user's panels for the next start.
        if event.spontaneous() or self._closing_by_user:
            s: QSettings = user_settings.settings()
            s.setValue("window/geometry", self.saveGeometry())
            s.setValue("window/state", self.saveState(self._LAYOUT_VERSION))
            s.sync()
        super().closeEvent(event)

    def quit_by_user(self) -> None:
        self._closing_by_user = True
        try:
            self.close()
        finally:
            self._closing_by_user = False



def _short_name(expression: str) -> str:
    words = expression.split()
    return " ".join(words[:6]) + ("…" if len(words) > 6 else "")

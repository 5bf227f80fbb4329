"""Opening studies and importing labels: File ▸ Open…, Open DICOM folder…, Open recent, Import labels…,
drag-and-drop, and the switch from one study to another.

A study is read in a worker thread (``lsms_viewer.state.study_files.read_study``); the open study and its
labels stay untouched until the new volume is complete. Before another study replaces the open one, the
open study's labels are saved in its session (reopening it offers them back); when that save fails, the
switch is refused with the reason, so no label is ever dropped unsaved.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QWidget

from lsms_core.errors import LSMSError
from lsms_viewer import settings as user_settings
from lsms_viewer.actions import make_action
from lsms_viewer.main_window import MainWindow
from lsms_viewer.state.session import Autosaver
from lsms_viewer.state.study_files import SeriesChoice, read_label_file, read_study
from lsms_viewer.workers import TaskRun

OPEN_FILTER = "CT volumes (*.nii *.nii.gz *.nrrd *.mha *.mhd *.dcm);;All files (*)"


def ask_series(choice: SeriesChoice, parent: QWidget | None = None) -> str | None:
    """The UID the user picked in a dialog, or None when they cancelled."""
    items = [s.summary() for s in choice.series]
    item, ok = QInputDialog.getItem(parent, "Choose a series",
                                    f"{choice.path.name} holds {len(items)} image series:", items, 0, False)
    if not ok:
        return None
    return choice.series[items.index(item)].uid


class OpeningController(QObject):
    volume_opened = Signal()  # a new volume is shown (every part listening to the document has updated)
    open_failed = Signal(str, str)  # title, message (also shown as a dialog)
    load_done = Signal()  # a background read ended (whatever the outcome)
    busy_changed = Signal()  # a read started or ended

    def __init__(self, window: MainWindow, autosaver: Autosaver):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.autosaver = autosaver
        self._load: TaskRun | None = None
        self._path: Path | None = None  # the file or folder being read
        # (SeriesChoice, parent) -> UID or None; None = the standard dialog. Scripts and tests set it.
        self.series_chooser = None

        self.open_action = make_action(window, "&Open file…", self.open_file_dialog, QKeySequence.StandardKey.Open,
                                       "Open a NIfTI, NRRD, MetaImage or DICOM file")
        self.open_folder_action = make_action(window, "Open DICOM &folder…", self.open_folder_dialog,
                                              "Ctrl+Shift+O", "Open a folder of DICOM files (searched recursively)")
        self.import_action = make_action(window, "&Import labels…", self.import_labels_dialog, "Ctrl+I",
                                         "Add the labels of a mask file on this CT's grid (e.g. an earlier export)")
        file_menu = window.menus["file"]
        file_menu.addAction(self.open_action)
        file_menu.addAction(self.open_folder_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        file_menu.addAction(self.import_action)
        self._rebuild_recent_menu()

        window.files_dropped.connect(self.open_path)
        window.closing.connect(self._stop)
        self.document.events.volume_changed.connect(self._on_volume_changed)
        self._update_actions()

    # -- reading -------------------------------------------------------------------------------------
    def open_file_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open a CT volume", self._last_folder(), OPEN_FILTER)
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self.window, "Open a DICOM folder", self._last_folder())
        if path:
            self.open_path(path)

    def _last_folder(self) -> str:
        recent = user_settings.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def open_path(self, path: str | Path, series: str | None = None) -> bool:
        """Read a DICOM folder/file or a NIfTI/NRRD/MHA file in the background.

        Returns False if a read is already running. Emits ``volume_opened`` on success and
        ``open_failed(title, message)`` on failure (also shown as a dialog).
        """
        if self._load is not None:
            self.window.statusBar().showMessage("Still reading the previous study…", 5000)
            return False
        path = Path(path)
        run = TaskRun(lambda progress, cancel: read_study(path, series, progress, cancel),
                      "Cannot open this study", self)
        # Bound methods of this QObject, never lambdas: PySide then queues the calls into the GUI thread
        # (a lambda would run in the worker's thread and touch widgets from there).
        run.worker.progress.connect(self._load_progress)
        run.worker.finished.connect(self._on_loaded)
        run.worker.failed.connect(self._on_load_failed)
        run.worker.cancelled.connect(self._on_load_cancelled)
        run.thread.finished.connect(self._on_load_thread_finished)
        self._load, self._path = run, path
        self.window.load_progress.setRange(0, 0)
        self.window.load_progress.show()
        self.window.statusBar().showMessage(f"Reading {path.name}…")
        QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        self._update_actions()
        run.start()
        return True

    def is_loading(self) -> bool:
        return self._load is not None

    def cancel(self) -> None:
        """Stop a running read (Esc)."""
        if self._load is not None:
            self._load.cancel()

    def _stop(self) -> None:
        if self._load is not None:
            self._load.cancel()
            self._load.wait(60000)

    def _load_progress(self, done: int, total: int) -> None:
        self.window.load_progress.setRange(0, max(total, 1))
        self.window.load_progress.setValue(done)

    def _on_load_cancelled(self, why: str) -> None:
        self.window.statusBar().showMessage(f"Opening cancelled ({why}).", 6000)

    def _on_loaded(self, result) -> None:
        path = self._path
        if isinstance(result, SeriesChoice):
            # Ask after this read's thread is done, so the next read can start.
            ask = self.series_chooser or ask_series
            QTimer.singleShot(0, lambda: self._choose_series_then_open(result, ask))
            return
        self.window.statusBar().clearMessage()
        if not self.set_volume(result):
            return
        user_settings.add_recent_file(path)
        self._rebuild_recent_menu()
        if result.warnings:
            self.window.show_notice("Loaded with warnings:\n• " + "\n• ".join(result.warnings), key="study")

    def _choose_series_then_open(self, choice: SeriesChoice, ask) -> None:
        if self._load is not None:  # the previous thread is still winding down
            QTimer.singleShot(20, lambda: self._choose_series_then_open(choice, ask))
            return
        uid = ask(choice, self.window)
        if uid is not None:
            self.open_path(choice.path, series=uid)

    def _on_load_failed(self, title: str, message: str) -> None:
        self.window.statusBar().clearMessage()
        path = self._path
        if path is not None and not path.exists():
            user_settings.remove_recent_file(path)  # moved or deleted: stop offering it
            self._rebuild_recent_menu()
        self.window.show_error(title, message)
        self.open_failed.emit(title, message)

    def _on_load_thread_finished(self) -> None:
        self._load = None
        self.window.load_progress.hide()
        QApplication.restoreOverrideCursor()
        self._update_actions()
        self.load_done.emit()

    # -- switching studies ---------------------------------------------------------------------------
    def set_volume(self, volume) -> bool:
        """Show ``volume`` (an lsms_core Volume) in place of the open study.

        The previous study's labels are saved in its session first; if that save fails the switch is
        refused. Returns whether the volume is now shown.
        """
        previous, count = self.document.volume, len(self.document.labels)
        if previous is not None and previous is not volume and count:
            if self.autosaver.close_study() is None:
                self.window.show_error("The open study's labels are not saved",
                                       f"{self.autosaver.last_error or 'autosave is off'}\n\nExport the labels "
                                       "(File ▸ Export labels) or delete them, then open the other study again.")
                return False
            old = previous.source.name if previous.source is not None else "the previous study"
            self.window.statusBar().showMessage(f"{count} label(s) of {old} saved in its session: reopening "
                                                "it offers them back.", 15000)
        self.window.clear_notice("study")
        self.document.set_volume(volume)
        return True

    def _on_volume_changed(self) -> None:
        self._update_actions()
        self.volume_opened.emit()

    # -- labels from files ---------------------------------------------------------------------------
    def import_labels(self, path: str | Path) -> bool:
        """Add the labels of a mask file (e.g. one exported earlier) that lies on the open CT's grid."""
        if self.document.volume is None:
            self.window.show_error("Cannot import labels", "Open the CT they belong to first.")
            return False
        try:
            imported = read_label_file(path, self.document.volume)
        except LSMSError as exc:
            self.window.show_error("Cannot import labels", f"{exc.what}\n\n{exc.why}")
            return False
        for item in imported:
            self.document.add_label(item.mask, expression=item.expression, name=item.name, color=item.color,
                                    meta={"imported_from": str(path), "value_in_file": item.value, **item.meta})
        self.window.statusBar().showMessage(f"Imported {len(imported)} label(s) from {Path(path).name}.", 8000)
        return True

    def import_labels_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Import labels", self._last_folder(),
                                              "Label masks (*.nii *.nii.gz *.nrrd *.mha *.mhd *.dcm);;All files (*)")
        if path:
            self.import_labels(path)

    # -- menu state ----------------------------------------------------------------------------------
    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = user_settings.recent_files()
        for path in files:
            action: QAction = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self._clear_recent)
        self.recent_menu.setEnabled(bool(files))

    def _clear_recent(self) -> None:
        user_settings.clear_recent_files()
        self._rebuild_recent_menu()

    def _update_actions(self) -> None:
        for action in (self.open_action, self.open_folder_action):
            action.setEnabled(self._load is None)
        self.import_action.setEnabled(self.document.volume is not None)
        self.busy_changed.emit()

"""File ▸ Export labels…: all labels as one multi-label file, or one file per label, on the CT's own grid
(``lsms_viewer.state.export`` does the writing)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from lsms_core.errors import LSMSError
from lsms_viewer.actions import make_action
from lsms_viewer.main_window import MainWindow
from lsms_viewer.state.export import default_export_path, export_multilabel, export_per_label


class ExportController(QObject):
    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.export_action = make_action(window, "&Export labels…", self.export_dialog, "Ctrl+E",
                                         "Save all labels as one multi-label NIfTI with a JSON sidecar")
        self.export_each_action = make_action(window, "Export labels as &separate files…", self.export_each_dialog,
                                              "Ctrl+Shift+E", "Save one NIfTI mask per label into a folder")
        window.menus["file"].addAction(self.export_action)
        window.menus["file"].addAction(self.export_each_action)
        events = self.document.events
        for event in (events.volume_changed, events.label_added, events.label_removed):
            event.connect(self._update_actions)
        self._update_actions()

    def export_labels(self, path: str | Path) -> bool:
        return self._export(lambda: export_multilabel(self.document, path))

    def export_labels_separately(self, folder: str | Path, stem: str = "label") -> bool:
        return self._export(lambda: export_per_label(self.document, folder, stem))

    def _export(self, do) -> bool:
        try:
            report = do()
        except LSMSError as exc:
            self.window.show_error("Export failed", f"{exc.what}\n\n{exc.why}")
            return False
        except OSError as exc:
            self.window.show_error("Export failed", str(exc))
            return False
        self.window.statusBar().showMessage(report.summary().replace("\n", " "), 15000)
        return True

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export labels", str(default_export_path(self.document)),
                                              "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)")
        if path:
            self.export_labels(path)

    def export_each_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Export one mask per label into…",
                                                  str(default_export_path(self.document).parent))
        if folder:
            self.export_labels_separately(folder)

    def _update_actions(self, *_args) -> None:
        has_labels = self.document.volume is not None and bool(self.document.labels)
        for action in (self.export_action, self.export_each_action):
            action.setEnabled(has_labels)

"""File ▸ Export labels…: all labels as one multi-label file, or one file per label, on the CT's own grid
(``lsms_viewer.state.export`` does the writing).

A single file holds one value per voxel. When labels overlap, the export asks in a dialog which label wins
(the later one, or the smaller one) or offers separate files; a choice under which a label would vanish
from the file is not offered, and the API refuses it with an error dialog naming the label. What was lost
to an overlap is said in a dialog after writing, not in a status bar message that disappears.

File ▸ Export labels as DICOM SEG… writes every label as a segment of one DICOM Segmentation referring to
the open DICOM series (segments may overlap, so nothing is asked or lost); a study not read from a DICOM
series is refused in a dialog that says why.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMessageBox

from lsms_core.errors import LSMSError
from lsms_viewer.actions import make_action
from lsms_viewer.main_window import MainWindow
from lsms_viewer.state.export import (
    PRECEDENCES,
    MultilabelPlan,
    default_export_path,
    default_seg_path,
    export_multilabel,
    export_per_label,
    export_seg,
    plan_multilabel,
)


class ExportController(QObject):
    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.export_action = make_action(window, "&Export labels…", self.export_dialog, "Ctrl+E",
                                         "Save all labels as one multi-label NIfTI with a JSON sidecar")
        self.export_each_action = make_action(window, "Export labels as &separate files…", self.export_each_dialog,
                                              "Ctrl+Shift+E", "Save one NIfTI mask per label into a folder")
        self.export_seg_action = make_action(window, "Export labels as DICOM &SEG…", self.export_seg_dialog, None,
                                             "Save all labels as one DICOM Segmentation of the open DICOM series, "
                                             "for a PACS")
        window.menus["file"].addAction(self.export_action)
        window.menus["file"].addAction(self.export_each_action)
        window.menus["file"].addAction(self.export_seg_action)
        events = self.document.events
        for event in (events.volume_changed, events.label_added, events.label_removed):
            event.connect(self._update_actions)
        self._update_actions()

    def export_labels(self, path: str | Path, precedence: str = "later") -> bool:
        """Write one multi-label file; a label that would lose every voxel refuses it (error dialog)."""
        done = self._export(lambda: export_multilabel(self.document, path, precedence))
        if done:
            self._remember_folder(Path(path).parent)
        return done

    def export_labels_separately(self, folder: str | Path, stem: str = "label") -> bool:
        done = self._export(lambda: export_per_label(self.document, folder, stem))
        if done:
            self._remember_folder(Path(folder))
        return done

    def export_labels_seg(self, path: str | Path) -> bool:
        """Write every label as a segment of one DICOM SEG (error dialog with the reason on refusal)."""
        done = self._export(lambda: export_seg(self.document, path))
        if done:
            self._remember_folder(Path(path).parent)
        return done

    def export_seg_dialog(self) -> None:
        start = default_seg_path(self.document, self.export_folder())
        path, _ = QFileDialog.getSaveFileName(self.window, "Export labels as DICOM SEG", str(start),
                                              "DICOM SEG (*.dcm)")
        if path:
            self.export_labels_seg(path if path.lower().endswith(".dcm") else path + ".dcm")

    def _export(self, do) -> bool:
        try:
            report = do()
        except LSMSError as exc:
            self.window.show_error("Export failed", f"{exc.what}\n\n{exc.why}")
            return False
        except OSError as exc:
            self.window.show_error("Export failed", str(exc))
            return False
        self.window.statusBar().showMessage(report.summary().splitlines()[0] + " " + str(report.files[0]), 15000)
        if report.overlapping_voxels or report.empty_labels:
            self.window.show_error("Labels exported, with losses", report.summary())
        elif report.notes:
            self.window.show_error("Labels exported, with a note", report.summary())
        return True

    def ask_precedence(self, later: MultilabelPlan, smaller: MultilabelPlan) -> str:
        """Overlapping labels: ask which wins in the single file, or for separate files.

        Returns "later", "smaller", "separate" or "cancel". A choice that would hide a label is not offered.
        """
        names = {lab.id: lab.name for lab in self.document.labels}
        lines = [f"{later.overlapping_voxels:,} voxels belong to more than one label, and a single file holds "
                 "one label per voxel."]
        if later.hidden:
            lines.append("In list order, " + later.hidden_text() + ": it would not be in the file at all.")
        else:
            lines.append("In list order, these labels would lose voxels: " + ", ".join(
                f"“{names[i]}” ({n:,})" for i, n in later.lost.items()) + ".")
        if smaller.hidden:
            lines.append("Even with the smaller label on top, " + smaller.hidden_text() + ".")
        lines.append("Separate files (one per label) keep every voxel of every label.")
        box = QMessageBox(QMessageBox.Icon.Warning, "Overlapping labels", "\n\n".join(lines),
                          QMessageBox.StandardButton.NoButton, self.window)
        choices = {}
        choices[box.addButton("Separate files…", QMessageBox.ButtonRole.AcceptRole)] = "separate"
        if not smaller.hidden:
            choices[box.addButton("Smaller label wins", QMessageBox.ButtonRole.AcceptRole)] = "smaller"
        if not later.hidden:
            choices[box.addButton("Later label wins", QMessageBox.ButtonRole.AcceptRole)] = "later"
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(next(iter(choices)))
        box.exec()
        clicked = box.clickedButton()
        return "cancel" if clicked is cancel or clicked not in choices else choices[clicked]

    def export_folder(self) -> Path:
        """Where the dialogs start: the last folder exported to, else Documents, else home; never the
        study's own folder."""
        from PySide6.QtCore import QStandardPaths

        from lsms_viewer.settings import settings

        last = settings().value("export/folder", "")
        if last and Path(str(last)).is_dir():
            return Path(str(last))
        documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        if documents and Path(documents).is_dir():
            return Path(documents)
        return Path.home()

    def _remember_folder(self, folder: Path) -> None:
        from lsms_viewer.settings import settings

        settings().setValue("export/folder", str(folder))

    def default_path(self) -> Path:
        return default_export_path(self.document, self.export_folder())

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export labels", str(self.default_path()),
                                              "NIfTI (*.nii.gz *.nii);;NRRD (*.nrrd);;MetaImage (*.mha)")
        if not path:
            return
        later = plan_multilabel(self.document, "later")
        if not later.overlapping_voxels:
            self.export_labels(path)
            return
        choice = self.ask_precedence(later, plan_multilabel(self.document, "smaller"))
        if choice in PRECEDENCES:
            self.export_labels(path, choice)
        elif choice == "separate":
            self.export_each_dialog()

    def export_each_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Export one mask per label into…",
                                                  str(self.export_folder()))
        if folder:
            self.export_labels_separately(folder)

    def _update_actions(self, *_args) -> None:
        has_labels = self.document.volume is not None and bool(self.document.labels)
        for action in (self.export_action, self.export_each_action, self.export_seg_action):
            action.setEnabled(has_labels)

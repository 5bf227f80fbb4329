"""The rulers of the study, listed under Measurements: plane, slice and length; double-click shows one,
Delete (or the button) removes the selected one. Hidden while the study has no ruler."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer.state.rulers import Rulers

COLUMNS = ("Ruler", "Plane", "Slice", "Length (mm)")


class RulerList(QWidget):
    def __init__(self, rulers: Rulers, show_slice, number_of=None, parent: QWidget | None = None):
        """``show_slice(plane, index)`` brings a ruler's slice on screen; ``number_of(plane, index)`` is the
        slice number shown for it (default: index + 1)."""
        super().__init__(parent)
        self.rulers = rulers
        self._show_slice = show_slice
        self._number_of = number_of or (lambda _plane, index: index + 1)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMaximumHeight(110)
        self.table.cellDoubleClicked.connect(lambda row, _col: self._go_to(row))
        self.delete_button = QPushButton("Delete ruler")
        self.delete_button.clicked.connect(self.delete_selected)
        shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table)
        shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
        shortcut.activated.connect(self.delete_selected)
        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Rulers</b> (R: drag in any plane)"))
        header.addStretch(1)
        header.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.table)
        for event in (rulers.added, rulers.removed, rulers.reset):
            event.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        volume = self.rulers.document.volume
        items = list(self.rulers)
        self.table.setRowCount(len(items))
        for row, ruler in enumerate(items):
            length = f"{ruler.length_mm(volume):.1f}" if volume is not None else "–"
            for col, text in enumerate((str(ruler.id), ruler.plane, str(self._number_of(ruler.plane, ruler.index)),
                                         length)):
                cell = QTableWidgetItem(text)
                cell.setData(Qt.ItemDataRole.UserRole, ruler.id)
                if col == 3:
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, cell)
        if items:
            self.table.selectRow(len(items) - 1)
        self.delete_button.setEnabled(bool(items))
        self.setVisible(bool(items))

    def selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def delete_selected(self) -> None:
        ruler_id = self.selected_id()
        if ruler_id is not None:
            self.rulers.remove(ruler_id)

    def _go_to(self, row: int) -> None:
        ruler = self.rulers.get(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole))
        if ruler is not None:
            self._show_slice(ruler.plane, ruler.index)

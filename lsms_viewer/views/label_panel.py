"""The label panel: one row per label (visibility, colour, name, expression, run time) and its controls.

Names and expressions are elided in the middle, so two labels whose words start alike ("the hypodense
lesion …") still show their different ends; the full text is in the tooltip. The table scrolls to the
active label, whichever panel made it active. The buttons sit at the bottom of the panel, under the
details line, so they never move when the details of another label take more lines.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QColorDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer.display.slice_numbers import SliceNumbering
from lsms_viewer.state.document import Document, Label
from lsms_viewer.state.provenance import DRAWN_BY_HAND, IMPORTED, model_found_something, origin

COL_VISIBLE, COL_NAME, COL_EXPRESSION, COL_TIME = range(4)
_ID_ROLE = Qt.ItemDataRole.UserRole


def _swatch(color: tuple[int, int, int], size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


def run_text(label: Label) -> str:
    """The Run column: the model run's time and device, or how the label was made without the model."""
    if not model_found_something(label):
        return IMPORTED if label.run is None and label.meta.get("imported_from") else DRAWN_BY_HAND
    return f"{label.run.seconds:.1f} s · {label.run.device}"


class LabelPanel(QWidget):
    """Lists the Document's labels; edits go straight to the Document (the single source of truth)."""

    rerun_requested = Signal(int)  # label id whose words the user wants to edit and run again
    overlay_mode_changed = Signal(str)

    def __init__(self, document: Document, parent: QWidget | None = None, numbering: SliceNumbering | None = None):
        super().__init__(parent)
        self.document = document
        self.numbering = numbering or SliceNumbering()  # the slice numbers the view shows
        self._updating = False

        self.fill_button = QPushButton("Fill")
        self.outline_button = QPushButton("Outline")
        self.mode_group = QButtonGroup(self)
        for button in (self.fill_button, self.outline_button):
            button.setCheckable(True)
            self.mode_group.addButton(button)
        self.fill_button.setChecked(True)
        for button in (self.fill_button, self.outline_button):
            # Fusion's dark palette hardly shows a checked button; the mode must be obvious.
            button.setStyleSheet("QPushButton:checked { background: #3d7ab8; color: white; border: 1px solid #5b9bd5;"
                                 " border-radius: 3px; padding: 3px 10px; }")
        self.fill_button.setToolTip("Show labels as a filled tint with a border (O toggles)")
        self.outline_button.setToolTip("Show only label borders (O toggles)")
        self.fill_button.toggled.connect(lambda on: on and self.overlay_mode_changed.emit("fill"))
        self.outline_button.toggled.connect(lambda on: on and self.overlay_mode_changed.emit("outline"))
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Overlay"))
        mode_row.addWidget(self.fill_button)
        mode_row.addWidget(self.outline_button)
        mode_row.addStretch(1)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["", "Name", "Expression", "Run"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_VISIBLE, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_EXPRESSION, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_TIME, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(COL_NAME, 170)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.cellDoubleClicked.connect(self._on_double_click)

        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setToolTip("Opacity of the selected label's fill")
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.opacity_value = QLabel("")
        self.opacity_value.setMinimumWidth(36)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        opacity_row.addWidget(self.opacity_slider, 1)
        opacity_row.addWidget(self.opacity_value)

        self.rerun_button = QPushButton("Edit words…")
        self.rerun_button.setToolTip("Put this label's expression in the box; running it replaces the mask")
        self.rerun_button.clicked.connect(self._request_rerun)
        self.color_button = QPushButton("Colour…")
        self.color_button.clicked.connect(self._choose_color)
        self.rename_button = QPushButton("Rename")
        self.rename_button.clicked.connect(self._rename)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_selected)
        buttons = QHBoxLayout()
        for button in (self.rerun_button, self.color_button, self.rename_button, self.delete_button):
            buttons.addWidget(button)

        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setStyleSheet("color: #9aa4ad;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(mode_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(opacity_row)
        layout.addLayout(buttons)  # last: the buttons stay put whatever the details line holds

        events = document.events
        events.volume_changed.connect(self._rebuild)
        events.label_added.connect(lambda _label: self._rebuild())
        events.label_removed.connect(lambda _label: self._rebuild())
        events.label_changed.connect(self._on_label_changed)
        # Counting voxels of an organ-sized label costs tens of ms: far too much for every mouse move of a
        # brush stroke, so the details line follows mask edits once they pause.
        self._details_timer = QTimer(self)
        self._details_timer.setSingleShot(True)
        self._details_timer.setInterval(150)
        self._details_timer.timeout.connect(self._refresh_details)
        events.mask_changed.connect(lambda _label, _slices: self._details_timer.start())
        events.active_label_changed.connect(self._on_active_changed)
        self._update_controls()

    # -- public ------------------------------------------------------------------------------------
    def row_of(self, label_id: int) -> int:
        for row in range(self.table.rowCount()):
            if self.table.item(row, COL_NAME).data(_ID_ROLE) == label_id:
                return row
        return -1

    def selected_label(self) -> Label | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        label_id = self.table.item(rows[0].row(), COL_NAME).data(_ID_ROLE)
        return self.document.label(label_id) if self.document.has_label(label_id) else None

    def refresh_numbers(self) -> None:
        """The slice numbers shown changed (head-first numbering): rewrite what quotes them."""
        self._rebuild()

    def set_overlay_mode(self, mode: str) -> None:
        (self.fill_button if mode == "fill" else self.outline_button).setChecked(True)

    def delete_selected(self) -> None:
        label = self.selected_label()
        if label is not None:
            self.document.remove_label(label.id)

    def set_label_color(self, label_id: int, color: tuple[int, int, int]) -> None:
        self.document.update_label(label_id, color=color)

    # -- rows --------------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        self._updating = True
        try:
            labels = self.document.labels if self.document.volume is not None else []
            self.table.setRowCount(len(labels))
            for row, label in enumerate(labels):
                self._fill_row(row, label)
            active = self.document.active_label if self.document.volume is not None else None
            if active is not None:
                self._select_and_show(active.id)
        finally:
            self._updating = False
        self._update_controls()

    def _fill_row(self, row: int, label: Label) -> None:
        visible = QTableWidgetItem()
        visible.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        visible.setCheckState(Qt.CheckState.Checked if label.visible else Qt.CheckState.Unchecked)
        visible.setToolTip("Show or hide this label")
        name = QTableWidgetItem(_swatch(label.color), label.name)
        name.setData(_ID_ROLE, label.id)
        name.setToolTip(f"{label.name}\n\nDouble-click to rename; Colour… changes the colour")
        expression = QTableWidgetItem(label.expression or "—")
        expression.setFlags(expression.flags() & ~Qt.ItemFlag.ItemIsEditable)
        expression.setToolTip(label.expression or "This label was not produced from an expression")
        run = QTableWidgetItem(run_text(label))
        run.setFlags(run.flags() & ~Qt.ItemFlag.ItemIsEditable)
        run.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if label.run is not None:
            run.setToolTip(f"checkpoint {label.run.checkpoint}, slices "
                           f"{self.numbering.span_text(*label.run.slices)}")
        for col, item in ((COL_VISIBLE, visible), (COL_NAME, name), (COL_EXPRESSION, expression), (COL_TIME, run)):
            self.table.setItem(row, col, item)

    def _on_label_changed(self, label: Label, _field: str) -> None:
        row = self.row_of(label.id)
        if row < 0:
            return
        self._updating = True
        try:
            self._fill_row(row, label)
        finally:
            self._updating = False
        self._update_controls()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating:
            return
        label_id = self.table.item(item.row(), COL_NAME).data(_ID_ROLE)
        if item.column() == COL_VISIBLE:
            self.document.update_label(label_id, visible=item.checkState() == Qt.CheckState.Checked)
        elif item.column() == COL_NAME:
            self.document.update_label(label_id, name=item.text())

    def _on_selection_changed(self) -> None:
        if self._updating:
            return
        label = self.selected_label()
        self.document.set_active(label.id if label else None)
        self._update_controls()

    def _on_active_changed(self, label: Label | None) -> None:
        if label is not None and self.selected_label() is not label:
            self._updating = True
            self._select_and_show(label.id)
            self._updating = False
        elif label is not None:
            self._select_and_show(label.id)
        self._update_controls()

    def _select_and_show(self, label_id: int) -> None:
        row = self.row_of(label_id)
        if row < 0:
            return
        if self.selected_label() is None or self.selected_label().id != label_id:
            self.table.selectRow(row)
        self.table.scrollToItem(self.table.item(row, COL_NAME), QAbstractItemView.ScrollHint.EnsureVisible)

    def _on_double_click(self, row: int, column: int) -> None:
        if column == COL_EXPRESSION:
            self._request_rerun()

    # -- controls ----------------------------------------------------------------------------------
    def _update_controls(self) -> None:
        label = self.selected_label()
        for widget in (self.rerun_button, self.color_button, self.rename_button, self.delete_button,
                       self.opacity_slider):
            widget.setEnabled(label is not None)
        self.rerun_button.setEnabled(label is not None and bool(label.expression))
        if label is not None:
            self.opacity_slider.blockSignals(True)
            self.opacity_slider.setValue(round(label.opacity * 100))
            self.opacity_slider.blockSignals(False)
            self.opacity_value.setText(f"{round(label.opacity * 100)} %")
        else:
            self.opacity_value.setText("")
        self._refresh_details()

    def _refresh_details(self) -> None:
        label = self.selected_label()
        if label is None or self.document.volume is None:
            count = len(self.document.labels) if self.document.volume is not None else 0
            self.details.setText(f"{count} label{'s' if count != 1 else ''}" if count else
                                 "No labels yet: type an expression below the image and press Enter.")
            return
        volume = self.document.volume
        voxels = int(label.mask.sum())
        ml = voxels * volume.spacing[0] * volume.spacing[1] * volume.spacing[2] / 1000.0
        extent = label.slice_extent()
        where = f"slices {self.numbering.span_text(extent.start, extent.stop)}" if extent else "empty"
        lines = [f"<b>{label.name.replace('<', '&lt;')}</b> · {voxels:,} voxels · {ml:.2f} mL · {where} · "
                 f"{origin(label)}"]
        if model_found_something(label):
            run = label.run
            trained = "" if run.trained else " <span style='color:#e0a030'>(untrained weights)</span>"
            lines.append(f"{run.seconds:.2f} s on {run.device} · {run.checkpoint}{trained}")
            lines.extend(run.notes)
        self.details.setText("<br>".join(lines))

    def _on_opacity(self, value: int) -> None:
        label = self.selected_label()
        if label is not None:
            self.document.update_label(label.id, opacity=value / 100.0)
            self.opacity_value.setText(f"{value} %")

    def _request_rerun(self) -> None:
        label = self.selected_label()
        if label is not None and label.expression:
            self.rerun_requested.emit(label.id)

    def _choose_color(self) -> None:
        label = self.selected_label()
        if label is None:
            return
        color = QColorDialog.getColor(QColor(*label.color), self, f"Colour of {label.name}")
        if color.isValid():
            self.set_label_color(label.id, (color.red(), color.green(), color.blue()))

    def _rename(self) -> None:
        label = self.selected_label()
        if label is not None:
            self.table.editItem(self.table.item(self.row_of(label.id), COL_NAME))

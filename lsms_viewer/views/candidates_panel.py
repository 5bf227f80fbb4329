"""Candidates: every lesion the network saw in the last run, with its facts and scores, and which one the
words chose (and why). A radiologist sees the alternatives and takes another with one click.

The panel shows and emits; the candidates controller changes the label. Numbers on the image and the
outlines are drawn by :class:`CandidateOutlines` in the slice view and the coronal and sagittal views (the
hovered row's outline is drawn thicker).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainterPath, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGraphicsPathItem,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer.display.outline import label_anchor_mm, outline_mm

COLUMNS = ("#", "Slices", "Long (mm)", "Volume (mL)", "Mean HU", "Density", "Where", "Network", "Words", "Score")
CHOSEN_COLOR = QColor(255, 220, 40)
OTHER_COLOR = QColor(120, 200, 255)
STATUS_TEXT = {"found": "Chosen", "ambiguous": "Ambiguous", "not found": "Not found", "all regions": "All regions"}


def where_text(facts) -> str:
    parts = []
    if facts.segment:
        parts.append(f"segment {facts.segment}" + (" (est.)" if facts.segment_estimated else ""))
    elif facts.lobe:
        parts.append(f"{facts.lobe} lobe")
    if facts.ap:
        parts.append(facts.ap)
    return ", ".join(parts) or "–"


class CandidatesPanel(QWidget):
    take_requested = Signal(int)  # candidate number
    hovered = Signal(int)  # candidate number, 0 = none
    go_to_slice = Signal(int)  # volume slice index

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.status = QLabel("No run yet: type words and press Enter; every lesion the network sees is listed here.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMouseTracking(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.cellEntered.connect(lambda row, _col: self.hovered.emit(self._number_at(row)))
        self.table.cellDoubleClicked.connect(lambda row, _col: self._take_row(row))
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.table.viewport().installEventFilter(self)
        self.table.installEventFilter(self)  # number keys while the table has focus
        self.take_button = QPushButton("Use this lesion")
        self.take_button.setToolTip("Put the selected candidate in the label instead (one undo step); "
                                    "double-click a row or press its number (1–9) here")
        self.take_button.setEnabled(False)
        self.take_button.clicked.connect(lambda: self._take_row(self.table.currentRow()))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.take_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self._numbers: list[int] = []
        self._chosen: int | None = None
        self._busy = False

    # -- filling -------------------------------------------------------------------------------------
    def show_run(self, candidates: list, status: str, chosen: int | None, alternatives: list[int],
                 reason: str, start: int) -> None:
        """``candidates`` of a run starting at volume slice ``start``; ``reason``: the resolver's note."""
        self._chosen = chosen
        self._numbers = [c.number for c in candidates]
        self.table.setRowCount(len(candidates))
        bold = QFont(self.font())
        bold.setBold(True)
        for row, c in enumerate(candidates):
            f = c.facts
            first, last = c.slices if c.slices is not None else (start + c.slice_index,) * 2
            slices = f"{first + 1}" if first == last else f"{first + 1}–{last + 1}"
            mark = " ✓" if c.number == chosen else (" ?" if c.number in alternatives else "")
            values = (f"{c.number}{mark}", slices, f"{f.long_mm:.1f}",
                      "–" if c.volume_ml is None else f"{c.volume_ml:.2f}", f"{c.mean_hu:.0f}",
                      f.density or "–", where_text(f), f"{c.net_score:.2f}", f"{c.fact_score:.2f}",
                      f"{c.score:.2f}")
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c.number == chosen:
                    item.setFont(bold)
                if c.unmet:
                    item.setToolTip("Contradicts the words: " + ", ".join(c.unmet))
                self.table.setItem(row, col, item)
        head = STATUS_TEXT.get(status, status)
        self.status.setText(f"<b>{head}</b>: {reason}" if reason else f"<b>{head}</b>")
        self.status.setToolTip(reason)
        self.table.clearSelection()
        self.take_button.setEnabled(False)

    def clear(self, text: str = "No run on this study yet.") -> None:
        self._numbers = []
        self._chosen = None
        self.table.setRowCount(0)
        self.status.setText(text)
        self.take_button.setEnabled(False)

    def set_busy(self, busy: bool) -> None:
        """While a taken candidate is being redrawn, nothing else can be taken."""
        self._busy = busy
        self._on_selection()

    # -- input ---------------------------------------------------------------------------------------
    def _number_at(self, row: int) -> int:
        return self._numbers[row] if 0 <= row < len(self._numbers) else 0

    def _on_selection(self) -> None:
        number = self._number_at(self.table.currentRow()) if self.table.selectedItems() else 0
        self.take_button.setEnabled(bool(number) and number != self._chosen and not self._busy)
        if number:
            self.hovered.emit(number)

    def _take_row(self, row: int) -> None:
        number = self._number_at(row)
        if number and not self._busy:
            self.take_requested.emit(number)

    def _takes_key(self, ev: QKeyEvent) -> bool:
        text = ev.text()
        return text.isdigit() and text != "0" and int(text) in self._numbers

    def event(self, ev) -> bool:
        # The window's number keys choose window presets; inside this panel a candidate's number wins.
        if ev.type() == ev.Type.ShortcutOverride and self._takes_key(ev):
            ev.accept()
            return True
        return super().event(ev)

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802 (Qt's name)
        if self._takes_key(ev):
            if not self._busy:
                self.take_requested.emit(int(ev.text()))
            return
        super().keyPressEvent(ev)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt's name)
        if ev.type() == ev.Type.Leave:
            self.hovered.emit(0)
        if ev.type() in (ev.Type.KeyPress, ev.Type.ShortcutOverride) and self._takes_key(ev):
            if ev.type() == ev.Type.KeyPress:
                self.keyPressEvent(ev)
            ev.accept()
            return True
        return super().eventFilter(obj, ev)


class CandidateOutlines:
    """The candidates' outlines and numbers on the shown slice of a slice view, and of any further plane views
    (coronal, sagittal: each candidate's crop is cut along the view's plane)."""

    def __init__(self, slice_view, more_views=()):
        self.view = slice_view
        self.views = [slice_view, *more_views]
        self._items: dict[int, list] = {id(v): [] for v in self.views}
        self._regions: list[tuple[int, object]] = []  # (number, Candidate)
        self._start = 0
        self._chosen: int | None = None
        self._hover = 0
        self.visible = True

    def set_candidates(self, candidates: list, start: int, chosen: int | None) -> None:
        self._regions = [(c.number, c) for c in candidates]
        self._start = start
        self._chosen = chosen
        self.redraw()

    def clear(self) -> None:
        self._regions = []
        self.redraw()

    def set_hover(self, number: int) -> None:
        if number != self._hover:
            self._hover = number
            self.redraw()

    def redraw(self, view=None) -> None:
        """Redraw in ``view`` (default: every view)."""
        for target in self.views if view is None else [view]:
            self._redraw(target)

    def _section(self, view, c):
        """The candidate's cross-section on ``view``'s shown slice as a mask of the view's image, or None."""
        geometry = getattr(view, "geometry", None)
        if geometry is None or geometry.plane == "axial":
            k = view.current_slice - self._start
            return c.on_slice(k) if 0 <= k < c.shape[0] else None
        crop = c.crop if c.crop.ndim == 3 else c.crop[None]
        origin = c.origin if c.crop.ndim == 3 else (0, *c.origin)
        axis = 2 - geometry.normal_axis  # the plane's normal as an axis of the (K, H, W) run
        index = view.current_slice - origin[axis]
        if not 0 <= index < crop.shape[axis]:
            return None
        part = np.take(crop, index, axis=axis)  # rows: run slices; columns: the view's column axis
        col_origin = origin[2 - geometry.col_axis]
        out = np.zeros(geometry.size, bool)
        row0 = self._start + origin[0]
        out[row0:row0 + part.shape[0], col_origin:col_origin + part.shape[1]] = part
        if geometry.flip_rows:
            out = out[::-1]
        if geometry.flip_cols:
            out = out[:, ::-1]
        return out

    def _redraw(self, view) -> None:
        items = self._items[id(view)]
        for item in items:
            view.view_box.removeItem(item)
        items.clear()
        volume = view.document.volume
        if not self.visible or volume is None or not self._regions:
            return
        geometry = getattr(view, "geometry", None)
        sx, sy = volume.spacing[:2] if geometry is None else geometry.pixel_mm
        for number, c in self._regions:
            section = self._section(view, c)  # the pipeline hands every candidate over as a run: (N, H, W)
            if section is None or not np.any(section):
                continue
            color = CHOSEN_COLOR if number == self._chosen else OTHER_COLOR
            pen = QPen(color, 3 if number == self._hover else 1.2)
            pen.setCosmetic(True)
            if number != self._chosen and number != self._hover:
                pen.setStyle(Qt.PenStyle.DashLine)
            path = QPainterPath()
            for line in outline_mm(section, (sx, sy)):
                path.moveTo(*line[0])
                for x, y in line[1:]:
                    path.lineTo(x, y)
                path.closeSubpath()
            item = QGraphicsPathItem(path)
            item.setPen(pen)
            item.setZValue(20)
            view.view_box.addItem(item)
            items.append(item)
            anchor = label_anchor_mm(section, (sx, sy))
            text = pg.TextItem(f"#{number}", color=color, anchor=(0, 1))
            text.setPos(*anchor)
            text.setZValue(21)
            view.view_box.addItem(text)
            items.append(text)

    @property
    def drawn_numbers(self) -> list[int]:
        """The numbers written on the shown slice of the first view (tests and screenshots read them)."""
        return self.drawn_numbers_in(self.view)

    def drawn_numbers_in(self, view) -> list[int]:
        return [int(item.textItem.toPlainText().lstrip("#")) for item in self._items[id(view)]
                if isinstance(item, pg.TextItem)]

"""Measurements of every label: a table dock, and the long/short axes drawn on the slice.

Per label, on the current slice: long and short axis (mm; drawn as a solid and a dashed line in the
label's colour), area (mm²), all of the label's largest connected piece there; when the slice holds
several pieces, the Pieces column lists each one's long axis and the image says "largest of N pieces"; over the volume: volume (mL), slice extent, mean ± SD HU, and density
relative to a 5 mm ring of surrounding tissue (hypo/iso/hyper, computed with other labels kept out of the
ring). Numbers come from ``lsms_core.measure``.

Recomputing is debounced (a brush stroke changes a mask on every mouse move) and the volume part is
cached per label until its mask changes (``lsms_viewer.state.measurements``, shared with the annotation
form, so both give a lesion the same numbers), so scrolling only re-measures one slice.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer.state.annotation import DENSITY_WORD
from lsms_viewer.state.document import Document, Label
from lsms_viewer.state.measurements import Measurements
from lsms_viewer.views.slice_view import SliceView

COLUMNS = ("Label", "Long (mm)", "Short (mm)", "Area (mm²)", "Volume (mL)", "Slices", "HU mean ± SD", "Density",
           "Pieces")
COL_PIECES = 8


class AxisOverlay:
    """Long and short axis lines with their lengths, for every visible label on the shown slice."""

    def __init__(self, slice_view):
        self.view = slice_view
        self._items: list = []
        self.visible = True

    def clear(self) -> None:
        for item in self._items:
            self.view.view_box.removeItem(item)
        self._items = []

    def show(self, entries: list[tuple[Label, object]]) -> None:
        """``entries``: (label, Measurement2D) pairs for the current slice."""
        self.clear()
        volume = self.view.document.volume
        if not self.visible or volume is None:
            return
        sx, sy, _ = volume.spacing
        for label, m2 in entries:
            color = QColor(*label.color)
            for axis, style in ((m2.long_axis, Qt.PenStyle.SolidLine), (m2.short_axis, Qt.PenStyle.DashLine)):
                (r0, c0), (r1, c1) = axis.p0, axis.p1
                # Endpoints are pixel coordinates with centres at integers; the view is in mm from the corner.
                xs = [(c0 + 0.5) * sx, (c1 + 0.5) * sx]
                ys = [(r0 + 0.5) * sy, (r1 + 0.5) * sy]
                pen = QPen(color)
                pen.setCosmetic(True)
                pen.setWidthF(2.0)
                pen.setStyle(style)
                line = pg.PlotCurveItem(xs, ys, pen=pen)
                line.setZValue(15)
                self.view.view_box.addItem(line)
                self._items.append(line)
            (r0, c0), (r1, c1) = m2.long_axis.p0, m2.long_axis.p1
            anchor_r, anchor_c = (r0, c0) if r0 <= r1 else (r1, c1)
            pieces = f" · largest of {len(m2.pieces)} pieces" if m2.pieces else ""
            text = pg.TextItem(f"{m2.long_axis.length_mm:.1f} × {m2.short_axis.length_mm:.1f} mm{pieces}",
                               color=color, anchor=(0.5, 1.2))
            text.setPos(QPointF((anchor_c + 0.5) * sx, (anchor_r + 0.5) * sy))
            text.setZValue(16)
            self.view.view_box.addItem(text)
            self._items.append(text)


class MeasurePanel(QWidget):
    """The measurements table; keeps the axis overlay of the slice view in step."""

    measured = Signal()  # after every refresh (tests and the annotation form listen)

    def __init__(self, document: Document, measurements: Measurements, slice_view: SliceView,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.slice_view = slice_view
        self.measurements = measurements
        self.overlay = AxisOverlay(slice_view)
        self.rows: dict[int, dict] = {}

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # A name can be a whole expression: a fixed column, elided in the middle, the full name in a tooltip.
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(0, 200)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        self.table.cellDoubleClicked.connect(self._go_to_label)
        # One selection for both tables: the active label (the Labels panel shows the same one).
        self._selecting = False
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        document.events.active_label_changed.connect(lambda _label: self._show_active())
        self.show_axes = QCheckBox("Show axes on the image")
        self.show_axes.setChecked(True)
        self.show_axes.toggled.connect(self._toggle_axes)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.show_axes)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self.refresh)
        events = document.events
        for event in (events.volume_changed, events.label_added, events.label_removed, events.label_changed,
                      events.mask_changed):
            event.connect(self.schedule)
        # Measuring a slice (long axis over the outline's hull) costs up to tens of ms on organ-sized
        # labels: far more than drawing it. While the user scrolls, the previous slice's axes are hidden at
        # once (they must never sit over another slice) and the slice is measured when scrolling pauses.
        slice_view.slice_changed.connect(self._hide_stale_axes)
        slice_view.slice_settled.connect(lambda _k: self.refresh())
        slice_view.numbering_changed.connect(self.schedule)

    def _hide_stale_axes(self, _k: int) -> None:
        self.overlay.show([])

    def schedule(self, *_args) -> None:
        self._timer.start()

    def _toggle_axes(self, on: bool) -> None:
        self.overlay.visible = bool(on)
        self.refresh()

    def refresh(self) -> None:
        """Measure every label now (the debounced path calls this)."""
        self._timer.stop()
        self.rows = {}
        volume = self.document.volume
        labels = self.document.labels if volume is not None else []
        k = self.slice_view.current_slice
        self.table.setRowCount(len(labels))
        axes = []
        for row, label in enumerate(labels):
            on_slice = self.measurements.slice_part(label, k)
            whole = self.measurements.volume_part(label)
            values = {"label": label.name}
            if on_slice is not None:
                m2, _density, side = on_slice
                values.update(long_mm=m2.long_axis.length_mm, short_mm=m2.short_axis.length_mm,
                              area_mm2=m2.area_mm2, side=side,
                              pieces=[p.long_axis_mm for p in m2.pieces] or [m2.long_axis.length_mm])
                if label.visible:
                    axes.append((label, m2))
            if whole is not None:
                m3, density = whole
                values.update(volume_ml=m3.volume_ml, first_slice=m3.first_slice, last_slice=m3.last_slice,
                              hu_mean=m3.hu_mean, hu_std=m3.hu_std)
                if density is not None:
                    values.update(density=DENSITY_WORD[density.label], density_diff_hu=density.difference_hu)
            self.rows[label.id] = values
            self._fill_row(row, label, values)
        self._show_active()
        self.overlay.show(axes)
        self.measured.emit()

    def _fill_row(self, row: int, label: Label, v: dict) -> None:
        def fmt(key, spec):
            return format(v[key], spec) if v.get(key) is not None else "–"

        numbering = self.slice_view.numbering
        slices = numbering.span_text(v["first_slice"], v["last_slice"] + 1) if "first_slice" in v else "–"
        hu = f"{v['hu_mean']:.0f} ± {v['hu_std']:.0f}" if v.get("hu_mean") is not None else "–"
        density = f"{v['density']} ({v['density_diff_hu']:+.0f} HU)" if "density" in v else "–"
        pieces = v.get("pieces") or []
        pieces_text = "–" if not pieces else ("1" if len(pieces) == 1 else
                                             f"{len(pieces)}: " + ", ".join(f"{mm:.1f}" for mm in pieces) + " mm")
        cells = (label.name, fmt("long_mm", ".1f"), fmt("short_mm", ".1f"), fmt("area_mm2", ".0f"),
                 fmt("volume_ml", ".2f"), slices, hu, density, pieces_text)
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if col in (1, 2, 3, COL_PIECES) and len(pieces) > 1:
                item.setToolTip(f"{len(pieces)} separate pieces on this slice: axes and area are of the largest "
                                "(long axes " + ", ".join(f"{mm:.1f}" for mm in pieces) + " mm)")
            item.setData(Qt.ItemDataRole.UserRole, label.id)
            if col:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            else:
                item.setForeground(QColor(*label.color))
                item.setToolTip(label.name)
            self.table.setItem(row, col, item)

    def _on_selection_changed(self) -> None:
        if self._selecting:
            return
        rows = self.table.selectionModel().selectedRows()
        item = self.table.item(rows[0].row(), 0) if rows else None
        if item is not None and self.document.has_label(item.data(Qt.ItemDataRole.UserRole)):
            self.document.set_active(item.data(Qt.ItemDataRole.UserRole))

    def _show_active(self) -> None:
        """Select (and scroll to) the active label's row, without making it active again."""
        active = self.document.active_label if self.document.volume is not None else None
        self._selecting = True
        try:
            for row in range(self.table.rowCount()):
                item = self.table.item(row, 0)
                if active is not None and item is not None and item.data(Qt.ItemDataRole.UserRole) == active.id:
                    self.table.selectRow(row)
                    self.table.scrollToItem(item)
                    break
            else:
                self.table.clearSelection()
        finally:
            self._selecting = False

    def _go_to_label(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is None:
            return
        label_id = item.data(Qt.ItemDataRole.UserRole)
        values = self.rows.get(label_id, {})
        self.document.set_active(label_id)
        if "first_slice" in values and values.get("long_mm") is None:
            # Jump to the label when it is not on the shown slice.
            self.slice_view.set_slice((values["first_slice"] + values["last_slice"]) // 2)

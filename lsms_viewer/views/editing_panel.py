"""The Editing dock: brush radius, the HU range brush and fill are limited to, 3D pieces, and buttons for
the one-shot operations on the active label (fill holes, clear slice, interpolate)."""

from __future__ import annotations

from PySide6.QtGui import QAction
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

from lsms_viewer.state.edit_context import MAX_RADIUS_MM, MIN_RADIUS_MM, EditSettings
from lsms_viewer.views.slice_view import SliceView


class EditingPanel(QWidget):
    """Brush size, threshold limit and piece options, plus the one-shot slice operations."""

    def __init__(self, settings: EditSettings, slice_actions: list[QAction], slice_view: SliceView,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.slice_view = slice_view

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
        self.three_d.toggled.connect(self._on_three_d)

        brush_box = QGroupBox("Brush")
        form = QFormLayout(brush_box)
        form.addRow("Radius", self.radius)
        form.addRow(self.threshold)
        form.addRow(hu_row)
        form.addRow(self.three_d)

        ops = QGroupBox("Active label")
        ops_layout = QVBoxLayout(ops)
        for action in slice_actions:
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
        slice_view.window_changed.connect(self._on_window_changed)

    def use_window(self) -> None:
        low, high = self.slice_view.window.levels
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
        self.settings.radius_mm = float(value)

    def _on_three_d(self, on: bool) -> None:
        self.settings.three_d = bool(on)

    def _on_threshold(self, on: bool) -> None:
        self.settings.threshold = bool(on)
        for widget in (self.hu_low, self.hu_high, self.from_window):
            widget.setEnabled(bool(on))

    def _on_hu_range(self, *_args) -> None:
        self.follow_window = False
        self._store_range()

    def _store_range(self) -> None:
        low, high = sorted((self.hu_low.value(), self.hu_high.value()))
        self.settings.hu_range = (float(low), float(high))

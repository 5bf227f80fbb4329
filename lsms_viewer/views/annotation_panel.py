"""Annotation mode: the per-lesion form, composed expressions, consistency warnings, dataset export.

The form edits the *active* label. Diameter and density are filled from the measurement of the annotated
slice (never typed); the other attributes are chosen. "Compose" writes the full expression and the 50% and
25% ones from the attributes; each stays editable. Every expression is checked against the mask (size,
side, density) as it changes. The annotation is stored in ``label.meta["annotation"]`` through
``Document.update_label`` (so it is undoable and autosaved), when a field is committed (combo change,
Enter or leaving a text box), not on every keystroke.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from lsms_core.errors import LSMSError
from lsms_viewer.settings import settings as user_settings
from lsms_viewer.state.annotation import (
    BOUNDARIES,
    DENSITY_WORD,
    ENHANCEMENTS,
    FORM_FRACTIONS,
    LESION_NAMES,
    LESION_TYPES,
    SEGMENTS,
    SHAPES,
    Annotation,
    AnnotationError,
    LesionMeasurement,
    check_expression,
    diameter_mm_of,
    export_annotations,
    form_expressions,
    format_diameter,
)
from lsms_viewer.state.document import Document, Label
from lsms_viewer.state.measurements import Measurements
from lsms_viewer.views.slice_view import SliceView

EXPRESSION_ROWS = (("Full", None), ("50 %", 0.5), ("25 %", 0.25))


def _combo(values, labels=None) -> QComboBox:
    box = QComboBox()
    # Sized by a short text, not the longest choice ("arterial enhancement with washout"): the form must fit
    # a narrow dock without being cut at its right edge.
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)
    box.addItem("—", "")
    for value in values:
        box.addItem((labels or {}).get(value, value), value)
    return box


class AnnotationPanel(QWidget):
    """The annotation form of the active label."""

    exported = Signal(object)  # ExportReport

    def __init__(self, document: Document, measurements: Measurements, slice_view: SliceView, window_of=None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.measurements = measurements
        self.slice_view = slice_view
        self.window_of = window_of or (lambda: None)
        self.label: Label | None = None
        self.measurement: LesionMeasurement | None = None
        self._loading = False
        self.last_error: str | None = None
        self._timer = QTimer(self)  # a stroke changes the mask on every mouse move: measure once after
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.remeasure)

        self.title = QLabel("No active label")
        self.title.setWordWrap(True)
        self.slice_label = QLabel("–")
        self.slice_label.setWordWrap(True)
        self.use_slice = QPushButton("Annotate this slice")
        self.use_slice.setToolTip("The slice exported for this lesion (default: its largest long axis)")
        self.use_slice.clicked.connect(self.use_current_slice)
        slice_row = QHBoxLayout()
        slice_row.addWidget(self.slice_label, 1)
        slice_row.addWidget(self.use_slice)

        form_box, expr_box, export_box = self._attributes_box(), self._expressions_box(), self._dataset_box()

        # The form is taller than a laptop screen's dock: it scrolls, so showing it never grows the window
        # or squeezes the Labels table to a row (it asked for its full height: 860 -> 968 px).
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(slice_row)
        layout.addWidget(form_box)
        layout.addWidget(expr_box)
        layout.addWidget(export_box)
        layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)  # never cut silently
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)

        events = document.events
        events.active_label_changed.connect(self._on_active)
        events.label_changed.connect(self._on_label_changed)
        events.label_removed.connect(lambda label: self._on_active(self.document.active_label))
        events.volume_changed.connect(lambda: self._on_active(None))
        events.mask_changed.connect(self._on_mask_changed)
        self._on_active(document.active_label)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        return QSize(super().minimumSizeHint().width(), 120)  # it scrolls: never a reason to grow the window

    def _attributes_box(self) -> QGroupBox:
        """The lesion's attributes: chosen ones, and diameter and density as measured."""
        self.segment = _combo(SEGMENTS, {s: f"{s} ({lobe})" for s, lobe in
                                         zip(SEGMENTS, ("caudate", "left", "left", "left", "right", "right", "right",
                                                        "right"), strict=True)})
        self.shape = _combo(SHAPES)
        self.boundary = _combo(BOUNDARIES, {"clear": "clear (well-defined)", "blurred": "blurred (ill-defined)"})
        self.enhancement = _combo(ENHANCEMENTS)
        self.lesion_type = _combo(LESION_TYPES, LESION_NAMES)
        for box in (self.segment, self.shape, self.boundary, self.enhancement, self.lesion_type):
            box.currentIndexChanged.connect(self._on_attribute)
        self.diameter = QLabel("–")
        self.diameter.setToolTip("Long axis on the annotated slice, measured from the mask: of its largest connected "
                                 "piece when the label has several there")
        self.diameter.setWordWrap(True)
        self.density = QLabel("–")
        self.density.setToolTip("Median HU of the lesion against a 5 mm ring of surrounding tissue, other labels "
                                "kept out (as in the Measurements dock)")
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("free notes (not part of the expression)")
        self.notes.editingFinished.connect(self._on_attribute)

        form_box = QGroupBox("Lesion attributes")
        form = QFormLayout(form_box)
        form.addRow("Liver segment", self.segment)
        form.addRow("Diameter", self.diameter)
        form.addRow("Shape", self.shape)
        form.addRow("Boundary", self.boundary)
        form.addRow("Density", self.density)
        form.addRow("Enhancement", self.enhancement)
        form.addRow("Lesion type", self.lesion_type)
        form.addRow("Notes", self.notes)
        return form_box

    def _expressions_box(self) -> QGroupBox:
        """The composed expressions (full, 50 %, 25 %), editable, with the consistency warnings."""
        expr_box = QGroupBox("Referring expressions")
        expr_layout = QFormLayout(expr_box)
        self.compose_button = QPushButton("Compose from attributes")
        self.compose_button.clicked.connect(self.compose)
        expr_layout.addRow(self.compose_button)
        self.expression_edits: list[QLineEdit] = []
        for title, _fraction in EXPRESSION_ROWS:
            edit = QLineEdit()
            edit.editingFinished.connect(self._on_expressions)
            edit.textChanged.connect(self._check)
            expr_layout.addRow(title, edit)
            self.expression_edits.append(edit)
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #e0a030;")
        expr_layout.addRow(self.warnings)
        return expr_box

    def _dataset_box(self) -> QGroupBox:
        """Who annotated, which split, ready or not, and the export to a dataset folder."""
        self.annotator = QLineEdit(str(user_settings().value("annotation/annotator", "") or ""))
        self.annotator.setPlaceholderText("your name or initials")
        self.annotator.editingFinished.connect(self._on_annotator)
        self.done = QCheckBox("Ready for export")
        self.done.toggled.connect(self._on_attribute)
        self.split = _combo(("train", "val", "test"))
        self.split.setCurrentIndex(1)
        self.split.currentIndexChanged.connect(self._on_attribute)
        export_box = QGroupBox("Dataset")
        export_form = QFormLayout(export_box)
        export_form.addRow("Annotator", self.annotator)
        export_form.addRow("Split", self.split)
        export_form.addRow(self.done)
        self.export_slices = QComboBox()
        self.export_slices.addItem("the annotated slice of each lesion", "annotated")
        self.export_slices.addItem("every slice each lesion is on", "all")
        export_form.addRow("Export", self.export_slices)
        self.export_button = QPushButton("Export annotated lesions…")
        self.export_button.setToolTip("Append the lesions marked ready to a RefHL-Seg-style dataset folder")
        self.export_button.clicked.connect(self.export_dialog)
        export_form.addRow(self.export_button)
        return export_box

    # -- state <-> widgets ----------------------------------------------------------------------------
    def annotation(self) -> Annotation:
        return Annotation.from_json(self.label.meta.get("annotation")) if self.label is not None else Annotation()

    def _on_active(self, label: Label | None) -> None:
        self.label = label
        self._load()

    def _on_label_changed(self, label: Label, field_name: str) -> None:
        if self.label is not None and label.id == self.label.id and field_name in ("meta", "name"):
            self._load()

    def _on_mask_changed(self, label: Label, slices) -> None:
        if self.label is not None and label.id == self.label.id:
            self._timer.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.remeasure()  # measuring is skipped while annotation mode is hidden

    def _load(self) -> None:
        enabled = self.label is not None and self.document.volume is not None
        for widget in self.findChildren(QGroupBox):
            widget.setEnabled(enabled)
        self.use_slice.setEnabled(enabled)
        if not enabled:
            self.title.setText("No active label: segment or draw a lesion, then describe it here")
            self.measurement = None
            return
        self._loading = True
        try:
            ann = self.annotation()
            self.title.setText(f"<b>{self.label.name}</b>")
            a = ann.attributes
            for box, value in ((self.segment, a.segment), (self.shape, a.shape), (self.boundary, a.boundary),
                               (self.enhancement, a.enhancement), (self.lesion_type, a.lesion_type),
                               (self.split, ann.split)):
                box.setCurrentIndex(max(0, box.findData(value)))
            self.notes.setText(a.notes)
            for edit, text in zip(self.expression_edits, [*ann.expressions, "", "", ""], strict=False):
                edit.setText(text)
            self.done.setChecked(ann.done)
        finally:
            self._loading = False
        self.remeasure()

    # -- measuring ------------------------------------------------------------------------------------
    def annotated_slice(self) -> int | None:
        ann = self.annotation()
        return ann.slice_index

    def remeasure(self, force: bool = False) -> None:
        """Measure the label on its annotated slice (default: its largest) and refresh diameter, density."""
        self._timer.stop()
        self.measurement = None
        if not (force or self.isVisible()):
            return  # annotation mode is hidden: measured when shown, or when the form needs it
        if self.label is None or self.document.volume is None or not self.label.mask.any():
            self.diameter.setText("–")
            self.density.setText("–")
            self.slice_label.setText("The label is empty")
            self._check()
            return
        k = self.annotated_slice()
        if k is None and self.label.mask[self.slice_view.current_slice].any():
            k = self.slice_view.current_slice  # not chosen yet: the slice the annotator is looking at
        try:
            self.measurement = self.measurements.lesion(self.label, k)
        except AnnotationError as exc:
            self.slice_label.setText(str(exc))
            return
        m = self.measurement
        chosen = "annotated" if self.annotated_slice() is not None else "shown slice, not chosen yet"
        self.slice_label.setText(f"Slice {self.slice_view.numbering.number(m.slice_index)} ({chosen})")
        # One rounding: the diameter the expressions will say (0.1 mm, halves up), shown in cm and mm.
        pieces = f", largest of {m.pieces} pieces on this slice" if m.pieces > 1 else ""
        self.diameter.setText(format_diameter(m.diameter_mm) + f"  ({diameter_mm_of(m.diameter_mm):.1f} mm{pieces})"
                              if m.diameter_mm else "not on this slice")
        density = m.lesion_density
        self.density.setText(f"{DENSITY_WORD[density.label]}  ({density.difference_hu:+.0f} HU vs surroundings)"
                             if density else "not measurable (no surrounding tissue)")
        self._check()

    def use_current_slice(self) -> None:
        if self.label is None:
            return
        k = self.slice_view.current_slice
        if not self.label.mask[k].any():
            self.title.setText(f"<b>{self.label.name}</b>: not on slice {self.slice_view.numbering.number(k)}; "
                               "draw it there first")
            return
        ann = self.annotation()
        ann.slice_index = k
        self._store(ann)

    # -- editing --------------------------------------------------------------------------------------
    def _form_annotation(self) -> Annotation:
        if self.measurement is None:
            self.remeasure(force=True)
        ann = self.annotation()
        a = ann.attributes
        a.segment = self.segment.currentData() or ""
        a.shape = self.shape.currentData() or ""
        a.boundary = self.boundary.currentData() or ""
        a.enhancement = self.enhancement.currentData() or ""
        a.lesion_type = self.lesion_type.currentData() or ""
        a.notes = self.notes.text().strip()
        m = self.measurement
        if m is not None:
            a.diameter_mm = diameter_mm_of(m.diameter_mm) if m.diameter_mm else None
            density = m.lesion_density
            a.density = DENSITY_WORD[density.label] if density else ""
        if ann.slice_index is None and m is not None:
            ann.slice_index = m.slice_index
        rows = [(e.text().strip(), f) for e, f in zip(self.expression_edits, FORM_FRACTIONS, strict=True)
                if e.text().strip()]
        ann.expressions = [text for text, _ in rows]
        ann.fractions = [f for _, f in rows]  # by row: full, 50 %, 25 % (typed or composed)
        ann.annotator = self.annotator.text().strip()
        ann.split = self.split.currentData() or "train"
        ann.done = self.done.isChecked()
        return ann

    def _on_attribute(self, *_args) -> None:
        if not self._loading and self.label is not None:
            self._store(self._form_annotation())

    def _on_expressions(self) -> None:
        self._on_attribute()

    def _on_annotator(self) -> None:
        user_settings().setValue("annotation/annotator", self.annotator.text().strip())
        self._on_attribute()

    def compose(self) -> None:
        """Fill the three expressions from the attributes (the annotator may edit them afterwards)."""
        if self.label is None:
            return
        ann = self._form_annotation()
        texts = form_expressions(ann.attributes)
        self._loading = True
        try:
            for edit, text in zip(self.expression_edits, texts, strict=True):
                edit.setText(text)
        finally:
            self._loading = False
        ann.expressions = texts
        ann.fractions = list(FORM_FRACTIONS)
        self._store(ann)

    def _store(self, ann: Annotation) -> None:
        meta = dict(self.label.meta)
        new = ann.to_json()
        if meta.get("annotation") == new:
            return
        meta["annotation"] = new
        self.document.update_label(self.label.id, meta=meta)

    def _check(self, *_args) -> list[str]:
        """Consistency of every expression with the mask; shows and returns the warnings."""
        found = []
        if self.measurement is not None:
            for (title, _f), edit in zip(EXPRESSION_ROWS, self.expression_edits, strict=True):
                for warning in check_expression(edit.text(), self.measurement):
                    found.append(f"{title}: {warning}")
        self.warnings.setText("\n".join(f"⚠ {w}" for w in found))
        return found

    @property
    def current_warnings(self) -> list[str]:
        if self.measurement is None:
            self.remeasure(force=True)
        return self._check()

    # -- export ---------------------------------------------------------------------------------------
    def export_to(self, root: str | Path):
        """Append every label marked ready to the dataset at ``root``; returns the report (or None)."""
        volume = self.document.volume
        window = self.window_of()
        try:
            report = export_annotations(root, volume, self.document.labels, window=window,
                                        annotator=self.annotator.text().strip(),
                                        slices=self.export_slices.currentData() or "annotated")
        except LSMSError as exc:
            self.last_error = str(exc)
            return None
        self.last_error = None
        self.exported.emit(report)
        return report

    def export_dialog(self) -> None:
        if self.document.volume is None:
            return
        start = str(user_settings().value("annotation/dataset", "") or Path.home())
        folder = QFileDialog.getExistingDirectory(
            self, "Dataset folder (an existing dataset to append to, or an empty folder)", start)
        if not folder:
            return
        user_settings().setValue("annotation/dataset", folder)
        warnings = [f"{lab.name}: {w}" for lab in self.document.labels for w in self._label_warnings(lab)]
        if warnings:
            text = "Some expressions contradict their masks:\n\n" + "\n".join(warnings) + "\n\nExport anyway?"
            answer = QMessageBox.question(self, "Check the expressions", text)
            if answer != QMessageBox.StandardButton.Yes:
                return
        report = self.export_to(folder)
        if report is None:
            QMessageBox.warning(self, "Export failed", self.last_error or "unknown error")
        else:
            QMessageBox.information(self, "Exported", f"{len(report.samples)} sample(s) appended to {report.root} "
                                                      f"as case {report.case_id}.")

    def _label_warnings(self, label: Label) -> list[str]:
        ann = Annotation.from_json(label.meta.get("annotation"))
        if not ann.done or not label.mask.any():
            return []
        m = self.measurements.lesion(label, ann.slice_index)
        return [w for e in ann.expressions for w in check_expression(e, m)]

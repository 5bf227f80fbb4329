"""The expression bar under the image: words, scope (this slice / a range / the whole volume), Run, progress.

It only collects what the user asks for and shows progress; the segmentation controller starts the run.
"""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from lsms_viewer.display.slice_numbers import SliceNumbering
from lsms_viewer.views.elided_label import ElidedLabel

SCOPES = (("slice", "This slice"), ("range", "Slices"), ("volume", "Whole volume"))
_MAX_HISTORY = 50


class ExpressionBar(QWidget):
    """Emits ``run_requested(expression, scope)`` on Enter or Segment; ``cancel_requested`` on Cancel."""

    run_requested = Signal(str, str)
    scope_chosen = Signal(str)  # the user picked a scope in the box (not set by the program)
    cancel_requested = Signal()
    rerun_cleared = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._history: list[str] = []
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("Describe the lesion, e.g. “the smaller low-density nodule in the right "
                                     "lobe”, and press Enter")
        self.edit.setClearButtonEnabled(True)
        self.edit.returnPressed.connect(self._submit)
        self._completer_model = QStringListModel(self)
        completer = QCompleter(self._completer_model, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.edit.setCompleter(completer)

        self.scope = QComboBox()
        for key, title in SCOPES:
            self.scope.addItem(title, key)
        self.scope.setToolTip("Which axial slices the model segments")
        self.scope.currentIndexChanged.connect(self._scope_changed)
        self.scope.activated.connect(lambda _i: self.scope_chosen.emit(self.current_scope))
        self.range_from = QSpinBox()
        self.range_to = QSpinBox()
        for box, tip in ((self.range_from, "First slice (inclusive)"), (self.range_to, "Last slice (inclusive)")):
            box.setRange(1, 1)
            box.setToolTip(tip)
            box.setKeyboardTracking(False)
        self.range_dash = QLabel("–")
        self.run_button = QPushButton("Segment")
        self.run_button.setDefault(True)
        self.run_button.setToolTip("Run the model on the chosen slices (Enter)")
        self.run_button.clicked.connect(self._submit)

        self.rerun_chip = QToolButton()
        self.rerun_chip.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.rerun_chip.setToolTip("Running will replace this label's mask; click to make a new label instead")
        self.rerun_chip.setStyleSheet("QToolButton { background: #3b4a5a; color: #e8eef4; border-radius: 3px; "
                                      "padding: 2px 6px; }")
        self.rerun_chip.clicked.connect(self.clear_rerun)
        self.rerun_chip.setMaximumWidth(280)
        self.rerun_chip.hide()

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current batch (Esc); existing labels are kept")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.hide()
        # The rows keep the height of the progress bar, Cancel and the range boxes when they are hidden, so
        # the image above does not jump when a run starts or ends or the scope changes.
        for widget in (self.progress, self.cancel_button, self.range_from, self.range_dash, self.range_to):
            policy = widget.sizePolicy()
            policy.setRetainSizeWhenHidden(True)
            widget.setSizePolicy(policy)
        # Messages quote the expression, which can be thousands of characters: elided, never wider than
        # the bar (a 2,729-character expression pushed the window to 17,018 px).
        self.message = ElidedLabel("", mode=Qt.TextElideMode.ElideMiddle)
        self.message.setStyleSheet("color: #9aa4ad;")

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.rerun_chip)
        row.addWidget(self.edit, 1)
        row.addWidget(self.scope)
        row.addWidget(self.range_from)
        row.addWidget(self.range_dash)
        row.addWidget(self.range_to)
        row.addWidget(self.run_button)
        status = QHBoxLayout()
        status.setContentsMargins(0, 0, 0, 0)
        status.addWidget(self.message, 1)
        status.addWidget(self.progress)
        status.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addLayout(status)
        self.rerun_label_id: int | None = None
        self.numbering = SliceNumbering()
        self._scope_changed()

    # -- scope -------------------------------------------------------------------------------------
    @property
    def current_scope(self) -> str:
        return self.scope.currentData()

    def set_scope(self, key: str) -> None:
        index = self.scope.findData(key)
        if index < 0:
            raise ValueError(f"unknown scope {key!r}")
        self.scope.setCurrentIndex(index)

    def set_numbering(self, numbering: SliceNumbering) -> None:
        """The slice numbers the view shows (array order or head first): the range boxes use them."""
        start, stop = self.slice_range()  # in the numbers shown until now: the same slices stay chosen
        self.numbering = SliceNumbering(numbering.count, numbering.reverse)
        for box in (self.range_from, self.range_to):
            box.setRange(1, max(1, numbering.count))
        if stop <= numbering.count:
            self.set_slice_range(start, stop)

    def set_slice_count(self, count: int, current: int) -> None:
        """A new volume: range limits in slice numbers, the range centred on ``current``."""
        for box in (self.range_from, self.range_to):
            box.setRange(1, max(1, count))
        self.centre_range(current, count)

    def centre_range(self, current: int, count: int, half: int = 5) -> None:
        """The range: ``half`` slices either side of ``current`` (0-based), kept inside the volume."""
        self.set_slice_range(max(0, current - half), min(count, current + half + 1))

    def slice_range(self) -> tuple[int, int]:
        """[start, stop) 0-based from the spin boxes (in either order)."""
        return self.numbering.indices(self.range_from.value(), self.range_to.value())

    def set_slice_range(self, start: int, stop: int) -> None:
        lo, hi = self.numbering.span(start, stop)
        self.range_from.setValue(lo)
        self.range_to.setValue(hi)

    def _scope_changed(self) -> None:
        show = self.current_scope == "range"
        for widget in (self.range_from, self.range_dash, self.range_to):
            widget.setVisible(show)

    # -- re-run ------------------------------------------------------------------------------------
    def set_rerun(self, label_id: int, name: str, expression: str) -> None:
        self.rerun_label_id = label_id
        shown = self.rerun_chip.fontMetrics().elidedText(name, Qt.TextElideMode.ElideMiddle, 200)
        self.rerun_chip.setText(f"Replacing “{shown}” ✕")
        self.rerun_chip.setToolTip(f"Running will replace the mask of “{name}”; click to make a new label instead")
        self.rerun_chip.show()
        self.edit.setText(expression)
        self.edit.setFocus()
        self.edit.selectAll()

    def clear_rerun(self) -> None:
        if self.rerun_label_id is not None:
            self.rerun_label_id = None
            self.rerun_chip.hide()
            self.rerun_cleared.emit()

    # -- what the segmentation controller sets -------------------------------------------------------
    def set_words(self, text: str) -> None:
        self.edit.setText(text)

    def focus_words(self) -> None:
        self.edit.setFocus()
        self.edit.selectAll()

    def set_can_run(self, can_run: bool, why: str, can_type: bool) -> None:
        """Enable Segment (its tooltip says why it is off) and the words box."""
        self.run_button.setEnabled(can_run)
        self.run_button.setToolTip(why)
        self.edit.setEnabled(can_type)

    def set_cancelling(self) -> None:
        self.cancel_button.setEnabled(False)
        self.show_message("Cancelling after the current batch…")

    @property
    def waiting_for_first_batch(self) -> bool:
        """Busy, and no batch has reported progress yet (the model may still be loading)."""
        return self.progress.isVisibleTo(self) and self.progress.maximum() == 0

    # -- running -----------------------------------------------------------------------------------
    def _submit(self) -> None:
        text = " ".join(self.edit.text().split())
        if not text:
            self.show_message("Type what to segment first.", error=True)
            return
        # Even when Segment is disabled, Enter asks: the window then says why it cannot run (no model yet,
        # a run in progress) instead of ignoring the key.
        self.remember(text)
        self.run_requested.emit(text, self.current_scope)

    def remember(self, text: str) -> None:
        if text in self._history:
            self._history.remove(text)
        self._history.insert(0, text)
        del self._history[_MAX_HISTORY:]
        self._completer_model.setStringList(self._history)

    def set_busy(self, busy: bool, total: int = 0, cancellable: bool = True) -> None:
        self.run_button.setEnabled(not busy)
        self.scope.setEnabled(not busy)
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy and cancellable)
        self.cancel_button.setEnabled(True)
        if busy:
            self.progress.setRange(0, 0)  # busy indicator until the first batch reports
            self.progress.setFormat("loading…")

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"{done} / {total} slices")

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #e07a5f;" if error else "color: #9aa4ad;")
        self.message.setText(text)

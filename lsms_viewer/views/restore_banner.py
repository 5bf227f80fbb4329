"""A yes/no question inside the window (restore saved work?), answered with two buttons: never a modal
dialog, which would block a scripted or headless start and steal the focus while the user works."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget


class RestoreBanner(QWidget):
    """A yes/no question inside the window (restore saved work?), answered with two buttons."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.yes_button = QPushButton("Restore")
        self.no_button = QPushButton("Keep aside")
        self.yes_button.clicked.connect(lambda: self.answer(True))
        self.no_button.clicked.connect(lambda: self.answer(False))
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.yes_button)
        layout.addWidget(self.no_button)
        self.setStyleSheet("background: #24425c; color: #e8f1f8;")
        self._callback = None

    def set_question(self, title: str, text: str, callback) -> None:
        self.label.setText(f"<b>{title}</b><br>{text}".replace("\n\n", "<br>").replace("\n", "<br>"))
        self._callback = callback

    def text(self) -> str:
        return self.label.text()

    def answer(self, yes: bool) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback(bool(yes))

"""Building menu and toolbar actions the same way everywhere in the window."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence


def make_action(parent: QObject, text: str, slot, shortcut=None, tip: str = "",
                checkable: bool = False) -> QAction:
    """An action with its shortcut(s) (one key sequence or a list), tool and status tip, and slot."""
    action = QAction(text, parent)
    if isinstance(shortcut, (list, tuple)):
        action.setShortcuts([QKeySequence(s) for s in shortcut])
    elif shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if tip:
        action.setToolTip(tip)
        action.setStatusTip(tip)
    action.setCheckable(checkable)
    action.triggered.connect(slot)
    return action

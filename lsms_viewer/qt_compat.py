"""A guard against a reference-counting bug in some PySide6 builds (seen with 6.12.0 on Python 3.11).

In those builds every call of a Qt method that returns ``void`` (``update()``, ``setText()``,
``QPainter.setPen()``, ...) releases one reference to ``None`` that it never took, and every
``Signal.emit()`` one reference to ``True``. On Python 3.12 and later these singletons are immortal and
nothing happens; on 3.10/3.11 their counts fall by one per call, and after a few thousand calls (a
minute of scrolling through slices) one reaches zero and the interpreter aborts with "Fatal Python
error: none_dealloc" (or bool_dealloc). Measured here: 1,000 ``QLabel.update()`` calls = 1,000 lost
references to None.

The guard measures whether the running PySide6 has the bug; if so it adds back a large number of
references to ``None``, ``True`` and ``False`` whenever their counts run low (checked at install, by a
5-second timer and on every slice change), so no count can reach zero. It allocates nothing. On a fixed
PySide6, or on Python >= 3.12, it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

_TOP_UP = 1_000_000  # references added per top-up: far more than a session's void calls in 5 s
_LOW_WATER = 250_000
_SINGLETONS = (None, True, False)
_timer = None
_leaks: bool | None = None


def pyside_leaks_singletons() -> bool:
    """True when void Qt calls or signal emits in this process drop references to None/True/False."""
    global _leaks
    if _leaks is None:
        if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
            _leaks = False  # immortal singletons: lost references are harmless
        else:
            from PySide6.QtCore import QObject, Signal

            class _Probe(QObject):
                ping = Signal()

            probe = _Probe()
            before = [sys.getrefcount(obj) for obj in _SINGLETONS]
            for _ in range(100):
                probe.setObjectName("probe")
                probe.ping.emit()
            after = [sys.getrefcount(obj) for obj in _SINGLETONS]
            _leaks = any(b - a > 50 for a, b in zip(after, before, strict=True))
    return _leaks


def _top_up() -> None:
    for obj in _SINGLETONS:
        if sys.getrefcount(obj) < _LOW_WATER:
            # CPython < 3.12 keeps ob_refcnt as the object's first word. Adding to it gives back the
            # references the bug took, without allocating anything; these singletons are never freed
            # anyway, so a count that is too high costs nothing.
            ctypes.c_ssize_t.from_address(id(obj)).value += _TOP_UP


def install_none_guard() -> bool:
    """Protect this process if its PySide6 has the bug; returns whether the guard is active.

    Call it once a QCoreApplication exists (the periodic top-up needs an event loop); calling it again is
    harmless.
    """
    global _timer
    if not pyside_leaks_singletons():
        return False
    _top_up()
    if _timer is None:
        from PySide6.QtCore import QCoreApplication, QTimer

        app = QCoreApplication.instance()
        if app is not None:
            _timer = QTimer(app)
            _timer.setInterval(5000)
            _timer.timeout.connect(_top_up)
            _timer.start()
    return True


def ensure_none_reserve() -> None:
    """Cheap check for hot paths (slice changes): top up now if a reserve runs low."""
    if _leaks and min(sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)) < _LOW_WATER:
        _top_up()

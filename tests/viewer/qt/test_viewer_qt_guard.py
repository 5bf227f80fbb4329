"""The PySide6 reference-count guard: thousands of void Qt calls and signal emits must not abort Python.

With PySide6 6.12.0 on Python 3.11 the script below aborts without the guard (checked by hand: exit code
134, "deallocating None"); with a PySide6 that does not leak, the guard stays off and the script passes too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QApplication, QLabel
    app = QApplication([])
    from lsms_viewer.qt_compat import install_none_guard
    install_none_guard()  # what create_application() and every SliceView do

    class Probe(QObject):
        ping = Signal()

    label, probe = QLabel(), Probe()
    for _ in range(30000):  # far more than the ~5,000 references None and True start with
        label.update()
        probe.ping.emit()
    print("survived")
""")


def test_many_void_calls_and_emits_do_not_abort_the_interpreter():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "survived" in done.stdout


def test_guard_is_active_exactly_when_this_pyside_leaks():
    from PySide6.QtCore import QObject

    from lsms_viewer.qt_compat import install_none_guard, pyside_leaks_singletons

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(200):
        probe.setObjectName("x")
    leaks_now = sys.getrefcount(None) < before - 100
    if pyside_leaks_singletons():
        assert install_none_guard() and sys.getrefcount(None) > 100_000
    else:
        assert not leaks_now and install_none_guard() is False


SIMULATED = textwrap.dedent("""
    import ctypes, sys
    import lsms_viewer.qt_compat as guard
    guard._leaks = {guarded}  # as if this PySide6 leaked
    for step in range(30):
        guard.ensure_none_reserve()  # what every slice change does
        for _ in range(1000):  # a leaking build's 1,000 void calls
            ctypes.pythonapi.Py_DecRef(ctypes.py_object(None))
    print("survived")
""")


def test_the_top_up_outlasts_a_simulated_leak_that_kills_an_unguarded_interpreter():
    run = [sys.executable, "-c"]
    guarded = subprocess.run(run + [SIMULATED.format(guarded=True)], capture_output=True, text=True, timeout=60)
    assert guarded.returncode == 0 and "survived" in guarded.stdout, guarded.stderr[-2000:]
    unguarded = subprocess.run(run + [SIMULATED.format(guarded=False)], capture_output=True, text=True,
                               timeout=60)
    assert unguarded.returncode != 0 and "deallocating None" in unguarded.stderr

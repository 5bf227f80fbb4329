"""The PySide6 reference-count guard: thousands of void Qt calls and signal emits must not abort Python."""

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
    import lsms_viewer  # installs the guard

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

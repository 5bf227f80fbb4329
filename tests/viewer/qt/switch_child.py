"""Child process of the clean-quit test: opens study A, draws, opens study B, draws, then quits cleanly.

argv: <ct A> <ct B>. Exits 0 once the window has closed; the parent reads the session folder afterwards.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

from PySide6.QtWidgets import QApplication  # noqa: E402
from qt_helpers import drag  # noqa: E402

app = QApplication([])

from lsms_viewer.app import build_viewer  # noqa: E402

viewer = build_viewer()
win = viewer.window
win.resize(900, 700)
win.show()
viewer.editing.set_tool("brush")
viewer.editing.panel.radius.setValue(3.0)


def open_and_draw(path: Path, points) -> None:
    previous = win.document.volume
    assert viewer.opening.open_path(path)
    deadline = time.time() + 60
    while (win.document.volume is previous or viewer.opening.is_loading()) and time.time() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert win.document.volume is not previous, win.last_error
    app.processEvents()
    drag(win, points)
    app.processEvents()
    assert viewer.autosaver.last_error is None, viewer.autosaver.last_error


open_and_draw(Path(sys.argv[1]), [(20, 15), (25, 25)])
open_and_draw(Path(sys.argv[2]), [(30, 30), (34, 40)])
win.quit_action.trigger()  # File ▸ Quit (Ctrl+Q)
app.processEvents()
print("CLOSED", flush=True)

"""Child process of the crash test: opens a study in the real main window, edits it, then waits to be killed.

argv: <ct file> <output folder>. Prints READY once the edits are done and autosaved; writes the labels it
holds (masks .npy, fields .json) so the parent can compare what it restores.
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from qt_helpers import drag  # noqa: E402

app = QApplication([])

from lsms_viewer.app import build_viewer  # noqa: E402

ct, out = Path(sys.argv[1]), Path(sys.argv[2])
viewer = build_viewer()
win = viewer.window
win.resize(900, 700)
win.show()
editing = viewer.editing
assert viewer.opening.open_path(ct)
deadline = time.time() + 60
while win.document.volume is None and time.time() < deadline:  # the study is read in the background
    app.processEvents()
    time.sleep(0.01)
assert win.document.volume is not None, win.last_error
app.processEvents()
editing.set_tool("brush")
editing.panel.radius.setValue(3.0)
view = win.slice_view
view.set_slice(3)
drag(win, [(20, 15), (25, 25), (30, 30)])
first = win.document.active_label
win.document.update_label(first.id, name="dark lesion", expression="the hypodense lesion in the right lobe",
                          meta={"annotation": {"segment": "VII", "notes": "ünïcode ok"}})
view.set_slice(6)
drag(win, [(32, 60)])
# A second label: no active label -> the brush creates one.
win.document.set_active(None)
drag(win, [(40, 40), (44, 48)])
win.document.update_label(win.document.active_label.id, opacity=0.8)
app.processEvents()
assert viewer.autosaver.saves > 0, viewer.autosaver.last_error
labels = win.document.labels
for label in labels:
    np.save(out / f"mask_{label.id}.npy", label.mask)
(out / "labels.json").write_text(json.dumps([
    {"id": lab.id, "name": lab.name, "expression": lab.expression, "meta": lab.meta, "opacity": lab.opacity,
     "color": list(lab.color)} for lab in labels
]))
print("READY", viewer.autosaver.last_path, flush=True)
while True:  # keep editing-free, alive, until killed
    app.processEvents()
    time.sleep(0.05)

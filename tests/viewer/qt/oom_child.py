"""Child process of the out-of-memory test: a real main window whose model run hits a real allocation failure.

argv: <checkpoint folder> <megabytes of address space left to the run> <settings folder>. The address-space
cap (RLIMIT_AS) is set only after the model, the words' embedding and the window exist, so the failure
comes from the run itself, on the engine's real code path. Prints OUTCOME, ERROR and LABELS lines.
"""

import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

app = QApplication([])
QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[3])

from lsms_viewer.app import build_viewer  # noqa: E402
from lsms_viewer.demo import synthetic_abdomen  # noqa: E402
from lsms_viewer.inference import EngineHost  # noqa: E402

WORDS = "the larger low-density lesion in the right lobe"
volume, masks = synthetic_abdomen(shape=(4, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
host = EngineHost(sys.argv[1], device="cpu", threads=1, refine="off")  # the network's own OOM path
host.get().predict(volume.array[0], WORDS)  # loads the model and caches the words' embedding
viewer = build_viewer(engine=host)
win = viewer.window
win.show()
viewer.opening.set_volume(volume)
kept = win.document.add_label(masks["larger lesion"], expression="drawn by hand")
outcomes = []
viewer.segmentation.done.connect(outcomes.append)
win.expression_bar.set_scope("volume")
win.expression_bar.edit.setText(WORDS)
app.processEvents()

status = Path("/proc/self/status").read_text().splitlines()
vm = int(next(line for line in status if line.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[2]) * 2**20, resource.RLIM_INFINITY))
win.expression_bar.run_button.click()
deadline = time.time() + 120
while not outcomes and time.time() < deadline:
    app.processEvents()
    time.sleep(0.01)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
app.processEvents()
print("OUTCOME", outcomes)
print("ERROR", repr(win.last_error))
print("LABELS", [label.expression for label in win.document.labels])
print("MESSAGE", win.expression_bar.message.text())
print("RUN_ENABLED", win.expression_bar.run_button.isEnabled())
sys.stdout.flush()
os._exit(0)  # skip Qt's teardown: the test is about the run, not about exiting

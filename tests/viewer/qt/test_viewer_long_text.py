"""Text never grows the window (issue 15 item 4): a 2,729-character expression pushed it to 17,018 px."""

from __future__ import annotations

import numpy as np

LONG = " ".join(f"the hypodense lesion number {i} in segment VII" for i in range(62))


def test_a_long_expression_never_widens_the_window(viewer, volume, qtbot):
    assert len(LONG) > 2700
    viewer.opening.set_volume(volume)
    win = viewer.window
    qtbot.wait(20)
    width = win.width()
    bar = win.expression_bar
    bar.set_words(LONG)
    bar.show_message(f"Segmenting “{LONG}” on slices 1–12…")
    label = viewer.document.add_label(np.zeros(volume.shape, bool), expression=LONG)
    bar.set_rerun(label.id, label.name, LONG)
    qtbot.wait(50)
    assert win.width() == width
    assert win.minimumSizeHint().width() < width and bar.minimumSizeHint().width() < width
    assert bar.message.width() <= bar.width()
    shown = bar.message.text_shown()
    assert shown.startswith("Segmenting “the hypodense") and "…" in shown and shown.endswith("slices 1–12…")
    assert bar.message.toolTip().endswith("slices 1–12…") and LONG in bar.message.text()
    # A second time, as the issue saw it happen twice.
    bar.show_message(LONG + LONG)
    win.resize(win.width(), win.height())
    qtbot.wait(50)
    assert win.width() == width

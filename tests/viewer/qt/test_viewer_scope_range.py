"""The slice-range scope starts centred on the shown slice (issue 15 item 9): it said 55-65 on slice 96."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from lsms_core.volume import Volume


def test_choosing_slices_centres_the_range_on_the_shown_slice(viewer, qtbot):
    viewer.opening.set_volume(Volume(np.zeros((120, 32, 32), np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0)))
    win = viewer.window
    win.slice_view.set_slice(95)  # slice 96 on screen
    bar = win.expression_bar
    bar.scope.setFocus()
    qtbot.keyClick(bar.scope, Qt.Key.Key_Down)  # the user moves the box from "This slice" to "Slices"
    assert bar.current_scope == "range"
    assert (bar.range_from.value(), bar.range_to.value()) == (91, 101)
    assert viewer.segmentation.scope_range("range") == (90, 101)
    win.slice_view.set_slice(117)
    bar.scope.setCurrentIndex(0)
    qtbot.keyClick(bar.scope, Qt.Key.Key_Down)
    assert (bar.range_from.value(), bar.range_to.value()) == (113, 120)  # kept inside the volume

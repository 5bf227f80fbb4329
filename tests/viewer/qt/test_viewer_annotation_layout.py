"""Annotation mode keeps the layout (issue 15 item 8): the window grew past the screen (860 -> 1010 px),
the labels table collapsed to one or two rows and stayed so after leaving the mode, and consistency
warnings were clipped."""

from __future__ import annotations

import numpy as np


def _labels(viewer, volume, n=6):
    viewer.opening.set_volume(volume)
    for i in range(n):
        mask = np.zeros(volume.shape, bool)
        mask[6, 10 + 4 * i: 13 + 4 * i, 10:20] = True
        viewer.document.add_label(mask, expression=f"the hypodense lesion number {i + 1}")


def test_annotation_mode_keeps_the_window_and_the_labels_table(qtbot, volume):
    from lsms_viewer.app import build_viewer

    viewer = build_viewer()
    win = viewer.window
    qtbot.addWidget(win)
    win.resize(1280, 860)
    win.show()
    qtbot.waitExposed(win)
    _labels(viewer, volume)
    qtbot.wait(50)
    size = win.size()
    table = win.label_panel.table
    rows_before = table.viewport().height() // table.rowHeight(0)
    assert rows_before >= 4
    viewer.annotation_mode_action.trigger()
    qtbot.wait(50)
    assert viewer.annotation_dock.isVisible()
    assert win.size() == size
    assert table.viewport().height() // table.rowHeight(0) >= 3  # the labels stay usable beside the form
    # The form fits the dock's width: nothing cut at its right edge (combos sized by a short text).
    form = viewer.annotation_panel
    assert form.use_slice.geometry().right() <= form.scroll.viewport().width()
    # Every warning is readable: the form scrolls instead of clipping them.
    form = viewer.annotation_panel
    form.expression_edits[0].setText("the hyperdense 9 cm lesion in segment III of the left lobe")
    qtbot.wait(20)
    assert form.warnings.text()
    assert form.warnings.height() >= form.warnings.heightForWidth(form.warnings.width())
    viewer.annotation_mode_action.trigger()
    qtbot.wait(50)
    assert not viewer.annotation_dock.isVisible()
    assert win.size() == size
    assert table.viewport().height() // table.rowHeight(0) >= rows_before - 1

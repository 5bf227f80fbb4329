"""The label panel edits the Document through its own widgets: visibility, opacity, name, colour, delete."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from lsms_viewer.views.label_panel import COL_EXPRESSION, COL_NAME, COL_VISIBLE


def test_panel_widgets_change_the_labels_and_the_overlay(viewer, window, study):
    volume, lesions = study
    viewer.opening.set_volume(volume)
    mask = lesions["larger lesion"]
    k = int(np.argmax(mask.sum(axis=(1, 2))))
    window.slice_view.set_slice(k)
    doc, panel = window.document, window.label_panel
    first = doc.add_label(mask, expression="the larger low-density lesion")
    second = doc.add_label(lesions["smaller lesion"], expression="the smaller nodule")
    table = panel.table
    assert table.rowCount() == 2 and table.item(1, COL_EXPRESSION).text() == "the smaller nodule"

    table.item(0, COL_VISIBLE).setCheckState(Qt.CheckState.Unchecked)
    assert first.visible is False
    assert not np.any(window.slice_view.overlay_image() == first.id)

    table.selectRow(0)
    assert doc.active_label is first
    panel.opacity_slider.setValue(80)
    assert first.opacity == 0.8 and panel.opacity_value.text() == "80 %"

    table.item(0, COL_NAME).setText("Segment VII lesion")
    assert first.name == "Segment VII lesion"

    panel.set_label_color(first.id, (10, 200, 30))
    assert tuple(window.slice_view.overlay_item.lut[first.id, :3]) == (10, 200, 30)

    assert "mL" in panel.details.text() and "Segment VII lesion" in panel.details.text()
    panel.delete_button.click()
    assert doc.labels == [second] and table.rowCount() == 1


def test_details_follow_mask_edits_once_they_pause(viewer, qtbot, window, study):
    volume, lesions = study
    viewer.opening.set_volume(volume)
    doc, panel = window.document, window.label_panel
    mask = lesions["larger lesion"]
    label = doc.add_label(mask, expression="the larger low-density lesion")
    panel.table.selectRow(0)
    before = f"{int(mask.sum()):,} voxels"
    assert before in panel.details.text()
    grown = mask.copy()
    grown[:, :10, :10] = True
    for _ in range(5):  # a stroke: many mask changes in a row
        doc.replace_mask(label.id, grown)
        grown = grown.copy()
    assert before in panel.details.text()  # not recounted on every move
    qtbot.waitUntil(lambda: f"{int(grown.sum()):,} voxels" in panel.details.text(), timeout=3000)

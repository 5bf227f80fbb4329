"""New label (Ctrl+N) and the label table (issue 15 items 7 and 10): an empty label is made without the
model and exported as drawn by hand; long names show their distinguishing end and their full text; the
table scrolls to the active label and shares it with the Measurements table; Delete never moves."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from qt_helpers import drag

from lsms_core.volume import read_label_sidecar
from lsms_viewer.state.document import RunInfo


def test_ctrl_n_makes_an_empty_label_to_draw_by_hand(viewer, volume, qtbot, tmp_path):
    viewer.opening.set_volume(volume)
    win = viewer.window
    win.activateWindow()
    win.slice_view.canvas.setFocus()
    qtbot.keyClick(win.slice_view.canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    (label,) = viewer.document.labels
    assert not label.mask.any() and viewer.document.active_label is label and label.run is None
    assert viewer.editing.active_tool == "brush"
    drag(win, [(30, 20), (30, 30), (34, 30)])
    assert label.mask.any()
    assert win.label_panel.table.item(0, 3).text() == "drawn by hand"
    assert "drawn by hand" in win.label_panel.details.text()
    assert viewer.history.undo_text  # the new label and the stroke are undo steps
    assert viewer.export.export_labels(tmp_path / "labels.nii.gz")
    (info,) = read_label_sidecar(tmp_path / "labels.nii.gz")
    assert info.extra == {"origin": "drawn by hand"}


def _long_labels(viewer, volume, n=2):
    viewer.opening.set_volume(volume)
    doc = viewer.document
    labels = []
    for i in range(n):
        mask = np.zeros(volume.shape, bool)
        mask[6, 10 + i % 40: 14 + i % 40, 10:14] = True
        words = f"the hypodense lesion of about 2 cm in segment VII of the right lobe, number {i + 1}"
        labels.append(doc.add_label(mask, expression=words))
    return labels


def test_long_names_show_their_end_and_full_text(viewer, volume):
    first, second = _long_labels(viewer, volume)
    table = viewer.window.label_panel.table
    assert table.textElideMode() == Qt.TextElideMode.ElideMiddle
    for row, label in enumerate((first, second)):
        item = table.item(row, 1)
        assert item.text() == label.name and "…" not in label.name
        assert item.toolTip().startswith(label.name)
    # What is drawn in the cell ends with the distinguishing words.
    rect = table.visualItemRect(table.item(1, 1))
    shown = table.fontMetrics().elidedText(second.name, Qt.TextElideMode.ElideMiddle, rect.width() - 30)
    assert shown.endswith("number 2")


def test_the_table_scrolls_to_the_active_label_and_shares_selection(viewer, volume, qtbot):
    labels = _long_labels(viewer, volume, n=40)
    panel = viewer.window.label_panel
    viewer.document.set_active(labels[0].id)
    qtbot.wait(20)
    viewer.document.set_active(labels[-1].id)
    qtbot.wait(20)
    table = panel.table
    rect = table.visualItemRect(table.item(panel.row_of(labels[-1].id), 1))
    assert table.viewport().rect().intersects(rect)
    measure = viewer.measure_panel
    measure.refresh()
    rows = measure.table.selectionModel().selectedRows()
    assert [measure.table.item(r.row(), 0).data(Qt.ItemDataRole.UserRole) for r in rows] == [labels[-1].id]
    measure.table.selectRow(3)  # choosing a row there makes it the active label here
    assert viewer.document.active_label is labels[3]
    assert panel.selected_label() is labels[3]


def test_the_delete_button_does_not_move_when_details_grow(viewer, volume, qtbot):
    viewer.opening.set_volume(volume)
    doc = viewer.document
    mask = np.zeros(volume.shape, bool)
    mask[6, 10:14, 10:14] = True
    plain = doc.add_label(mask.copy(), name="plain")
    notes = [f"note {i}: the model ran on the CPU with a fallback that needs saying" for i in range(4)]
    run = RunInfo("the bright one", 1.0, "cpu", "demo", False, (0, volume.shape[0]), notes=notes)
    noted = doc.add_label(mask.copy(), expression="the bright one", run=run)
    panel = viewer.window.label_panel
    doc.set_active(plain.id)
    qtbot.wait(50)
    before = panel.delete_button.mapTo(viewer.window, panel.delete_button.rect().center())
    doc.set_active(noted.id)
    qtbot.wait(50)
    assert panel.details.text().count("note ") == 4
    assert panel.delete_button.mapTo(viewer.window, panel.delete_button.rect().center()) == before

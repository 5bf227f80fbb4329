"""View ▸ Number slices from the head (issue 15 item 12): slice 1 is the most superior slice, as many PACS
number them; every number the window shows follows, the indices inside do not."""

from __future__ import annotations

import numpy as np

from lsms_core.volume import Volume


def _feet_first_volume() -> Volume:
    # Origin z = 0 and +z spacing: index 0 is the most inferior slice, the last one the most superior.
    return Volume(np.zeros((20, 32, 32), np.int16), (1.0, 1.0, 2.5), (0.0, 0.0, 0.0))


def test_head_first_numbering_everywhere(viewer, qtbot):
    viewer.opening.set_volume(_feet_first_volume())
    win = viewer.window
    view = win.slice_view
    view.set_slice(18)
    assert win.slice_label.text().startswith("Slice 19 / 20")
    mask = np.zeros((20, 32, 32), bool)
    mask[16:19, 10:20, 10:20] = True
    viewer.document.add_label(mask, name="near the dome")
    win.head_first_action.trigger()
    assert view.current_slice == 18  # the same slice is shown, numbered from the head
    assert win.slice_label.text().startswith("Slice 2 / 20 (head first)")
    assert view.position_label.text().split()[0] == "2"
    viewer.measure_panel.refresh()
    assert viewer.measure_panel.table.item(0, 5).text() == "2–4"
    assert "slices 2–4" in win.label_panel.details.text()
    bar = win.expression_bar
    bar.centre_range(18, 20)
    assert (bar.range_from.value(), bar.range_to.value()) == (1, 7)
    assert viewer.segmentation.scope_range("range") == (13, 20)  # indices: slices numbered 1-7
    # Remembered for the next start.
    from lsms_viewer import settings as user_settings

    assert user_settings.head_first_numbering()
    win.head_first_action.trigger()
    assert win.slice_label.text().startswith("Slice 19 / 20 ·")
    assert viewer.segmentation.scope_range("range") == (13, 20)  # the same slices stay chosen
    assert (bar.range_from.value(), bar.range_to.value()) == (14, 20)

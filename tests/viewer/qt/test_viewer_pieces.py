"""Long axis across pieces (issue 15 item 6): a label with one piece per tumour, or a stray brush dot, was
measured from one piece to the other (137.9 mm; 130.9 mm for a dot, and the form proposed 13.0 cm). The
largest connected piece on the slice is measured, said so, and the pieces are listed."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_core.measure import measure_2d


@pytest.fixture
def viewer(make_viewer):
    return make_viewer(1200, 900)


def _two_pieces(volume, k):
    mask = np.zeros(volume.shape, bool)
    mask[k, 20:34, 8:20] = True  # the lesion
    mask[k, 50, 70] = True  # a stray brush dot far away
    return mask


def test_the_largest_piece_is_measured_and_the_pieces_listed(viewer, volume):
    win = viewer.window
    k = win.current_slice()
    mask = _two_pieces(volume, k)
    label = viewer.document.add_label(mask, name="lesion and a dot")
    panel = viewer.measure_panel
    panel.refresh()
    spacing = (volume.spacing[1], volume.spacing[0])
    lesion_only = measure_2d(mask[k] & (np.arange(mask.shape[1])[:, None] < 40), spacing)
    across = measure_2d(mask[k], spacing).long_axis.length_mm
    row = panel.rows[label.id]
    assert row["long_mm"] == pytest.approx(lesion_only.long_axis.length_mm) and row["long_mm"] < across / 2
    assert row["area_mm2"] == pytest.approx(lesion_only.area_mm2)
    assert len(row["pieces"]) == 2
    assert panel.table.item(0, 8).text().startswith("2: ")
    assert "largest" in panel.table.item(0, 1).toolTip()
    texts = [item.toPlainText() for item in panel.overlay._items if hasattr(item, "toPlainText")]
    assert any("largest of 2 pieces" in t for t in texts)
    # The annotation form proposes the lesion's diameter, and says it is the largest piece's.
    viewer.annotation_mode_action.trigger()
    form = viewer.annotation_panel
    form.remeasure(force=True)
    assert form.measurement.diameter_mm == pytest.approx(lesion_only.long_axis.length_mm)
    assert "largest of 2 pieces" in form.diameter.text()
    assert f"{lesion_only.long_axis.length_mm:.1f} mm" in form.diameter.text()


def test_one_piece_is_measured_as_before(viewer, volume):
    win = viewer.window
    k = win.current_slice()
    mask = np.zeros(volume.shape, bool)
    mask[k, 20:34, 8:20] = True
    label = viewer.document.add_label(mask)
    viewer.measure_panel.refresh()
    row = viewer.measure_panel.rows[label.id]
    assert row["pieces"] == [pytest.approx(row["long_mm"])]
    assert viewer.measure_panel.table.item(0, 8).text() == "1"

"""Measurements and annotation mode in the real main window (offscreen Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_core.data.format import read_dataset
from lsms_core.measure import measure_2d


@pytest.fixture
def viewer(make_viewer):
    return make_viewer(1200, 900)


@pytest.fixture
def window(viewer):
    return viewer.window


def _dark(volume):
    mask = np.abs(volume.array - 10) < 15
    mask[:, :, volume.shape[2] // 2 :] = False
    return mask


def test_measure_panel_shows_lsms_core_numbers_and_draws_axes(viewer, window, volume):
    panel = viewer.measure_panel
    label = window.document.add_label(_dark(volume), name="dark")
    panel.refresh()
    k = window.current_slice()
    row = panel.rows[label.id]
    expected = measure_2d(label.mask[k], (volume.spacing[1], volume.spacing[0]))
    assert row["long_mm"] == pytest.approx(expected.long_axis.length_mm)
    assert row["short_mm"] == pytest.approx(expected.short_axis.length_mm)
    assert row["area_mm2"] == pytest.approx(expected.area_mm2)
    assert row["volume_ml"] == pytest.approx(label.mask.sum() * 0.8 * 0.7 * 2.5 / 1000)
    assert row["density"] == "hypodense" and abs(row["hu_mean"] - 10) < 3
    assert panel.table.item(0, 7).text().startswith("hypodense")
    assert len(panel.overlay._items) == 3  # long, short, caption
    # The long-axis line's length in mm on screen is the measured one.
    xs, ys = panel.overlay._items[0].getData()
    assert np.hypot(xs[1] - xs[0], ys[1] - ys[0]) == pytest.approx(expected.long_axis.length_mm, rel=1e-6)
    window.document.update_label(label.id, visible=False)
    panel.refresh()
    assert panel.overlay._items == []


def test_annotation_form_composes_checks_and_exports(viewer, qtbot, window, volume, tmp_path):
    editing = viewer.editing
    viewer.annotation_mode_action.trigger()
    assert viewer.annotation_dock.isVisible()
    label = window.document.add_label(_dark(volume), name="dark")
    panel = viewer.annotation_panel
    assert panel.label is label
    panel.segment.setCurrentIndex(panel.segment.findData("VI"))
    panel.lesion_type.setCurrentIndex(panel.lesion_type.findData("cyst"))
    panel.compose()
    ann = label.meta["annotation"]
    assert ann["attributes"]["density"] == "hypodense"  # measured, not typed
    assert 10 < ann["attributes"]["diameter_mm"] < 13
    assert ann["expressions"][0].startswith("the hypodense lesion of about 1.")
    assert ann["slice_index"] == window.current_slice()
    assert panel.current_warnings == []
    panel.expression_edits[1].setText("the hyperdense lesion in the left lobe")
    assert len(panel.current_warnings) == 2
    # Annotation edits are undoable steps of the label.
    assert editing.history.undo_text.startswith("edit annotation")
    panel.expression_edits[1].setText(ann["expressions"][1])
    panel.done.setChecked(True)
    assert label.meta["annotation"]["done"] is True
    report = panel.export_to(tmp_path / "set")
    assert report is not None, panel.last_error
    ds = read_dataset(tmp_path / "set")
    assert len(ds) == 1 and ds.samples[0].expressions == ann["expressions"]
    assert ds.samples[0].extra["provenance"]["window"] == [400.0, 40.0]


def test_axes_follow_the_slice_once_scrolling_pauses(viewer, qtbot, window, volume):
    panel = viewer.measure_panel
    label = window.document.add_label(_dark(volume), name="dark")
    panel.refresh()
    assert panel.overlay._items
    k = window.current_slice()
    target = k + 1 if k + 1 < volume.shape[0] else k - 1
    window.slice_view.set_slice(target)
    assert panel.overlay._items == []  # the previous slice's axes never sit over the new one
    qtbot.waitUntil(lambda: bool(panel.overlay._items), timeout=3000)
    expected = measure_2d(label.mask[target], (volume.spacing[1], volume.spacing[0]))
    assert panel.rows[label.id]["long_mm"] == pytest.approx(expected.long_axis.length_mm)


def _liver_with_two_lesions():
    """A liver block (60 HU) with a lesion A (45 HU) almost wrapped by a darker lesion B (-50 HU)."""
    from lsms_core.volume import Volume

    rng = np.random.default_rng(0)
    shape = (8, 80, 80)
    arr = np.full(shape, -900.0, np.float32)
    arr[:, 5:75, 5:75] = 60.0
    yy, xx = np.mgrid[0:80, 0:80]
    r = np.hypot(yy - 40, xx - 40)
    a = np.zeros(shape, bool)
    b = np.zeros(shape, bool)
    a[2:6] = r <= 8
    b[1:7] = (r > 8) & (r <= 15) & (xx < 46)
    arr[a], arr[b] = 45.0, -50.0
    arr += rng.normal(0, 2, shape).astype(np.float32)
    return Volume(arr, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0)), a, b


def test_the_form_and_the_measurements_dock_give_a_lesion_one_density(viewer):
    # Bug: the form measured against a ring on the slice with the other lesion in it, the dock against a
    # 3D ring with the other labels kept out, and they disagreed next to another lesion.
    volume, a, b = _liver_with_two_lesions()
    viewer.opening.set_volume(volume)
    viewer.annotation_mode_action.trigger()
    viewer.window.slice_view.set_slice(4)
    viewer.document.add_label(b, name="B")
    label = viewer.document.add_label(a, name="A")
    viewer.measure_panel.refresh()
    dock = viewer.measure_panel.rows[label.id]["density"]
    form = viewer.annotation_panel.density.text().split()[0]
    assert dock == "hypodense" and form == dock
    viewer.annotation_panel.compose()
    assert label.meta["annotation"]["attributes"]["density"] == dock
    assert viewer.annotation_panel.current_warnings == []


def test_a_reused_label_id_finds_its_own_largest_slice(viewer):
    # Bug: the form's cache of long axes per slice outlived a deleted label, and a new label with the
    # same id was annotated (and exported) on the old label's largest slice.
    from lsms_core.volume import Volume

    volume = Volume(np.full((12, 64, 64), 60.0, np.float32), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    viewer.opening.set_volume(volume)
    viewer.annotation_mode_action.trigger()
    viewer.window.slice_view.set_slice(11)  # the labels are not on the shown slice: the form picks the largest
    old = np.zeros(volume.shape, bool)
    old[2:10, 30:34, 30:34] = True
    old[8, 10:50, 10:50] = True  # the old label's largest slice
    first = viewer.document.add_label(old, name="old")
    assert viewer.annotation_panel.measurement.slice_index == 8
    viewer.document.remove_label(first.id)
    new = np.zeros(volume.shape, bool)
    new[2:10, 30:34, 30:34] = True
    new[3, 20:44, 20:44] = True  # the new label's largest slice
    second = viewer.document.add_label(new, name="new")
    assert second.id == first.id
    assert viewer.annotation_panel.measurement.slice_index == 3


def test_composed_expressions_fit_the_text_encoder_s_32_tokens(viewer, volume):
    # Bug: the composer wrote expressions of 45 tokens, and the encoder reads only the first 32.
    from lsms_core.data.expressions import MAX_TOKENS, token_count

    viewer.opening.set_volume(volume)
    viewer.annotation_mode_action.trigger()
    viewer.document.add_label(_dark(volume), name="dark")
    panel = viewer.annotation_panel
    for box, value in ((panel.segment, "VIII"), (panel.shape, "lobulated"), (panel.boundary, "blurred"),
                       (panel.enhancement, "arterial enhancement with washout"), (panel.lesion_type, "fnh")):
        box.setCurrentIndex(box.findData(value))
    panel.compose()
    texts = [edit.text() for edit in panel.expression_edits]
    assert all(token_count(text) <= MAX_TOKENS for text in texts), [(t, token_count(t)) for t in texts]
    full = texts[0]
    assert "segment VIII" in full and "hypodense" in full and "about 1." in full  # the telling words stay


def test_annotation_mode_brings_its_panel_to_the_front(viewer):
    # The panel shares a tab with the Editing panel; turning annotation mode on used to leave it behind.
    viewer.annotation_mode_action.trigger()
    assert not viewer.annotation_dock.visibleRegion().isEmpty()
    assert viewer.editing_dock.visibleRegion().isEmpty()

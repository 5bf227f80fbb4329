"""File ▸ Export labels as DICOM SEG and File ▸ Import labels reading it back onto the open DICOM series:
every label (overlapping ones too) returns bit for bit with its name, colour, words and how it was made;
a SEG of another series and a study that is not a DICOM series are refused in a dialog saying why."""

from __future__ import annotations

import highdicom as hd
import numpy as np

from lsms_core.volume import load_volume
from lsms_core.volume.synthetic_dicom import write_ct_series
from lsms_viewer.state.document import RunInfo
from lsms_viewer.state.maskbits import PackedMask


def _labels(doc, shape):
    model = np.zeros(shape, bool)
    model[1:4, 6:12, 5:14] = True
    drawn = np.zeros(shape, bool)
    drawn[2:3, 8:20, 8:16] = True  # overlaps the model's label
    run = RunInfo("the hypodense nodule", 0.5, "cpu", "lsms-t-demo", True, (0, shape[0]),
                  mask=PackedMask.of(model))
    doc.add_label(model, name="nodule", expression="the hypodense nodule", color=(230, 25, 75), run=run)
    doc.add_label(drawn, name="by hand", expression="", color=(0, 130, 200),
                  meta={"annotation": {"attributes": {"lesion_type": "cyst"}}})
    return model, drawn


def test_export_as_seg_then_import_gives_the_labels_back(viewer, tmp_path):
    write_ct_series(tmp_path / "ct", slices=6, rows=24, cols=28, orientation=(0, 1, 0, 0, 0, -1))
    ct = load_volume(tmp_path / "ct")
    viewer.opening.set_volume(ct)
    doc = viewer.document
    model, drawn = _labels(doc, ct.shape)
    assert viewer.export.export_seg_action.isEnabled()
    target = tmp_path / "out" / "labels.dcm"
    target.parent.mkdir()
    assert viewer.export.export_labels_seg(target)

    seg = hd.seg.segread(target)
    one, two = seg.SegmentSequence
    assert one.SegmentAlgorithmType == "AUTOMATIC" and one.SegmentDescription == "the hypodense nodule"
    assert one.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "lsms-t-demo"
    assert two.SegmentAlgorithmType == "MANUAL" and two.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Cyst"

    for label in list(doc.labels):
        doc.remove_label(label.id)
    assert viewer.opening.import_labels(target)
    a, b = doc.labels
    assert np.array_equal(a.mask, model) and np.array_equal(b.mask, drawn)
    assert (a.name, a.color, a.expression) == ("nodule", (230, 25, 75), "the hypodense nodule")
    assert (b.name, b.color) == ("by hand", (0, 130, 200))
    assert a.meta["dicom_seg"]["algorithm_type"] == "AUTOMATIC"
    # Exported again, the imported model label is still the model's (AUTOMATIC), not hand-drawn.
    again = tmp_path / "out" / "again.dcm"
    assert viewer.export.export_labels_seg(again)
    assert hd.seg.segread(again).SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"


def test_a_seg_of_another_series_and_a_non_dicom_study_are_refused(viewer, window, tmp_path):
    write_ct_series(tmp_path / "a", slices=4, rows=16, cols=16, seed=1, description="a")
    write_ct_series(tmp_path / "b", slices=4, rows=16, cols=16, seed=2, description="b")
    viewer.opening.set_volume(load_volume(tmp_path / "a"))
    mask = np.zeros(viewer.document.volume.shape, bool)
    mask[1, 4:9, 4:9] = True
    viewer.document.add_label(mask, name="lesion")
    assert viewer.export.export_labels_seg(tmp_path / "a.dcm")
    viewer.opening.set_volume(load_volume(tmp_path / "b"))
    assert not viewer.opening.import_labels(tmp_path / "a.dcm")
    title, message = window.last_error
    assert title == "Cannot import labels" and "made for another series" in message
    assert viewer.document.labels == []

    from lsms_core.volume import Volume

    viewer.opening.set_volume(Volume(np.zeros((4, 16, 16), np.int16), (1, 1, 1), (0, 0, 0)))
    viewer.document.add_label(mask, name="lesion")
    assert not viewer.export.export_labels_seg(tmp_path / "n.dcm")
    assert window.last_error[0] == "Export failed" and "not a DICOM series" in window.last_error[1]
    assert not (tmp_path / "n.dcm").exists()

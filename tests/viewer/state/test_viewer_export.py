"""Exporting a Document's labels (no Qt): one multi-label file or one file per label, on the CT's grid,
with sidecars naming every label, and a default path that never is the study itself."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lsms_core.errors import VolumeError
from lsms_core.volume import load_mask, read_label_sidecar, save_volume
from lsms_viewer.state.document import Document, RunInfo
from lsms_viewer.state.export import (
    default_export_path,
    export_multilabel,
    export_per_label,
    label_info,
    slug,
)


def _two_overlapping_labels(volume) -> Document:
    doc = Document(volume)
    a = np.zeros(volume.shape, bool)
    a[2:5, 10:20, 10:20] = True
    b = np.zeros(volume.shape, bool)
    b[4:6, 15:25, 15:25] = True  # overlaps a on slice 4
    run = RunInfo("the bright one", 1.234567, "cpu", "lsms-t-demo", True, (0, volume.shape[0]))
    doc.add_label(a, name="Dark lesion", expression="the dark lesion", color=(1, 2, 3))
    doc.add_label(b, name="Bright / lesion #2", expression="the bright one", run=run)
    doc.add_label(np.zeros(volume.shape, bool), name="nothing yet")
    return doc


def test_multilabel_file_holds_each_id_and_names_them(tmp_path, volume):
    doc = _two_overlapping_labels(volume)
    a, b, empty = doc.labels
    report = export_multilabel(doc, tmp_path / "labels.nii.gz")
    assert report.files == [tmp_path / "labels.nii.gz", tmp_path / "labels.json"]
    overlap = int((a.mask & b.mask).sum())
    assert overlap > 0 and report.overlapping_voxels == overlap
    assert report.empty_labels == ["nothing yet"]
    written = load_mask(tmp_path / "labels.nii.gz", volume)
    assert written.dtype == np.uint8
    assert np.array_equal(written == a.id, a.mask & ~b.mask)  # where they overlap, the later label wins
    assert np.array_equal(written == b.id, b.mask)
    infos = {info.id: info for info in read_label_sidecar(tmp_path / "labels.nii.gz")}
    assert (infos[a.id].name, infos[a.id].color, infos[a.id].expression) == ("Dark lesion", (1, 2, 3), "the dark lesion")
    assert infos[b.id].extra["model"] == {"checkpoint": "lsms-t-demo", "trained": True, "device": "cpu",
                                          "seconds": 1.235, "slices": [0, volume.shape[0]]}
    assert f"{overlap:,} voxels belong to more than one label" in report.summary()
    assert "Empty labels (written, no voxels): nothing yet" in report.summary()


def test_the_exported_file_lies_on_the_ct_file_s_grid(tmp_path, volume):
    ct = save_volume(volume, tmp_path / "ct.nii.gz")
    doc = _two_overlapping_labels(volume)
    export_multilabel(doc, tmp_path / "labels.nii.gz")
    ct_img, mask_img = nib.load(ct), nib.load(tmp_path / "labels.nii.gz")
    assert mask_img.shape == ct_img.shape and np.allclose(mask_img.affine, ct_img.affine, atol=1e-4)


def test_one_file_per_label_keeps_every_voxel(tmp_path, volume):
    doc = _two_overlapping_labels(volume)
    a, b, _ = doc.labels
    report = export_per_label(doc, tmp_path, stem="case")
    names = sorted(p.name for p in report.files)
    assert names == ["case-01-dark-lesion.json", "case-01-dark-lesion.nii.gz", "case-02-bright-lesion-2.json",
                     "case-02-bright-lesion-2.nii.gz", "case-03-nothing-yet.json", "case-03-nothing-yet.nii.gz"]
    second = tmp_path / "case-02-bright-lesion-2.nii.gz"
    assert np.array_equal(load_mask(second, volume) == 1, b.mask)  # overlap kept: its own file
    (info,) = read_label_sidecar(second)
    assert info.id == 1 and info.extra["study_label_id"] == b.id and info.expression == "the bright one"


def test_export_refuses_what_it_cannot_write(tmp_path, volume):
    doc = Document(volume)
    with pytest.raises(VolumeError, match="no labels"):
        export_multilabel(doc, tmp_path / "x.nii.gz")
    doc.add_label(np.ones(volume.shape, bool))
    with pytest.raises(VolumeError, match="does not exist"):
        export_per_label(doc, tmp_path / "missing")
    with pytest.raises(VolumeError, match="unknown mask format"):
        export_per_label(doc, tmp_path, extension=".png")
    with pytest.raises(VolumeError, match="no study"):
        export_multilabel(Document(), tmp_path / "x.nii.gz")


def test_default_path_is_named_after_the_study_in_a_user_folder(tmp_path, volume):
    doc = Document(volume)
    assert default_export_path(doc) == Path.home() / "labels.nii.gz"  # built in memory: no name of its own
    ct = save_volume(volume, tmp_path / "ct.nii.gz")
    from lsms_core.volume import load_volume

    doc.set_volume(load_volume(ct))
    assert default_export_path(doc) == Path.home() / "ct_labels.nii.gz"  # not next to the study
    assert default_export_path(doc, tmp_path / "out") == tmp_path / "out" / "ct_labels.nii.gz"
    from lsms_core.volume.synthetic_dicom import write_ct_series

    write_ct_series(tmp_path / "series", slices=3, rows=16, cols=16)
    doc.set_volume(load_volume(tmp_path / "series"))  # a DICOM folder: never written into or beside
    assert default_export_path(doc) == Path.home() / "series_labels.nii.gz"


def test_label_info_and_slugs():
    assert slug("Segment VII: 2.3 cm — hypodense!") == "segment-vii-2-3-cm-hypodense"
    assert slug("***") == "label" and len(slug("x" * 100)) == 40
    from lsms_viewer.state.document import Label

    drawn = Label(id=4, name="drawn", expression="", color=(9, 9, 9), mask=np.zeros((1, 2, 2), bool))
    info = label_info(drawn)  # a hand-drawn label carries no model block
    assert (info.id, info.name, info.color) == (4, "drawn", (9, 9, 9))
    assert info.extra == {"origin": "drawn by hand"}

"""Annotation logic on real arrays and real dataset folders: expressions, consistency, export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsms_core.data.format import read_dataset
from lsms_viewer.state.annotation import (
    Annotation,
    AnnotationError,
    LesionAttributes,
    check_expression,
    compose_expression,
    export_annotations,
    measure_lesion,
    partial_expressions,
    stated_diameters_mm,
)
from lsms_viewer.state.document import Document, RunInfo
from lsms_viewer.state.maskbits import PackedMask


def _dark_mask(volume):
    mask = np.abs(volume.array - 10) < 15
    mask[:, :, volume.shape[2] // 2 :] = False
    return mask


def test_full_and_partial_expressions_read_well_and_shrink():
    a = LesionAttributes(segment="VII", diameter_mm=23.4, shape="round", boundary="clear", density="hypodense",
                         enhancement="rim enhancement", lesion_type="metastasis")
    full = compose_expression(a)
    assert full == ("the round, well-defined hypodense lesion of about 2.3 cm in segment VII of the right lobe "
                    "with rim enhancement, suggestive of metastasis")
    parts = partial_expressions(a)
    n = len(full.split())
    assert len(parts[0.5].split()) <= round(0.5 * n) and len(parts[0.25].split()) <= round(0.25 * n) + 1
    assert "segment VII" in parts[0.5] and parts[0.25].startswith("the ")
    assert compose_expression(LesionAttributes(segment="I")) == "the lesion in the caudate lobe (segment I)"
    assert compose_expression(LesionAttributes(diameter_mm=8)) == "the lesion of about 8 mm"


def test_measurement_is_right_sided_hypodense_with_the_right_size(volume):
    m = measure_lesion(volume, _dark_mask(volume), 5)
    assert m.side == "right" and m.density.label == "hypo"
    # The dark disc has radius 7 px at 0.8 x 0.7 mm: long axis about 15 px of 0.8 mm.
    assert 10.0 < m.diameter_mm < 13.0
    assert m.volume_3d.first_slice == 0 and m.volume_3d.last_slice == volume.shape[0] - 1
    with pytest.raises(AnnotationError, match="empty"):
        measure_lesion(volume, np.zeros(volume.shape, bool))


def test_consistency_check_flags_size_side_and_density(volume):
    m = measure_lesion(volume, _dark_mask(volume), 5)
    good = compose_expression(LesionAttributes(segment="VI", diameter_mm=m.diameter_mm, density="hypodense"))
    assert check_expression(good, m) == []
    warnings = check_expression("the hyperdense 3 cm lesion in segment III of the left lobe", m)
    assert len(warnings) == 4, warnings
    assert any("3.0 cm" in w for w in warnings) and any("“left”" in w for w in warnings)
    assert any("segment III" in w for w in warnings) and any("hyperdense" in w for w in warnings)
    # Within 20% is fine; 2,5 cm is read as 25 mm.
    assert check_expression(f"a {m.diameter_mm * 1.15:.1f} mm lesion", m) == []
    assert stated_diameters_mm("2,5 cm and 7 mm") == [25.0, 7.0]


def _annotated_document(volume) -> Document:
    doc = Document(volume)
    mask = _dark_mask(volume)
    run = RunInfo("the dark lesion", 1.0, "cpu", "lsms-t-demo", True, (0, volume.shape[0]), mask=PackedMask.of(mask))
    label = doc.add_label(mask.copy(), expression="the dark lesion", run=run)
    label.mask[5, :, :5] = False  # an edit after the run (nothing there), then a real one:
    label.mask[5, 30, 18] = not label.mask[5, 30, 18]
    ann = Annotation(LesionAttributes(segment="VI", diameter_mm=12.0, density="hypodense"),
                     ["the hypodense lesion in segment VI of the right lobe", "the hypodense lesion"], 5, "ab",
                     "train", True)
    doc.update_label(label.id, meta={"annotation": ann.to_json()})
    doc.add_label(np.abs(volume.array - 140) < 15)  # not annotated: not exported
    return doc


def test_export_creates_then_appends_without_clashing_case_ids(tmp_path, volume):
    doc = _annotated_document(volume)
    root = tmp_path / "refset"
    first = export_annotations(root, volume, doc.labels, window=(400, 40), annotator="ab")
    second = export_annotations(root, volume, doc.labels, window=(150, 60), annotator="ab")
    assert first.case_id != second.case_id and len(first.samples) == len(second.samples) == 1
    ds = read_dataset(root)
    assert len(ds) == 2 and {s.case_id for s in ds} == {first.case_id, second.case_id}
    sample = ds.samples[0]
    image, mask, windowed = ds.load_pair(sample)
    label = doc.labels[0]
    assert not windowed and np.load(root / sample.image).dtype == np.int16  # HU, not windowed
    assert np.array_equal(image, np.rint(volume.array[5]))
    assert np.array_equal(mask != 0, label.mask[5])
    assert sample.spacing == (0.7, 0.8) and sample.slice_index == 5
    assert sample.attributes["segment"] == "VI" and sample.attributes["lobe"] == "right"
    prov = sample.extra["provenance"]
    assert prov["checkpoint"] == "lsms-t-demo" and prov["window"] == [400, 40] and prov["annotator"] == "ab"
    assert prov["edited"] is True and len(prov["series_uid_sha256"]) == 64
    model = read_dataset(root).root / prov["model_mask"]
    from lsms_core.data.format import read_mask_file

    assert np.array_equal(read_mask_file(model) != 0, _dark_mask(volume)[5])
    line = (root / "manifest.jsonl").read_text().splitlines()[0]
    assert "patient" not in line.lower()
    assert json.loads(line)["expressions"][0] == "the hypodense lesion in segment VI of the right lobe"


def test_export_refuses_when_nothing_is_ready(tmp_path, volume):
    doc = Document(volume)
    doc.add_label(_dark_mask(volume))
    with pytest.raises(AnnotationError, match="nothing to export"):
        export_annotations(tmp_path / "x", volume, doc.labels)
    assert not (tmp_path / "x").exists()


def test_export_from_a_real_dicom_series_hashes_its_uid_and_keeps_no_identifiers(tmp_path):
    import hashlib

    from lsms_core.volume import load_volume
    from lsms_core.volume.synthetic_dicom import write_ct_series

    uid = "1.2.826.0.1.3680043.8.498.4242"
    write_ct_series(tmp_path / "dcm", slices=4, rows=64, cols=64, series_uid=uid)
    volume = load_volume(tmp_path / "dcm")
    doc = Document(volume)
    mask = np.zeros(volume.shape, bool)
    mask[2, 20:30, 10:22] = True
    ann = Annotation(LesionAttributes(segment="VI"), ["the lesion in segment VI of the right lobe"], 2, "cd",
                     "test", True)
    doc.add_label(mask, meta={"annotation": ann.to_json()})
    report = export_annotations(tmp_path / "set", volume, doc.labels, window=(400, 40))
    text = (tmp_path / "set" / "manifest.jsonl").read_text()
    sample = read_dataset(tmp_path / "set").samples[0]
    assert sample.extra["provenance"]["series_uid_sha256"] == hashlib.sha256(uid.encode()).hexdigest()
    assert uid not in text and "PatientName" not in text and sample.split == "test"
    assert report.samples == [sample.id] and sample.spacing == (volume.spacing[1], volume.spacing[0])
    assert np.array_equal(np.load(tmp_path / "set" / sample.image), np.rint(volume.array[2]).astype(np.int16))


def test_export_every_slice_of_a_lesion_shares_images_between_lesions(tmp_path, volume):
    doc = _annotated_document(volume)
    second = doc.labels[1]
    ann = Annotation(LesionAttributes(density="hyperdense"), ["the hyperdense lesion"], 5, "ab", "val", True)
    doc.update_label(second.id, meta={"annotation": ann.to_json()})
    report = export_annotations(tmp_path / "all", volume, doc.labels, slices="all")
    ds = read_dataset(tmp_path / "all")
    n = volume.shape[0]
    assert len(report.samples) == len(ds) == 2 * n
    assert len({s.image for s in ds}) == n  # one image per slice
    assert {s.split for s in ds} == {"train"}  # one case, one split
    by_id = {s.id: s for s in ds}
    s7 = by_id[f"{report.case_id}_s007_l{second.id}"]
    assert np.array_equal(ds.load_mask(s7) != 0, second.mask[7])
    with pytest.raises(AnnotationError, match="slices"):
        export_annotations(tmp_path / "bad", volume, doc.labels, slices="some")


def test_annotation_mode_and_data_from_masks_put_a_lesion_on_the_same_side():
    """One body midline: a CT table wider than an off-centre patient must not move it (bug: the annotation
    form took every column holding any tissue, `lsms data from-masks` only columns holding some)."""
    from lsms_core.data.facts import slice_facts
    from lsms_core.volume import Volume

    image = np.full((128, 128), -1000.0, np.float32)
    image[20:110, 10:91] = 40.0  # the body, off-centre: its midline is column 50
    image[118:120, :] = 200.0  # the table, two rows across the whole field
    liver = np.zeros(image.shape, bool)
    liver[30:90, 12:75] = True
    image[liver] = 60.0
    yy, xx = np.mgrid[0:128, 0:128]
    lesion = (yy - 60) ** 2 + (xx - 56) ** 2 <= 4**2  # 6 mm to the patient's left of the body's midline
    image[lesion] = 10.0
    (facts,) = slice_facts(image, {"l1": lesion}, (1.0, 1.0), liver=liver)
    m = measure_lesion(Volume(image[None], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)), lesion[None], 0)
    assert facts.lobe == "left" and m.side == "left"


def test_composing_drops_the_least_telling_words_past_the_encoder_s_limit():
    from lsms_core.data.expressions import MAX_TOKENS, token_count
    from lsms_viewer.state.annotation import compose_within, form_expressions

    short = LesionAttributes(segment="VII", density="hypodense")
    assert compose_within(short) == compose_expression(short)  # within the limit: untouched
    a = LesionAttributes(segment="VIII", diameter_mm=23.4, shape="lobulated", boundary="blurred",
                         density="hypodense", enhancement="arterial enhancement with washout", lesion_type="fnh")
    assert token_count(compose_expression(a)) > MAX_TOKENS
    full = compose_within(a)
    assert token_count(full) <= MAX_TOKENS
    assert "segment VIII" in full and "hypodense" in full and "2.3 cm" in full
    assert "ill-defined" not in full  # the boundary is the first attribute to go
    texts = form_expressions(a)
    assert texts[0] == full and all(token_count(t) <= MAX_TOKENS for t in texts)

"""DICOM SEG: labels -> SEG -> labels bit for bit, frames on the source slices, what the SEG carries and
refuses; on a generated series and on the real 3D-IRCADb 1.7 CT (skipped when ../shared is absent)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from lsms_core.cli.main import main
from lsms_core.errors import VolumeError
from lsms_core.volume import load_volume, read_label_sidecar
from lsms_core.volume.seg import (
    AUTOMATIC,
    KEPT_PATIENT,
    KEPT_STUDY,
    MANUAL,
    SEMIAUTOMATIC,
    SegSegment,
    load_seg,
    save_seg,
    seg_grid_volume,
)
from lsms_core.volume.synthetic_dicom import write_ct_series

ROOT = Path(__file__).resolve().parents[2]
IRCAD = ROOT.parent / "shared" / "data" / "3dircadb1.7"
# The patient's identity as a CT carries it, and what the SEG must leave behind.
EXTRA_PATIENT = {"PatientAge": "061Y", "PatientWeight": "71", "PatientComments": "private",
                 "OtherPatientIDs": "X-123", "EthnicGroup": "private", "StudyDescription": "private study"}


def _series(folder: Path, *, seed=0, orientation=(0, 1, 0, 0, 0, -1), extra=True, **kw) -> list[Path]:
    files = write_ct_series(folder, slices=kw.pop("slices", 7), rows=24, cols=20, orientation=orientation,
                            seed=seed, description=f"series {seed}", **kw)
    if extra:
        for path in files:
            ds = pydicom.dcmread(path)
            for key, value in EXTRA_PATIENT.items():
                setattr(ds, key, value)
            ds.save_as(path)
    return files


def _masks(shape):
    rng = np.random.default_rng(3)
    a = rng.random(shape) > 0.7
    a[0] = False  # an empty slice must come back empty
    b = np.zeros(shape, bool)
    b[2:5, 3:9, 4:12] = True  # overlaps a: a SEG keeps both
    return a, b


def _per_frame_positions(seg):
    return [[float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
            for item in seg.PerFrameFunctionalGroupsSequence]


def test_generated_series_round_trip_is_exact_and_frames_sit_on_the_source_slices(tmp_path):
    files = _series(tmp_path / "ct")
    ct = load_volume(tmp_path / "ct")
    a, b = _masks(ct.shape)
    out = save_seg([
        SegSegment(a, "nodule", (230, 25, 75), "the small hypodense nodule in segment VII", AUTOMATIC, "lsms-t-demo",
                   label_id=2),
        SegSegment(b, "cyst", (0, 130, 200), "", MANUAL, lesion_type="cyst", label_id=7),
    ], ct, tmp_path / "labels.dcm")
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]

    back = load_seg(out, ct)
    assert [lab.label_id for lab in back.labels] == [2, 7]
    assert np.array_equal(back.masks[0], a) and np.array_equal(back.masks[1], b)
    assert back.masks[0].dtype == bool

    # highdicom and pydicom both read it; every frame lies on a source slice and refers to that image.
    seg = hd.seg.segread(out)
    raw = pydicom.dcmread(out)
    sources = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)}
    assert raw.pixel_array.shape == (2 * len(files), 24, 20)
    assert seg.number_of_segments == 2
    for item, pos in zip(seg.PerFrameFunctionalGroupsSequence, _per_frame_positions(seg), strict=True):
        uid = str(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        assert pos == [float(v) for v in sources[uid].ImagePositionPatient]
    series_ref = seg.ReferencedSeriesSequence[0]
    assert series_ref.SeriesInstanceUID == ct.meta["series_uid"]
    assert {str(i.ReferencedSOPInstanceUID) for i in series_ref.ReferencedInstanceSequence} == set(sources)
    assert seg.SeriesInstanceUID != ct.meta["series_uid"] and seg.SOPInstanceUID not in sources
    first = next(iter(sources.values()))
    assert seg.StudyInstanceUID == first.StudyInstanceUID and seg.FrameOfReferenceUID == first.FrameOfReferenceUID

    # Segment descriptions: name, colour, codes, words, how it was made.
    one, two = seg.SegmentSequence
    assert (one.SegmentLabel, one.SegmentAlgorithmType, one.SegmentDescription) == (
        "nodule", AUTOMATIC, "the small hypodense nodule in segment VII")
    assert one.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "LSMS"
    assert one.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "lsms-t-demo"
    assert one.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # SCT Lesion
    assert two.SegmentedPropertyTypeCodeSequence[0].CodeValue == "367643001"  # SCT Cyst
    assert two.SegmentAlgorithmType == MANUAL and "SegmentationAlgorithmIdentificationSequence" not in two
    assert one.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    rgb = hd.color.CIELabColor.from_dicom_value(one.RecommendedDisplayCIELabValue).to_rgb()
    assert np.abs(np.asarray(rgb, int) - (230, 25, 75)).max() <= 1
    assert back.labels[0].expression == "the small hypodense nodule in segment VII"

    # No patient data beyond the Patient module's Type 2 attributes and the study's identity.
    for key in EXTRA_PATIENT:
        assert key not in raw, key
    held = {e.keyword for e in raw if e.tag.group in (0x0010, 0x0012, 0x0032, 0x0038)}
    assert held <= set(KEPT_PATIENT) | set(KEPT_STUDY)
    assert raw.PatientID == first.PatientID


def test_seg_of_another_series_is_refused_with_the_reason(tmp_path):
    _series(tmp_path / "a", seed=1, extra=False)
    _series(tmp_path / "b", seed=2, extra=False)
    ct_a, ct_b = load_volume(tmp_path / "a"), load_volume(tmp_path / "b")
    out = save_seg([SegSegment(_masks(ct_a.shape)[1], "lesion")], ct_a, tmp_path / "a.dcm")
    with pytest.raises(VolumeError, match="made for another series") as err:
        load_seg(out, ct_b)
    assert ct_b.meta["series_uid"] in str(err.value) and "a.dcm" in str(err.value)
    assert main(["convert", str(out), str(tmp_path / "x.nii.gz"), "--ct", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "x.nii.gz").exists()


def test_refusals_name_the_file_and_the_reason(tmp_path):
    _series(tmp_path / "ct", skip=(3,), extra=False, orientation=(1, 0, 0, 0, 1, 0))  # slice 3 filled in
    ct = load_volume(tmp_path / "ct")
    mask = np.zeros(ct.shape, bool)
    mask[3, 5:8, 5:8] = True  # drawn on the filled-in slice: no image to refer to
    with pytest.raises(VolumeError, match="no DICOM image"):
        save_seg([SegSegment(mask, "lesion")], ct, tmp_path / "gap.dcm")
    assert not (tmp_path / "gap.dcm").exists()
    (tmp_path / "exists.dcm").write_bytes(b"x")
    mask[3] = False
    mask[1, 5:8, 5:8] = True
    with pytest.raises(VolumeError, match="exists already"):
        save_seg([SegSegment(mask, "lesion")], ct, tmp_path / "exists.dcm", overwrite=False)
    assert (tmp_path / "exists.dcm").read_bytes() == b"x"
    nifti = tmp_path / "ct.nii.gz"
    assert main(["convert", str(tmp_path / "ct"), str(nifti)]) == 0
    with pytest.raises(VolumeError, match="not a DICOM series"):
        save_seg([SegSegment(mask, "lesion")], load_volume(nifti), tmp_path / "n.dcm")
    with pytest.raises(VolumeError, match="not a DICOM Segmentation"):
        load_seg(next((tmp_path / "ct").iterdir()), ct)


def test_convert_seg_to_nifti_without_and_with_the_ct(tmp_path, capsys):
    _series(tmp_path / "ct", extra=False)
    ct = load_volume(tmp_path / "ct")
    a, b = _masks(ct.shape)
    b &= ~a  # a label map holds one value per voxel
    save_seg([SegSegment(a, "one", label_id=1), SegSegment(b, "two", (0, 130, 200), "the other one", label_id=4)],
             ct, tmp_path / "s.dcm")
    assert main(["convert", str(tmp_path / "ct"), str(tmp_path / "ct.nii.gz")]) == 0
    assert main(["convert", str(tmp_path / "s.dcm"), str(tmp_path / "own.nii.gz")]) == 0
    assert main(["convert", str(tmp_path / "s.dcm"), str(tmp_path / "onct.nii.gz"), "--ct", str(tmp_path / "ct")]) == 0
    ref = nib.load(tmp_path / "ct.nii.gz")
    for name in ("own.nii.gz", "onct.nii.gz"):
        img = nib.load(tmp_path / name)
        assert img.shape == ref.shape and np.allclose(img.affine, ref.affine, atol=1e-4)
    expected = np.zeros(ct.shape, np.uint8)
    expected[a], expected[b] = 1, 4
    assert np.array_equal(load_volume(tmp_path / "own.nii.gz").array, expected)
    assert np.array_equal(load_volume(tmp_path / "onct.nii.gz").array, expected)
    labels = read_label_sidecar(tmp_path / "own.nii.gz")
    assert [(lab.id, lab.name, lab.expression) for lab in labels] == [(1, "one", ""), (4, "two", "the other one")]
    # Overlapping segments are refused by a label map, never merged silently.
    save_seg([SegSegment(a, "one"), SegSegment(a, "same")], ct, tmp_path / "o.dcm")
    assert main(["convert", str(tmp_path / "o.dcm"), str(tmp_path / "o.nii.gz")]) == 2
    assert "overlap" in capsys.readouterr().err


@pytest.mark.slow
def test_3dircadb_tumour_round_trip_is_exact_on_the_real_series(tmp_path):
    if not (IRCAD / "PATIENT_DICOM").is_dir():
        pytest.skip(f"3D-IRCADb 1.7 is not at {IRCAD} (a checkout without ../shared)")
    with zipfile.ZipFile(IRCAD / "MASKS_DICOM.zip") as zf:
        zf.extractall(tmp_path, [n for n in zf.namelist() if n.startswith("MASKS_DICOM/tumor/")])
    ct = load_volume(IRCAD / "PATIENT_DICOM")
    tumour = load_volume(tmp_path / "MASKS_DICOM" / "tumor").array > 0
    assert tumour.shape == ct.shape and tumour.any()
    notes: list[str] = []
    out = save_seg([SegSegment(tumour, "tumour", (255, 80, 0), "the large hypodense lesion in the right lobe",
                               SEMIAUTOMATIC, "lsms-t-demo")], ct, tmp_path / "tumour.dcm", notes=notes)
    assert any("Frame of Reference" in n for n in notes)  # 3D-IRCADb's images carry none
    back = load_seg(out, ct)
    assert np.array_equal(back.masks[0], tumour)
    seg = hd.seg.segread(out)
    positions = sorted(tuple(float(v) for v in pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient)
                       for p in (IRCAD / "PATIENT_DICOM").iterdir())
    assert sorted(tuple(p) for p in _per_frame_positions(seg)) == positions
    assert pydicom.dcmread(out).pixel_array.shape == (151, 512, 512)
    own, read = seg_grid_volume(out)
    assert own.shape == ct.shape and np.array_equal(read.masks[0].sum(), tumour.sum())


def test_segment_cli_writes_a_seg_equal_to_its_nifti_mask(tmp_path, capsys):
    from lsms_core.checkpoint import create_random_checkpoint

    ckpt = create_random_checkpoint(tmp_path / "ckpt", variant="lsms-t", input_size=64, seed=0)
    _series(tmp_path / "ct", extra=False, orientation=(1, 0, 0, 0, 1, 0), slices=4)
    common = ["--expression", "the low-density lesion", "--checkpoint", str(ckpt), "--device", "cpu",
              "--threshold", "0.5", "--all-regions", "--threads", "1"]
    assert main(["segment", str(tmp_path / "ct"), "--out", str(tmp_path / "m.dcm"), *common]) == 0
    assert "DICOM SEG referring to the input series" in capsys.readouterr().out
    assert main(["segment", str(tmp_path / "ct"), "--out", str(tmp_path / "m.nii.gz"), *common]) == 0
    ct = load_volume(tmp_path / "ct")
    back = load_seg(tmp_path / "m.dcm", ct)
    assert np.array_equal(back.masks[0], load_volume(tmp_path / "m.nii.gz").array > 0)
    lab = back.labels[0]
    assert (lab.algorithm, lab.algorithm_name, lab.algorithm_version, lab.expression) == (
        AUTOMATIC, "LSMS", "ckpt", "the low-density lesion")
    # --format seg names the output .dcm; a CT that is not a DICOM series is refused before the model runs.
    assert main(["convert", str(tmp_path / "ct"), str(tmp_path / "ct.nii.gz")]) == 0
    capsys.readouterr()
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "--format", "seg", *common]) == 2
    assert "not a DICOM series" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "ct"), "--format", "seg", "--out", str(tmp_path / "x.nii.gz"), *common]) == 2

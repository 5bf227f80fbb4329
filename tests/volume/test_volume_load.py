"""load_volume against real DICOM files and SimpleITK as the reference reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from lsms_core.errors import Cancelled, VolumeError
from lsms_core.volume import SeriesChoiceError, list_series, load_volume
from lsms_core.volume.synthetic_dicom import write_ct_series, write_enhanced_ct

ORIENTATIONS = {
    "axial": (1, 0, 0, 0, 1, 0),
    "axial-flipped": (-1, 0, 0, 0, -1, 0),
    "sagittal": (0, 1, 0, 0, 0, -1),
    "coronal": (1, 0, 0, 0, 0, -1),
    "oblique": (0.8660254, 0.5, 0.0, -0.4330127, 0.75, -0.5),
}


def sitk_reference(folder):
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder))
    return sitk.DICOMOrient(sitk.ReadImage(names), "LPS")


def assert_same_as_sitk(vol, ref, atol=1e-4):
    assert vol.shape == ref.GetSize()[::-1]
    np.testing.assert_allclose(vol.spacing, ref.GetSpacing(), atol=atol)
    np.testing.assert_allclose(vol.origin, ref.GetOrigin(), atol=atol)
    np.testing.assert_allclose(vol.direction, np.reshape(ref.GetDirection(), (3, 3)), atol=atol)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(ref))


def test_ct_small_is_in_hounsfield_units():
    path = get_testdata_file("CT_small.dcm", download=False)
    vol = load_volume(path)
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert vol.shape == (1, 128, 128)
    assert vol.array.dtype == np.int16  # integer rescale: exact in int16, half float32's memory
    np.testing.assert_array_equal(vol.array[0], expected)
    np.testing.assert_allclose(vol.origin, [float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(vol.spacing[:2], [float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])])
    assert vol.meta["modality"] == "CT"
    assert "PatientName" not in str(vol.meta) and str(ds.PatientName) not in str(vol.meta)
    assert vol.meta["series_uid"] == ds.SeriesInstanceUID


@pytest.mark.parametrize("name", sorted(ORIENTATIONS))
def test_series_geometry_matches_simpleitk(tmp_path, name):
    write_ct_series(tmp_path, slices=9, rows=32, cols=40, spacing=(0.7, 0.9, 2.5),
                    orientation=ORIENTATIONS[name], origin=(-20.0, 35.5, 112.25), shuffle_names=True)
    vol = load_volume(tmp_path)
    assert vol.warnings == []
    assert_same_as_sitk(vol, sitk_reference(tmp_path))
    # The loaded layout is radiological: i -> left, j -> posterior, k -> superior (nearest axes).
    assert np.all(np.diag(vol.direction) > 0.5)


def test_every_slice_lands_at_its_image_position(tmp_path):
    files = write_ct_series(tmp_path, slices=6, rows=16, cols=16, orientation=ORIENTATIONS["oblique"],
                            shuffle_names=True)
    vol = load_volume(tmp_path)
    grid = vol.source_grid
    for path in files:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.int32) + int(ds.RescaleIntercept)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        # find the voxel of the loaded volume at this slice's first pixel, by world position
        inv = np.linalg.inv(vol.affine_lps)
        i, j, k = np.round(inv @ np.append(ipp, 1.0))[:3].astype(int)
        assert vol.array[k, j, i] == hu[0, 0]
        assert grid is not None and path in grid.files


def test_enhanced_ct_frames_sorted_by_position(tmp_path):
    path = write_enhanced_ct(tmp_path / "enh.dcm", frames=7, rows=20, cols=24, spacing=(0.8, 0.6, 1.5),
                             origin=(-5.0, 3.0, 40.0))
    vol = load_volume(path)
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.astype(np.int32) - 1024
    z = [float(item.PlanePositionSequence[0].ImagePositionPatient[2])
         for item in ds.PerFrameFunctionalGroupsSequence]
    np.testing.assert_array_equal(vol.array, frames[np.argsort(z)])
    np.testing.assert_allclose(vol.origin, (-5.0, 3.0, 40.0))
    np.testing.assert_allclose(vol.spacing, (0.8, 0.6, 1.5))


def test_gap_is_filled_and_reported(tmp_path):
    write_ct_series(tmp_path, slices=10, rows=16, cols=16, skip=(4, 5))
    vol = load_volume(tmp_path)
    assert vol.shape[0] == 10
    assert any("2 missing slice(s)" in w for w in vol.warnings)
    assert vol.spacing[2] == pytest.approx(2.5)
    assert np.all(vol.array[4:6] == vol.array.min())


def test_gantry_tilt_keeps_sheared_geometry(tmp_path):
    files = write_ct_series(tmp_path, slices=5, rows=16, cols=16, gantry_tilt_deg=12.0)
    vol = load_volume(tmp_path)
    assert any("gantry tilt of 12.00 degrees" in w for w in vol.warnings)
    for k, path in enumerate(sorted(files)):
        ipp = [float(v) for v in pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient]
        np.testing.assert_allclose(vol.index_to_world((0, 0, k)), ipp, atol=1e-4)


def test_duplicate_slices_dropped_with_warning(tmp_path):
    files = write_ct_series(tmp_path, slices=4, rows=16, cols=16)
    (tmp_path / "copy.dcm").write_bytes(files[2].read_bytes())
    vol = load_volume(tmp_path)
    assert vol.shape[0] == 4
    assert any("duplicate" in w for w in vol.warnings)


def test_compressed_series_equals_uncompressed(tmp_path):
    write_ct_series(tmp_path / "raw", slices=3, rows=64, cols=64, seed=3)
    write_ct_series(tmp_path / "rle", slices=3, rows=64, cols=64, seed=3, compression="rle")
    write_ct_series(tmp_path / "j2k", slices=3, rows=64, cols=64, seed=3, compression="jpeg2000")
    raw = load_volume(tmp_path / "raw")
    for name in ("rle", "j2k"):
        np.testing.assert_array_equal(load_volume(tmp_path / name).array, raw.array)


def test_invalid_window_falls_back_to_ct_default(tmp_path):
    write_ct_series(tmp_path, slices=2, rows=8, cols=8, window=(0.0, 0.0))
    vol = load_volume(tmp_path)
    assert (vol.meta["window_center"], vol.meta["window_width"]) == (40.0, 400.0)
    assert vol.meta["window_source"] == "default"
    write_ct_series(tmp_path / "ok", slices=2, rows=8, cols=8, window=(50.0, 350.0))
    ok = load_volume(tmp_path / "ok")
    assert (ok.meta["window_center"], ok.meta["window_width"]) == (50.0, 350.0)


def test_several_series_pick_largest_ct_or_ask(tmp_path):
    write_ct_series(tmp_path / "a", slices=6, rows=16, cols=16, description="big", seed=1)
    write_ct_series(tmp_path / "b", slices=3, rows=16, cols=16, description="small", seed=2)
    series = list_series(tmp_path)
    assert [(s.description, s.slices, s.rows, s.cols) for s in series] == [("big", 6, 16, 16), ("small", 3, 16, 16)]
    vol = load_volume(tmp_path)
    assert vol.shape[0] == 6
    assert "largest CT series" in vol.warnings[0]
    assert load_volume(tmp_path, series_uid=series[1].uid).shape[0] == 3
    write_ct_series(tmp_path / "c", slices=6, rows=16, cols=16, description="twin", seed=3)
    with pytest.raises(SeriesChoiceError) as info:
        load_volume(tmp_path)
    assert len(info.value.series) == 3 and "big" in str(info.value) and "twin" in str(info.value)
    with pytest.raises(SeriesChoiceError):
        load_volume(tmp_path, series_uid="1.2.3.4")


def test_non_image_files_are_skipped_with_a_note(tmp_path):
    write_ct_series(tmp_path, slices=3, rows=8, cols=8)
    (tmp_path / "notes.txt").write_text("not dicom")
    sr = get_testdata_file("test-SR.dcm", download=False)
    (tmp_path / "report.dcm").write_bytes(Path(sr).read_bytes())
    vol = load_volume(tmp_path)
    assert vol.shape == (3, 8, 8)
    assert vol.meta["skipped_files"] == 2
    assert any("SR" in n for n in vol.meta["skipped_notes"])


def test_clear_errors(tmp_path):
    with pytest.raises(VolumeError, match="does not exist"):
        load_volume(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match="empty"):
        load_volume(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("hello")
    with pytest.raises(VolumeError, match="no DICOM image series"):
        load_volume(tmp_path / "junk")
    truncated = get_testdata_file("MR_truncated.dcm", download=False)
    with pytest.raises(VolumeError, match="truncated") as info:
        load_volume(truncated)
    assert "MR_truncated.dcm" in str(info.value)


def test_progress_and_cancel(tmp_path):
    write_ct_series(tmp_path, slices=5, rows=8, cols=8)
    seen = []
    load_volume(tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:], strict=False))
    with pytest.raises(Cancelled):
        load_volume(tmp_path, cancel=lambda: True)


def test_uneven_spacing_is_reported(tmp_path):
    files = write_ct_series(tmp_path, slices=6, rows=8, cols=8)
    ds = pydicom.dcmread(files[3])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.8
    ds.save_as(files[3])
    vol = load_volume(tmp_path)
    assert vol.shape[0] == 6
    assert any("uneven slice spacing" in w and "0.800 mm" in w for w in vol.warnings)


def test_mixed_sizes_in_one_series_keep_the_largest_stack(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.12345"
    write_ct_series(tmp_path / "a", slices=5, rows=16, cols=16, series_uid=uid)
    write_ct_series(tmp_path / "b", slices=2, rows=8, cols=8, series_uid=uid, origin=(0.0, 0.0, 100.0))
    vol = load_volume(tmp_path)
    assert vol.shape == (5, 16, 16)
    assert any("mixes image sizes" in w and "left out 2" in w for w in vol.warnings)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm", "JPEG-LL.dcm",
                                  "image_dfl.dcm", "MR_small_implicit.dcm"])
def test_encodings_decode_like_simpleitk(name):
    path = get_testdata_file(name, download=False)
    vol = load_volume(path)
    ref = sitk.DICOMOrient(sitk.ReadImage(path), "LPS")
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(ref))
    np.testing.assert_allclose(vol.origin, ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(vol.spacing[:2], ref.GetSpacing()[:2], atol=1e-4)


def test_folder_scan_is_reused_only_while_files_are_unchanged(tmp_path):
    write_ct_series(tmp_path / "a", slices=3, rows=8, cols=8, description="first", seed=1)
    assert [s.slices for s in list_series(tmp_path)] == [3]
    assert load_volume(tmp_path).shape[0] == 3
    write_ct_series(tmp_path / "b", slices=5, rows=8, cols=8, description="second", seed=2)
    assert [s.slices for s in list_series(tmp_path)] == [5, 3]
    assert load_volume(tmp_path).meta["series_description"] == "second"


def test_compressed_enhanced_ct_decodes_frame_by_frame(tmp_path):
    from pydicom.uid import RLELossless

    path = write_enhanced_ct(tmp_path / "enh.dcm", frames=5, rows=16, cols=16)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(tmp_path / "enh_rle.dcm", enforce_file_format=True)
    raw, rle = load_volume(path), load_volume(tmp_path / "enh_rle.dcm")
    np.testing.assert_array_equal(rle.array, raw.array)
    np.testing.assert_allclose(rle.affine_lps, raw.affine_lps)


def test_orientation_noise_does_not_split_a_stack(tmp_path):
    files = write_ct_series(tmp_path, slices=4, rows=8, cols=8)
    for path, cosine in zip(files, ("0.99995", "0.99994", "0.99995", "0.99994"), strict=True):
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [cosine, "0", "0", "0", "1", "0"]
        ds.save_as(path)
    vol = load_volume(tmp_path)
    assert vol.shape[0] == 4 and vol.warnings == []

"""Geometry is sacred: masks we write land on the CT's voxels for nibabel, SimpleITK and dcm2niix."""

from __future__ import annotations

import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from lsms_core.errors import VolumeError
from lsms_core.volume import load_mask, load_volume, read_label_sidecar, save_mask, save_volume
from lsms_core.volume.synthetic_dicom import write_ct_series

OBLIQUE = (0.8660254, 0.5, 0.0, -0.4330127, 0.75, -0.5)
FLIPPED = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def _rot(axis, deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    m = np.eye(3)
    a, b = [(1, 2), (0, 2), (0, 1)][axis]
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


NIFTI_AFFINES = {
    "ras": np.diag([0.8, 0.9, 2.0]),
    "las": np.diag([-0.8, 0.9, 2.0]),
    "lpi": np.diag([-0.8, -0.9, -2.0]),
    "permuted": np.array([[0.0, 0.0, 2.0], [0.8, 0.0, 0.0], [0.0, -0.9, 0.0]]),
    "oblique": _rot(0, 20) @ _rot(2, -35) @ np.diag([0.8, 0.9, 2.0]),
}


def _nifti(path, linear, code="both", shape=(7, 6, 5)):
    data = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = (12.5, -40.0, 33.0)
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine if code in ("both", "sform") else None, code=1 if code in ("both", "sform") else 0)
    img.set_qform(affine if code in ("both", "qform") else None, code=1 if code in ("both", "qform") else 0)
    nib.save(img, str(path))
    return data, affine


def _world_lookup(vol, ras_points):
    inv = np.linalg.inv(vol.affine_lps)
    lps = np.c_[ras_points * [-1, -1, 1], np.ones(len(ras_points))]
    ijk = np.rint((inv @ lps.T).T[:, :3]).astype(int)
    return vol.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]]


@pytest.mark.parametrize("code", ["both", "sform", "qform"])
@pytest.mark.parametrize("name", sorted(NIFTI_AFFINES))
def test_nifti_voxels_keep_their_world_position(tmp_path, name, code):
    path = tmp_path / "ct.nii.gz"
    data, affine = _nifti(path, NIFTI_AFFINES[name], code)
    vol = load_volume(path)
    ijk = np.argwhere(np.ones(data.shape, bool))
    ras = (affine @ np.c_[ijk, np.ones(len(ijk))].T).T[:, :3]
    np.testing.assert_array_equal(_world_lookup(vol, ras), data[tuple(ijk.T)])
    assert np.all(np.diag(np.abs(vol.direction)) >= np.abs(vol.direction).max(axis=0) - 1e-9)
    # SimpleITK reads the same voxels at the same places.
    ref = sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS")
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(ref))
    np.testing.assert_allclose(vol.affine_lps[:3, 3], ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(vol.direction, np.reshape(ref.GetDirection(), (3, 3)), atol=1e-4)


@pytest.mark.parametrize("orientation", [OBLIQUE, FLIPPED], ids=["oblique", "flipped"])
def test_mask_lands_on_ct_voxels_in_nibabel_and_simpleitk(tmp_path, orientation):
    series = tmp_path / "dicom"
    write_ct_series(series, slices=8, rows=32, cols=40, spacing=(0.7, 0.9, 2.5), orientation=orientation,
                    shuffle_names=True)
    vol = load_volume(series)
    mask = vol.array > 100  # bone and contrast: an irregular, asymmetric region
    mask[0, 0, 0] = True  # a corner voxel pins the orientation
    out = save_mask(mask, vol, tmp_path / "mask.nii.gz")
    save_volume(vol, tmp_path / "ct.nii.gz")

    # SimpleITK: the mask has the DICOM series' own grid, voxel for voxel.
    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series))
    ct_itk = sitk.ReadImage(names)
    mask_itk = sitk.ReadImage(str(out))
    assert mask_itk.GetSize() == ct_itk.GetSize()
    np.testing.assert_allclose(mask_itk.GetOrigin(), ct_itk.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(mask_itk.GetSpacing(), ct_itk.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(mask_itk.GetDirection(), ct_itk.GetDirection(), atol=1e-4)
    expected = sitk.GetArrayFromImage(ct_itk) > 100
    # the pinned corner voxel, found through SimpleITK's own world -> index map
    i, j, k = ct_itk.TransformPhysicalPointToIndex(tuple(vol.index_to_world((0, 0, 0))))
    expected[k, j, i] = True
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask_itk).astype(bool), expected)

    # nibabel: mask and CT share one affine, and the mask covers exactly the CT's bright voxels.
    m_img, c_img = nib.load(str(out)), nib.load(str(tmp_path / "ct.nii.gz"))
    np.testing.assert_allclose(m_img.affine, c_img.affine, atol=1e-4)
    m_data, c_data = np.asanyarray(m_img.dataobj).astype(bool), np.asanyarray(c_img.dataobj)
    ras_corner = np.diag([-1, -1, 1]) @ vol.index_to_world((0, 0, 0))
    ci, cj, ck = np.rint(np.linalg.inv(c_img.affine) @ np.append(ras_corner, 1))[:3].astype(int)
    expected = c_data > 100
    expected[ci, cj, ck] = True
    np.testing.assert_array_equal(m_data, expected)

    # and the round trip back onto the DICOM grid is exact
    np.testing.assert_array_equal(load_mask(out, vol), mask.astype(np.uint8))


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="dcm2niix is not installed")
@pytest.mark.parametrize("orientation", [OBLIQUE, FLIPPED], ids=["oblique", "flipped"])
def test_same_voxels_as_dcm2niix(tmp_path, orientation):
    series = tmp_path / "dicom"
    write_ct_series(series, slices=8, rows=32, cols=40, spacing=(0.7, 0.9, 2.5), orientation=orientation,
                    shuffle_names=True)
    (tmp_path / "d2n").mkdir()
    subprocess.run(["dcm2niix", "-z", "y", "-b", "n", "-f", "ref", "-o", str(tmp_path / "d2n"), str(series)],
                   check=True, capture_output=True, timeout=60)
    ref = nib.as_closest_canonical(nib.load(str(tmp_path / "d2n" / "ref.nii.gz")))
    vol = load_volume(series)
    save_volume(vol, tmp_path / "ct.nii.gz")
    save_mask(vol.array > 100, vol, tmp_path / "mask.nii.gz")
    ours = nib.as_closest_canonical(nib.load(str(tmp_path / "ct.nii.gz")))
    mask = nib.as_closest_canonical(nib.load(str(tmp_path / "mask.nii.gz")))
    ref_data = np.asanyarray(ref.dataobj)
    for img in (ours, mask):
        assert img.shape == ref.shape
        np.testing.assert_allclose(img.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(ours.dataobj), ref_data)
    np.testing.assert_array_equal(np.asanyarray(mask.dataobj).astype(bool), ref_data > 100)


@pytest.mark.parametrize("ext", [".nrrd", ".mha", ".mhd", ".nii"])
def test_other_formats_round_trip(tmp_path, ext):
    write_ct_series(tmp_path / "dicom", slices=4, rows=16, cols=12, orientation=OBLIQUE)
    vol = load_volume(tmp_path / "dicom")
    labels = np.zeros(vol.shape, np.uint16)
    labels[1, 2:5, 3:7] = 1
    labels[2, 6:9, 1:4] = 300  # beyond uint8
    out = save_mask(labels, vol, tmp_path / f"labels{ext}",
                    labels=[{"id": 1, "name": "lesion", "color": (255, 0, 0), "expression": "the nodule"}])
    back = load_volume(out)
    np.testing.assert_allclose(back.affine_lps, vol.affine_lps, atol=1e-4)
    np.testing.assert_array_equal(back.array, labels)
    infos = read_label_sidecar(out)
    assert [(i.id, i.name, i.expression) for i in infos][0] == (1, "lesion", "the nodule")
    assert {i.id for i in infos} == {1, 300}
    ct_out = save_volume(vol, tmp_path / f"ct{ext}")
    again = load_volume(ct_out)
    np.testing.assert_array_equal(again.array, vol.array)
    assert again.array.dtype == np.int16


def test_mask_never_overwrites_an_input(tmp_path):
    _nifti(tmp_path / "ct.nii.gz", NIFTI_AFFINES["ras"])
    vol = load_volume(tmp_path / "ct.nii.gz")
    with pytest.raises(VolumeError, match="overwrite an input"):
        save_mask(np.zeros(vol.shape, bool), vol, tmp_path / "ct.nii.gz")
    files = write_ct_series(tmp_path / "dicom", slices=2, rows=8, cols=8)
    dvol = load_volume(tmp_path / "dicom")
    with pytest.raises(VolumeError):
        save_volume(dvol, files[0])


def test_mask_of_other_grid_is_refused(tmp_path):
    _nifti(tmp_path / "a.nii.gz", NIFTI_AFFINES["ras"])
    _nifti(tmp_path / "b.nii.gz", NIFTI_AFFINES["oblique"])
    with pytest.raises(VolumeError, match="does not match"):
        load_mask(tmp_path / "b.nii.gz", load_volume(tmp_path / "a.nii.gz"))


def test_nothing_identifying_is_written(tmp_path):
    write_ct_series(tmp_path / "dicom", slices=2, rows=8, cols=8)  # PatientName Synthetic^Phantom, ID SYNTHETIC
    vol = load_volume(tmp_path / "dicom")
    assert "Synthetic^Phantom" not in repr(vol.meta) and "SYNTHETIC" not in repr(vol.meta)
    written = [save_volume(vol, tmp_path / f"ct{ext}") for ext in (".nii", ".nrrd", ".mha")]
    written.append(save_mask(vol.array > 0, vol, tmp_path / "m.nii", labels={1: "lesion"}))
    for path in [*written, tmp_path / "m.json"]:
        data = path.read_bytes()
        assert b"Synthetic^Phantom" not in data and b"SYNTHETIC" not in data, path


def test_nifti_shapes_scaling_and_refusals(tmp_path):
    flat = nib.Nifti1Image(np.arange(12, dtype=np.int16).reshape(4, 3), np.diag([0.5, 0.7, 1.0, 1.0]))
    nib.save(flat, str(tmp_path / "flat.nii"))
    vol = load_volume(tmp_path / "flat.nii")
    assert vol.shape == (1, 3, 4) and vol.spacing[:2] == pytest.approx((0.5, 0.7))
    scaled = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    scaled.header.set_slope_inter(0.5, -10.0)
    nib.save(scaled, str(tmp_path / "scaled.nii.gz"))
    vol = load_volume(tmp_path / "scaled.nii.gz")
    assert vol.array.dtype == np.float32
    assert vol.array.min() == -10.0 and vol.array.max() == pytest.approx(1.5)
    series = nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.int16), np.eye(4))
    nib.save(series, str(tmp_path / "4d.nii.gz"))
    with pytest.raises(VolumeError, match="not a single 3-D volume"):
        load_volume(tmp_path / "4d.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(VolumeError, match="broken.nii.gz"):
        load_volume(tmp_path / "broken.nii.gz")
    (tmp_path / "broken.nrrd").write_text("NRRD0004\ntype: nonsense\n")
    with pytest.raises(VolumeError, match="broken.nrrd"):
        load_volume(tmp_path / "broken.nrrd")


def test_writing_into_a_missing_folder_is_refused(tmp_path):
    _nifti(tmp_path / "ct.nii.gz", NIFTI_AFFINES["ras"])
    vol = load_volume(tmp_path / "ct.nii.gz")
    with pytest.raises(VolumeError, match="does not exist"):
        save_mask(np.zeros(vol.shape, bool), vol, tmp_path / "nowhere" / "m.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]  # no stray temporary file


def test_folder_of_nifti_points_to_the_file(tmp_path):
    _nifti(tmp_path / "ct.nii.gz", NIFTI_AFFINES["ras"])
    with pytest.raises(VolumeError, match="holds ct.nii.gz: open that file"):
        load_volume(tmp_path)

"""The three planes' geometry (no Qt): sections are views, pixels have the voxels' size, the letters at each
edge agree with world coordinates for volumes in memory and as the loader reads NIfTI and DICOM files in
several orientations (LPS, RAS, flipped, oblique, gantry tilt)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lsms_core.volume import Volume, load_volume
from lsms_core.volume.synthetic_dicom import write_ct_series
from lsms_viewer.display.overlay import compose_slice
from lsms_viewer.display.planes import AXIAL, CORONAL, PLANES, SAGITTAL, PlaneGeometry, plane_geometries
from lsms_viewer.state.document import Label


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    m = np.eye(3)
    p, q = [x for x in range(3) if x != axis]
    m[p, p], m[p, q], m[q, p], m[q, q] = c, -s, s, c
    return m


def _world_letter(vector: np.ndarray) -> str:
    """The patient direction a world (LPS) displacement points to, by its largest component."""
    axis = int(np.argmax(np.abs(vector)))
    return ("LPS" if vector[axis] > 0 else "RAI")[axis]


def _check_letters_against_world(volume: Volume) -> None:
    """For every plane: step one pixel right / down on screen, map it to the world through the volume's own
    index_to_world, and compare the patient direction reached with the letter printed at that edge."""
    opposite = dict(zip("LPSRAI", "RAILPS", strict=True))
    for plane, geo in plane_geometries(volume).items():
        h, w = geo.size
        index, c, r = geo.count // 2, w // 2 + 0.5, h // 2 + 0.5
        centre = volume.index_to_world(geo.to_voxel(index + 0.5, c, r) - 0.5)
        right = volume.index_to_world(geo.to_voxel(index + 0.5, c + 1, r) - 0.5) - centre
        down = volume.index_to_world(geo.to_voxel(index + 0.5, c, r + 1) - 0.5) - centre
        letters = geo.letters()
        assert letters["right"][0] == _world_letter(right), plane
        assert letters["left"][0] == opposite[_world_letter(right)], plane
        assert letters["bottom"][0] == _world_letter(down), plane
        assert letters["top"][0] == opposite[_world_letter(down)], plane
        # the pixel steps are the voxel spacing along the plane's axes (physical aspect)
        assert np.isclose(np.linalg.norm(right), geo.pixel_mm[0]), plane
        assert np.isclose(np.linalg.norm(down), geo.pixel_mm[1]), plane


def _volume(direction, shape=(6, 7, 8), spacing=(0.7, 0.9, 2.5)) -> Volume:
    array = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    return Volume(array, spacing, (10.0, -20.0, 30.0), direction)


DIRECTIONS = {
    "lps": np.eye(3),
    "ras": np.diag([-1.0, -1.0, 1.0]),
    "feet-first": np.diag([1.0, 1.0, -1.0]),
    "all-flipped": -np.eye(3),
    "oblique-z20": _rotation(2, 20.0),
    "oblique-x15-y10": _rotation(0, 15.0) @ _rotation(1, 10.0),
    # a sheared grid (k not perpendicular to i and j), as the loader keeps a gantry-tilted series
    "gantry-tilt": np.array([[1, 0, 0], [0, 1, 0.26], [0, 0, 0.966]]) / np.array([1, 1, np.hypot(0.26, 0.966)]),
}


@pytest.mark.parametrize("name", DIRECTIONS)
def test_letters_agree_with_world_coordinates_in_memory(name):
    _check_letters_against_world(_volume(DIRECTIONS[name]))


def test_sections_are_views_in_radiological_layout_with_head_up():
    volume = _volume(np.eye(3))
    array = volume.array
    geos = plane_geometries(volume)
    for plane in PLANES:
        assert np.shares_memory(geos[plane].section(array, 2), array)  # no copy per slice change
    assert np.array_equal(geos[AXIAL].section(array, 3), array[3])
    assert np.array_equal(geos[CORONAL].section(array, 4), array[::-1, 4, :])
    assert np.array_equal(geos[SAGITTAL].section(array, 5), array[::-1, :, 5])
    assert geos[CORONAL].letters() == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert geos[SAGITTAL].letters() == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    assert geos[AXIAL].letters() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert geos[CORONAL].size == (6, 8) and geos[CORONAL].pixel_mm == (0.7, 2.5)
    assert geos[SAGITTAL].size == (6, 7) and geos[SAGITTAL].pixel_mm == (0.9, 2.5)
    assert geos[SAGITTAL].extent_mm == pytest.approx((7 * 0.9, 6 * 2.5))
    assert [g.count for g in geos.values()] == [6, 7, 8]
    assert not any(g.oblique for g in geos.values()) and geos[CORONAL].title == "Coronal"


@pytest.mark.parametrize("name", ["lps", "feet-first", "oblique-x15-y10"])
def test_pixels_map_to_the_voxels_they_show(name):
    volume = _volume(DIRECTIONS[name])
    rng = np.random.default_rng(0)
    for plane, geo in plane_geometries(volume).items():
        h, w = geo.size
        for _ in range(20):
            index, col, row = int(rng.integers(geo.count)), rng.uniform(0, w), rng.uniform(0, h)
            i, j, k = geo.voxel_at(index, col, row)
            assert geo.section(volume.array, index)[int(row), int(col)] == volume.array[k, j, i], plane
            # continuous round trip, and the slice of a voxel is the one that shows it
            ijk = geo.to_voxel(index + 0.5, col, row)
            assert np.allclose(geo.to_voxel(*geo.to_plane(ijk)[:1], *geo.to_plane(ijk)[1:])[[geo.col_axis, geo.row_axis]],
                               ijk[[geo.col_axis, geo.row_axis]])
            assert geo.to_plane(ijk)[0] == index
            x, y = geo.centre_mm((i, j, k))
            px, py = geo.pixel_mm
            assert (int(x / px), int(y / py)) == (int(col), int(row))
        assert geo.voxel_at(0, -0.1, 0) is None and geo.voxel_at(0, 0, h) is None and geo.voxel_at(geo.count, 0, 0) is None


def test_oblique_planes_are_named_as_voxel_planes():
    geo = PlaneGeometry.of(_volume(DIRECTIONS["oblique-x15-y10"]), CORONAL)
    assert geo.oblique
    assert geo.title.startswith("Coronal (oblique: voxel plane i–k,") and "off axis" in geo.title
    tilted = PlaneGeometry.of(_volume(DIRECTIONS["gantry-tilt"]), SAGITTAL)
    assert tilted.oblique and "voxel plane j–k" in tilted.title
    assert not PlaneGeometry.of(_volume(DIRECTIONS["gantry-tilt"]), AXIAL).oblique  # i, j untouched


def test_overlay_of_a_plane_is_the_mask_section():
    volume = _volume(np.eye(3))
    mask = np.zeros(volume.shape, bool)
    mask[1:3, 2:5, 6] = True
    label = Label(id=1, name="a", expression="", color=(1, 2, 3), mask=mask)
    geo = PlaneGeometry.of(volume, SAGITTAL)
    out = np.zeros(geo.size, np.uint8)
    rows, cols = compose_slice([label], 6, out, geo)
    assert np.array_equal(out > 0, mask[::-1, :, 6])
    assert (rows, cols) == (slice(3, 5), slice(2, 5))
    assert compose_slice([label], 5, out, geo) is None


def _nifti(path, affine_ras, shape=(8, 7, 6)):
    data = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)  # nibabel order (i, j, k)
    image = nib.Nifti1Image(data, affine_ras)
    image.set_sform(affine_ras, code=1)
    image.set_qform(affine_ras, code=1)
    nib.save(image, str(path))
    return path


def _ras_affine(direction_ras: np.ndarray, spacing=(0.8, 0.9, 2.0), origin=(5.0, -7.0, 11.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = direction_ras * np.asarray(spacing)[None, :]
    affine[:3, 3] = origin
    return affine


FILE_DIRECTIONS_RAS = {  # the file's own axes, in nibabel's RAS terms
    "ras": np.eye(3),
    "lps": np.diag([-1.0, -1.0, 1.0]),
    "flipped-z": np.diag([1.0, 1.0, -1.0]),
    "sagittal-stack": np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]]),
    "oblique": _rotation(0, 12.0) @ _rotation(2, 8.0),
}


@pytest.mark.parametrize("name", FILE_DIRECTIONS_RAS)
def test_nifti_files_in_several_orientations_show_radiologically(tmp_path, name):
    volume = load_volume(_nifti(tmp_path / f"{name}.nii.gz", _ras_affine(FILE_DIRECTIONS_RAS[name])))
    _check_letters_against_world(volume)
    geos = plane_geometries(volume)
    # Whatever the file's layout: patient right on screen left (axial, coronal), anterior on screen left
    # (sagittal), head up (coronal, sagittal), anterior up (axial): the first letter at each edge.
    expected = {AXIAL: "RLAP", CORONAL: "RLSI", SAGITTAL: "APSI"}
    for plane, geo in geos.items():
        letters = geo.letters()
        assert "".join(letters[e][0] for e in ("left", "right", "top", "bottom")) == expected[plane], plane
    assert geos[CORONAL].oblique == (name == "oblique")


@pytest.mark.parametrize("orientation, tilt", [((1, 0, 0, 0, 1, 0), 0.0), ((-1, 0, 0, 0, -1, 0), 0.0),
                                               ((1, 0, 0, 0, 0.96, -0.28), 0.0), ((1, 0, 0, 0, 1, 0), 15.0)])
def test_dicom_series_show_radiologically(tmp_path, orientation, tilt):
    folder = tmp_path / "series"
    write_ct_series(folder, slices=6, rows=16, cols=12, orientation=orientation, gantry_tilt_deg=tilt)
    volume = load_volume(folder)
    _check_letters_against_world(volume)
    geos = plane_geometries(volume)
    assert geos[CORONAL].letters()["top"][0] == "S" and geos[CORONAL].letters()["left"][0] == "R"
    assert geos[SAGITTAL].letters()["left"][0] == "A"
    assert geos[SAGITTAL].oblique == (orientation[4] != 1 and orientation[4] != -1 or tilt != 0)


def test_label_extents_skip_only_slices_a_label_cannot_reach():
    from lsms_viewer.display.overlay import LabelExtents

    mask = np.zeros((6, 7, 8), bool)
    mask[2, 3, 4] = True
    label = Label(id=1, name="a", expression="", color=(1, 2, 3), mask=mask)
    sagittal, coronal = LabelExtents(0), LabelExtents(1)  # normals i and j
    assert [sagittal.reaches(label, i) for i in range(8)] == [i == 4 for i in range(8)]
    assert [coronal.reaches(label, j) for j in range(7)] == [j == 3 for j in range(7)]
    mask[5, 6, 0] = True  # an edit on axial slice 5
    sagittal.grow(label, range(5, 6))
    coronal.grow(label, range(5, 6))
    assert sagittal.reaches(label, 0) and coronal.reaches(label, 6)
    out = np.zeros((6, 7), np.uint8)
    geo = PlaneGeometry.for_grid(mask.shape, (1, 1, 1), np.eye(3), SAGITTAL)
    assert compose_slice([label], 0, out, geo, lambda lab: sagittal.reaches(lab, 0)) is not None
    assert compose_slice([label], 1, out, geo, lambda lab: sagittal.reaches(lab, 1)) is None

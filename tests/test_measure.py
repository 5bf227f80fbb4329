"""measure.py against values computed by hand on shapes whose geometry is known exactly."""

import math

import numpy as np
import pytest

from lsms_core.measure import (
    MeasureError,
    array_spacing,
    axes_2d,
    classify_density,
    measure_2d,
    measure_3d,
    patient_side,
    relative_density,
    ring_mask,
)


def test_rectangle_long_axis_is_the_diagonal_and_short_axis_is_exact():
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 5:35] = 1  # 10 rows x 30 cols
    sy, sx = 0.8, 0.5  # h = 8 mm, w = 15 mm
    m = measure_2d(mask, (sy, sx))
    h, w = 8.0, 15.0
    d = math.hypot(h, w)  # 17 mm
    assert m.long_axis.length_mm == pytest.approx(d, abs=1e-9)
    assert {m.long_axis.p0, m.long_axis.p1} in (
        {(9.5, 4.5), (19.5, 34.5)},
        {(9.5, 34.5), (19.5, 4.5)},
    )
    # the longest chord perpendicular to the diagonal of a w x h rectangle (w >= h) is h * d / w
    assert m.short_axis.length_mm == pytest.approx(h * d / w, abs=1e-9)
    assert m.area_mm2 == pytest.approx(300 * sy * sx)
    assert m.n_pixels == 300
    assert m.centroid == pytest.approx((14.5, 19.5))
    # endpoints are perpendicular to the long axis in mm space
    la, sa = m.long_axis, m.short_axis
    e = np.subtract(la.p1, la.p0) * (sy, sx)
    n = np.subtract(sa.p1, sa.p0) * (sy, sx)
    assert abs(float(e @ n)) < 1e-4  # endpoints are rounded to 1e-6 px
    assert float(np.linalg.norm(n)) == pytest.approx(sa.length_mm)


def test_disk_diameter_within_one_pixel():
    yy, xx = np.mgrid[:101, :101]
    mask = (yy - 50) ** 2 + (xx - 50) ** 2 <= 30**2
    long_axis, short_axis = axes_2d(mask, (0.5, 0.5))
    # radius 30 px at 0.5 mm: 30 mm between centres, 30.5 mm between the outer pixel edges
    assert 30.0 <= long_axis.length_mm <= 30.5 + 0.25
    assert 29.5 <= short_axis.length_mm <= long_axis.length_mm
    m = measure_2d(mask, (0.5, 0.5))
    assert m.area_mm2 == pytest.approx(math.pi * 15.0**2, rel=0.01)


def test_ellipse_at_anisotropic_spacing_is_measured_in_mm_not_pixels():
    # Semi-axes 20 mm along columns (1.0 mm pixels) and 10 mm along rows (0.5 mm pixels): 40 x 40 pixels
    # on screen, yet the long axis is the horizontal one.
    yy, xx = np.mgrid[:61, :61]
    mask = ((yy - 30) * 0.5 / 10.0) ** 2 + ((xx - 30) * 1.0 / 20.0) ** 2 <= 1.0
    m = measure_2d(mask, (0.5, 1.0))
    assert 40.0 <= m.long_axis.length_mm <= 41.2
    assert 20.0 <= m.short_axis.length_mm <= 20.6
    # the long axis runs along the columns: its endpoints' rows stay near the centre row
    assert abs(m.long_axis.p0[0] - 30) <= 3 and abs(m.long_axis.p1[0] - 30) <= 3
    assert abs(m.long_axis.p1[1] - m.long_axis.p0[1]) >= 40
    assert m.area_mm2 == pytest.approx(math.pi * 20 * 10, rel=0.02)


def test_single_pixel_measures_one_pixel():
    mask = np.zeros((5, 5), bool)
    mask[2, 2] = True
    long_axis, short_axis = axes_2d(mask, (0.7, 0.7))
    assert long_axis.length_mm == pytest.approx(0.7 * math.sqrt(2))
    assert short_axis.length_mm == pytest.approx(0.7 * math.sqrt(2))


def test_empty_mask_and_bad_spacing_raise():
    with pytest.raises(MeasureError, match="empty"):
        measure_2d(np.zeros((4, 4)), (1, 1))
    with pytest.raises(MeasureError, match="spacing"):
        measure_2d(np.ones((4, 4)), (1, 0))
    with pytest.raises(MeasureError, match="2D"):
        measure_2d(np.ones((2, 4, 4)), (1, 1))


def test_measure_3d_volume_extent_and_hu():
    mask = np.zeros((12, 20, 20), np.uint8)
    mask[2:12, 5:15, 5:15] = 1
    mask[6, 3:17, 5:15] = 1  # the largest slice
    hu = np.where(mask > 0, 30.0, 60.0)
    sp = array_spacing((0.5, 0.5, 2.0))  # Volume (x, y, z) -> (slice, row, col)
    assert sp == (2.0, 0.5, 0.5)
    m = measure_3d(mask, sp, hu)
    n = 1000 + 40
    assert m.n_voxels == n
    assert m.volume_ml == pytest.approx(n * 2.0 * 0.25 / 1000)
    assert (m.first_slice, m.last_slice, m.n_slices) == (2, 11, 10)
    assert m.extent_mm == pytest.approx(20.0)
    assert m.hu_mean == pytest.approx(30.0) and m.hu_std == pytest.approx(0.0)
    assert m.largest_slice == 6
    assert m.long_axis_mm == pytest.approx(math.hypot(14 * 0.5, 10 * 0.5))


def test_density_against_a_ring_and_an_organ():
    rng = np.random.default_rng(0)
    img = 60 + rng.normal(0, 5, (80, 80))
    yy, xx = np.mgrid[:80, :80]
    lesion = (yy - 40) ** 2 + (xx - 40) ** 2 <= 8**2
    img[lesion] -= 40
    d = relative_density(img, lesion, (0.7, 0.7))
    assert d.label == "hypo" and d.reference == "ring"
    assert d.difference_hu == pytest.approx(-40, abs=3)
    img2 = img.copy()
    img2[lesion] += 80
    assert relative_density(img2, lesion, (0.7, 0.7)).label == "hyper"
    img3 = img.copy()
    img3[lesion] += 40
    assert relative_density(img3, lesion, (0.7, 0.7)).label == "iso"
    organ = np.zeros_like(lesion)
    organ[10:70, 10:70] = True
    d_org = relative_density(img, lesion, (0.7, 0.7), organ_mask=organ, reference="organ")
    assert d_org.label == "hypo" and d_org.reference_hu == pytest.approx(60, abs=1)
    assert (
        classify_density(-9.9) == "iso"
        and classify_density(-10) == "hypo"
        and classify_density(10) == "hyper"
    )


def test_ring_has_the_requested_width_and_stays_inside_the_organ():
    lesion = np.zeros((60, 60), bool)
    lesion[25:35, 25:35] = True
    ring = ring_mask(lesion, (1.0, 1.0), 3.0)
    assert not (ring & lesion).any()
    assert ring[24, 30] and ring[22, 30] and not ring[21, 30]
    organ = np.zeros_like(lesion)
    organ[:, :30] = True
    assert not ring_mask(lesion, (1.0, 1.0), 3.0, within=organ)[:, 30:].any()


def test_patient_side_follows_the_radiological_layout():
    mask = np.zeros((10, 100), bool)
    mask[4:6, 10:20] = True  # image-left = patient right
    assert patient_side(mask) == "right"
    assert patient_side(mask[:, ::-1]) == "left"
    assert patient_side(mask, midline_col=5) == "left"


def _phantom_ct():
    """A 12-slice liver-like block (60 HU) with a hypodense disc (10 HU) on the patient's right."""
    rng = np.random.default_rng(0)
    arr = np.full((12, 64, 80), -900.0, dtype=np.float32)
    arr[:, 8:56, 6:74] = 60.0
    yy, xx = np.mgrid[0:64, 0:80]
    arr[:, (yy - 32) ** 2 + (xx - 20) ** 2 <= 7**2] = 10.0
    arr += rng.normal(0, 2.0, size=arr.shape).astype(np.float32)
    return arr, (2.5, 0.7, 0.8)  # (slice, row, col) mm


def _dark(arr):
    mask = np.abs(arr - 10) < 15
    mask[:, :, arr.shape[2] // 2:] = False
    return mask


def test_measure_volume_matches_measure_3d_and_its_cache():
    from lsms_core.measure import measure_volume

    hu, sp = _phantom_ct()
    mask = _dark(hu)
    mask[3:6, 20:40, 5:12] = True  # make one slice's axis the longest
    ref = measure_3d(mask, sp, hu=hu)
    cache = {}
    ours, density = measure_volume(hu, mask, sp, long_axes=cache)
    for name in ("volume_ml", "n_voxels", "first_slice", "last_slice", "n_slices", "extent_mm", "hu_mean",
                 "hu_std", "largest_slice", "long_axis_mm"):
        assert getattr(ours, name) == pytest.approx(getattr(ref, name)), name
    assert len(cache) == hu.shape[0] and density.label == "hypo"
    assert measure_volume(hu, mask, sp, long_axes=cache)[0] == ours  # served from the cache



def test_body_midline_ignores_a_table_wider_than_the_patient():
    from lsms_core.measure import body_midline_col

    image = np.full((64, 100), -1000.0)
    image[10:50, 20:61] = 40.0  # the body: columns 20..60
    assert body_midline_col(image) == 40.0
    image[58:60, :] = 150.0  # a two-row table across the field
    assert body_midline_col(image) == 40.0
    assert body_midline_col(np.full((64, 100), -1000.0)) is None


def test_measure_pieces_measures_the_largest_piece_and_lists_all():
    from lsms_core.measure import measure_pieces, measure_slice, measure_volume

    plane = np.zeros((64, 64), bool)
    plane[10:20, 10:30] = True  # 10 x 20 px
    plane[50, 60] = True  # a stray dot
    plane[40:44, 40:44] = True
    m = measure_pieces(plane, (1.0, 1.0))
    assert m.long_axis.length_mm == pytest.approx(np.hypot(10, 20)) and m.n_pixels == 200
    assert [p.n_pixels for p in m.pieces] == [200, 16, 1]
    assert measure_pieces(plane[:30], (1.0, 1.0)).pieces == ()  # one piece: nothing listed
    vol = np.zeros((3, 64, 64), bool)
    vol[1] = plane
    hu = np.zeros(vol.shape, np.float32)
    m2, _density, _side = measure_slice(hu, vol, 1, (2.0, 1.0, 1.0), largest_piece=True)
    assert m2.long_axis.length_mm == pytest.approx(np.hypot(10, 20)) and len(m2.pieces) == 3
    m3, _ = measure_volume(hu, vol, (2.0, 1.0, 1.0), largest_piece=True)
    assert m3.long_axis_mm == pytest.approx(np.hypot(10, 20))
    # Without asking, the whole slice is one measurement, as before.
    assert measure_slice(hu, vol, 1, (2.0, 1.0, 1.0))[0].long_axis.length_mm > 60

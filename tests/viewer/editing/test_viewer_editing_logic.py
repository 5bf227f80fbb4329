"""Pixel logic of the editing tools on real arrays (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_viewer.editing import (
    EditError,
    clear_slice,
    combine_changes,
    fill_holes,
    flood_fill,
    footprint,
    footprint_outline,
    interpolate_between,
    keep_component,
    paint_stroke,
    remove_component,
    stroke_mask,
)


def test_footprint_is_round_in_millimetres_not_pixels():
    fp = footprint(3.0, (1.0, 0.5))  # rows 1 mm, columns 0.5 mm: twice as many columns
    assert fp.shape == (7, 13)
    assert fp[3].sum() == 13 and fp[:, 6].sum() == 7
    assert not fp[0, 0]
    # Area close to pi r^2 in mm^2.
    assert abs(fp.sum() * 0.5 - np.pi * 9) / (np.pi * 9) < 0.15


def test_tiny_brush_still_paints_the_clicked_pixel():
    assert footprint(0.1, (0.7, 0.7)).sum() == 1


def test_outline_encloses_exactly_the_footprint():
    from matplotlib.path import Path

    spacing = (0.7, 0.9)
    fp = footprint(4.0, spacing)
    outline = footprint_outline(4.0, spacing)
    ry, rx = fp.shape[0] // 2, fp.shape[1] // 2
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    inside = Path(outline).contains_points(np.c_[xx.ravel(), yy.ravel()]).reshape(fp.shape)
    assert np.array_equal(inside, fp)


def test_stroke_has_no_gaps_between_far_apart_samples():
    mask, (y0, x0) = stroke_mask([(10, 5), (10, 60)], 1.0, (1.0, 1.0), (32, 80))
    assert y0 == 9 and x0 == 4
    row = mask[10 - y0]
    assert row[5 - x0 : 61 - x0].all()


def test_stroke_is_clipped_at_the_image_edge():
    mask, (y0, x0) = stroke_mask([(0, 0)], 3.0, (1.0, 1.0), (10, 10))
    assert (y0, x0) == (0, 0) and mask.shape == (4, 4)


def test_paint_and_erase_change_only_the_stroke_and_revert_exactly():
    target = np.zeros((4, 20, 20), bool)
    change = paint_stroke(target, 2, [(10, 10)], 2.0, (1.0, 1.0))
    assert change.slices_touched == range(2, 3)
    change.apply(target)
    assert target[2].sum() == footprint(2.0, (1, 1)).sum() and target.sum() == target[2].sum()
    erase = paint_stroke(target, 2, [(10, 10)], 1.0, (1.0, 1.0), erase=True)
    erase.apply(target)
    assert not target[2, 10, 10] and target[2, 8, 10]
    erase.revert(target)
    change.revert(target)
    assert not target.any()


def test_threshold_brush_paints_only_inside_the_hu_range():
    image = np.zeros((1, 10, 10), np.float32)
    image[0, :, 5:] = 100
    target = np.zeros_like(image, dtype=bool)
    paint_stroke(target, 0, [(5, 5)], 10.0, (1, 1), image=image, hu_range=(50, 150)).apply(target)
    assert target[0, :, 5:].all() and not target[0, :, :5].any()
    with pytest.raises(EditError, match="needs the CT image"):
        paint_stroke(target, 0, [(5, 5)], 1.0, (1, 1), hu_range=(0, 1))


def test_multilabel_eraser_leaves_other_labels_alone_and_no_overwrite_protects_them():
    target = np.zeros((1, 10, 10), np.uint8)
    target[0, :, :5] = 5
    paint_stroke(target, 0, [(5, 5)], 3.0, (1, 1), value=3, overwrite=False).apply(target)
    assert (target[0, :, :5] == 5).all() and (target == 3).any()
    paint_stroke(target, 0, [(5, 5)], 10.0, (1, 1), value=3, erase=True).apply(target)
    assert not (target == 3).any() and (target[0, :, :5] == 5).all()


def test_flood_fill_fills_the_inside_of_an_outline_but_not_outside():
    target = np.zeros((1, 20, 20), bool)
    target[0, 5, 5:15] = target[0, 14, 5:15] = target[0, 5:15, 5] = target[0, 5:15, 14] = True
    flood_fill(target, 0, (10, 10)).apply(target)
    assert target[0, 5:15, 5:15].all() and target.sum() == 100
    with pytest.raises(EditError, match="whole slice"):
        flood_fill(target, 0, (1, 1), bounded_by_label=False)
    with pytest.raises(EditError, match="outside"):
        flood_fill(target, 0, (30, 1))


def test_fill_holes_on_every_slice_and_clear_slice():
    target = np.zeros((3, 10, 10), bool)
    target[0, 2:8, 2:8] = True
    target[0, 4:6, 4:6] = False
    target[2] = target[0]
    change = fill_holes(target)
    assert change.slices_touched == range(0, 3)
    change.apply(target)
    assert target[0, 2:8, 2:8].all() and target[2, 2:8, 2:8].all()
    clear_slice(target, 2).apply(target)
    assert not target[2].any() and target[0].any()


def test_keep_and_remove_component_in_slice_and_in_3d():
    target = np.zeros((3, 10, 20), bool)
    target[:, 2:5, 2:5] = True  # lesion A through all slices
    target[1, 2:5, 12:15] = True  # lesion B on slice 1
    keep = keep_component(target, 1, (3, 3))
    assert keep.slices_touched == range(1, 2)
    keep.apply(target)
    assert not target[1, :, 10:].any() and target[:, 3, 3].all()
    keep.revert(target)
    remove_component(target, 0, (3, 3), three_d=True).apply(target)
    assert not target[:, 3, 3].any() and target[1, 3, 13]
    assert keep_component(target, 0, (9, 19)).empty  # click on background: nothing


def test_interpolation_morphs_between_key_slices_and_keeps_them():
    target = np.zeros((7, 40, 40), bool)
    yy, xx = np.mgrid[0:40, 0:40]
    target[0] = (yy - 20) ** 2 + (xx - 20) ** 2 <= 4**2
    target[6] = (yy - 20) ** 2 + (xx - 20) ** 2 <= 12**2
    key0, key6 = target[0].copy(), target[6].copy()
    change = interpolate_between(target, 6, 0, (1.0, 1.0))
    change.apply(target)
    areas = target.sum(axis=(1, 2))
    assert np.array_equal(target[0], key0) and np.array_equal(target[6], key6)
    assert all(a < b for a, b in zip(areas[:-1], areas[1:], strict=False))
    assert abs(np.sqrt(areas[3] / np.pi) - 8) < 1.0  # radius halfway between 4 and 12
    with pytest.raises(EditError, match="key slice"):
        interpolate_between(np.zeros((5, 4, 4), bool), 0, 4, (1, 1))


def test_combine_changes_makes_one_undoable_record():
    target = np.zeros((2, 30, 30), bool)
    pieces = []
    for p, q in (((5, 5), (5, 15)), ((5, 15), (20, 15))):
        c = paint_stroke(target, 1, [p, q], 1.5, (1, 1))
        c.apply(target)
        pieces.append(c)
    whole = combine_changes(pieces, target)
    after = target.copy()
    whole.revert(target)
    assert not target.any()
    whole.apply(target)
    assert np.array_equal(target, after)


def test_interpolation_follows_a_lesion_that_drifts_without_overlap():
    target = np.zeros((5, 40, 60), bool)
    yy, xx = np.mgrid[0:40, 0:60]
    target[0] = (yy - 20) ** 2 + (xx - 10) ** 2 <= 4**2
    target[4] = (yy - 20) ** 2 + (xx - 50) ** 2 <= 4**2
    interpolate_between(target, 0, 4, (1.0, 1.0)).apply(target)
    for z, centre in ((1, 20), (2, 30), (3, 40)):
        assert target[z].sum() > 30
        assert abs(np.nonzero(target[z])[1].mean() - centre) < 1.0

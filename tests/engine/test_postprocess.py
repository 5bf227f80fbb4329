"""Keeping the one lesion an expression refers to."""

import numpy as np
import pytest

from lsms_core.postprocess import keep_referred_lesion


def test_the_region_with_most_probability_mass_is_kept():
    probs = np.zeros((6, 20, 20), np.float32)
    probs[1:3, 2:5, 2:5] = 0.95  # small but confident: 18 voxels x 0.95
    probs[3:6, 10:16, 10:16] = 0.6  # larger, less sure: 108 voxels x 0.6 -> more mass
    probs[0, 18, 18] = 0.99  # a confident speck
    result = keep_referred_lesion(probs, probs > 0.5)
    assert result.candidates == 3
    assert result.mask.sum() == 108 and result.mask[4, 12, 12] and not result.mask[1, 3, 3]
    assert result.dropped_voxels == 19
    assert result.kept_mass == pytest.approx(108 * 0.6, rel=1e-5)
    assert result.note() == "kept the most probable of 3 candidate regions (19 voxels elsewhere dropped)"


def test_regions_touching_across_slices_are_one_lesion():
    probs = np.zeros((3, 10, 10), np.float32)
    probs[0, 2:4, 2:4] = 0.9
    probs[1, 3:5, 3:5] = 0.9
    probs[2, 8, 8] = 0.6
    result = keep_referred_lesion(probs, probs > 0.5)
    assert result.candidates == 2 and result.mask.sum() == 8


def test_empty_and_single_regions_pass_through_and_2d_works():
    empty = keep_referred_lesion(np.zeros((4, 4)), np.zeros((4, 4), bool))
    assert empty.candidates == 0 and not empty.mask.any()
    one = np.zeros((8, 8), np.float32)
    one[2:4, 2:4] = 0.8
    result = keep_referred_lesion(one, one > 0.5)
    assert result.candidates == 1 and result.mask.sum() == 4 and result.dropped_voxels == 0
    assert result.note() is None and empty.note() is None
    with pytest.raises(ValueError, match="shape"):
        keep_referred_lesion(one, np.zeros((4, 4), bool))

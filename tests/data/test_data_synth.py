"""Synthetic CT: reproducible, realistic HU per tissue, lesions inside the liver."""

import numpy as np
import pytest

from lsms_core.data import synth
from lsms_core.data.synth import synth_case


@pytest.fixture(scope="module")
def case():
    return synth_case(3, size=96, n_slices=10, phase="portal venous", n_lesions=3)


def test_same_seed_same_case_and_other_seed_differs(case):
    again = synth_case(3, size=96, n_slices=10, phase="portal venous", n_lesions=3)
    assert np.array_equal(case.ct, again.ct) and np.array_equal(case.lesions, again.lesions)
    other = synth_case(4, size=96, n_slices=10, phase="portal venous", n_lesions=3)
    assert not np.array_equal(case.ct, other.ct)


def test_tissues_have_textbook_hounsfield_values(case):
    ct, org = case.ct.astype(float), case.organs
    assert ct.dtype == np.float64 and case.ct.dtype == np.int16
    assert np.median(ct[org == synth.AIR]) < -950
    assert -130 < np.median(ct[org == synth.FAT]) < -70
    assert 30 < np.median(ct[org == synth.MUSCLE]) < 80
    assert 60 < np.median(ct[org == synth.LIVER]) < 150  # portal venous (a fatty liver is darker)
    assert np.median(ct[org == synth.CORTEX]) > 300
    assert np.median(ct[org == synth.AORTA]) > np.median(ct[org == synth.MUSCLE]) + 50


def test_lesions_lie_in_the_liver_and_have_segments(case):
    les = case.lesions > 0
    assert les.any()
    assert np.all(case.segments[les] > 0)
    assert set(np.unique(case.lesions)) - {0} <= set(range(1, len(case.lesion_specs) + 1))


def test_bad_settings_are_refused():
    with pytest.raises(synth.SynthError):
        synth_case(0, size=8)
    with pytest.raises(synth.SynthError):
        synth_case(0, size=64, n_slices=2, phase="venous-ish")

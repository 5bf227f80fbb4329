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


def test_lesion_sizes_cover_each_kinds_whole_range():
    from lsms_core.data.synth_lesions import DIAMETER_RANGE_MM, draw_diameter

    rng = np.random.default_rng(0)
    for kind, (lo, hi) in DIAMETER_RANGE_MM.items():
        d = np.array([draw_diameter(rng, kind) for _ in range(4000)])
        assert lo <= d.min() and d.max() <= hi
        # the large end is drawn (a real 8-10 cm tumour must have synthetic peers) ...
        assert d.max() > lo + 0.9 * (hi - lo), (kind, d.max())
        # ... while most lesions stay small or medium, as radiologists see them
        assert np.median(d) < np.sqrt(lo * hi), (kind, np.median(d))


def test_visibility_follows_contrast_size_and_noise():
    from lsms_core.data.synth_dataset import is_visible

    assert is_visible(20.0, 100, noise_sd_hu=10.0)  # CNR 2 over 100 samples: 20 >= 5
    assert not is_visible(10.0, 4, noise_sd_hu=15.0)  # a 2x2 px, 10 HU cut in 15 HU noise
    assert is_visible(10.0, 400, noise_sd_hu=15.0)  # the same contrast over a large cut
    assert not is_visible(-4.0, 5000, noise_sd_hu=1.0)  # under the absolute floor whatever the size
    assert is_visible(2.0, 4, noise_sd_hu=20.0, calcified=True)  # calcium shows whatever the rest does
    # correlated noise holds fewer independent samples: the same cut is harder to see
    assert is_visible(8.0, 60, noise_sd_hu=10.0) and not is_visible(8.0, 60, noise_sd_hu=10.0, noise_corr_px=1.0)


def test_a_cut_no_reader_could_see_is_painted_but_never_referred_to():
    from lsms_core.data.synth_dataset import case_samples

    # Portal venous: a cyst (near water) stands out on every cut; an FNH is painted close to the liver, so
    # its thin pole (a few HU from the liver over a few dozen pixels) is below Rose's criterion
    lesions = [{"kind": "cyst", "diameter_mm": 24.0, "uvt": (-0.55, 0.15, 0.36), "shape": "round", "boundary": "clear"},
               {"kind": "fnh", "diameter_mm": 24.0, "uvt": (-0.35, -0.3, 0.38), "shape": "round", "boundary": "clear"}]
    case = synth_case(11, size=256, n_slices=32, phase="portal venous", spacing_mm=0.7, thickness_mm=5.0,
                      lesions=lesions)
    painted = {(k, case.lesion_specs[i - 1].kind) for k in range(len(case.ct)) for i in np.unique(case.lesions[k]) if i}
    referred = {(s["slice"], s["facts"].lesion_type) for s in case_samples(case, np.random.default_rng(0))}
    assert referred < painted
    assert {k for k, kind in painted if kind == "cyst"} == {k for k, kind in referred if kind == "cyst"}
    assert {k for k, kind in painted - referred} and all(kind == "fnh" for _, kind in painted - referred)

"""Voxels without a value (NaN, +-inf) are air to the network, counted, and never labelled."""

import nibabel as nib
import numpy as np
import pytest

from lsms_core.preprocess import count_nonfinite, preprocess_slices, window_to_unit


def _ct(n=2, h=48, w=40, seed=0):
    rng = np.random.default_rng(seed)
    stack = 50.0 + rng.normal(0, 20, (n, h, w))
    stack[:, 15:25, 12:22] = -5.0
    return stack.astype(np.float32)


def test_window_takes_non_finite_voxels_as_the_floor():
    ct = _ct(1)[0]
    ct[3, 4], ct[5, 6], ct[7, 8] = np.nan, np.inf, -np.inf
    unit = window_to_unit(ct)
    assert np.isfinite(unit).all() and unit[3, 4] == unit[5, 6] == unit[7, 8] == 0.0
    x = preprocess_slices(ct, size=64)
    assert bool(x.isfinite().all())
    assert count_nonfinite(ct) == 3 and count_nonfinite(np.zeros(3, np.int16)) == 0


def test_one_nan_voxel_does_not_empty_the_slice(segmenter):
    ct = _ct()
    clean = ct.copy()
    clean[1, 30, 30] = -1000.0  # what the NaN stands for: air, below the window
    ct[1, 30, 30] = np.nan
    ref = segmenter.predict(clean, "the low-density lesion")
    got = segmenter.predict(ct, "the low-density lesion")
    assert np.isfinite(got.probs).all()
    assert got.probs[1, 30, 30] == 0.0 and not got.masks[1, 30, 30]
    keep = np.ones(ct.shape, bool)
    keep[1, 30, 30] = False
    np.testing.assert_allclose(got.probs[keep], ref.probs[keep], atol=1e-6)
    assert any("1 voxel(s)" in n and "NaN" in n for n in got.notes)
    assert not any("NaN" in n for n in ref.notes)


@pytest.mark.slow
def test_segment_cli_warns_with_the_count(tmp_path, random_checkpoint, capsys):
    from lsms_core.cli.main import main

    data = np.transpose(_ct(3), (2, 1, 0)).copy()
    data[5, 6, 1] = np.nan
    data[7, 8, 2] = np.inf
    nib.save(nib.Nifti1Image(data, np.diag([-0.8, -0.8, 2.0, 1.0])), str(tmp_path / "ct.nii.gz"))
    out = tmp_path / "m.nii.gz"
    assert main(["segment", str(tmp_path / "ct.nii.gz"), "-e", "the low-density lesion", "--out", str(out),
                 "--checkpoint", str(random_checkpoint), "--device", "cpu", "--threshold", "0.5",
                 "--all-regions"]) == 0
    err = capsys.readouterr().err
    assert "2 voxel(s) of the input are NaN or infinite" in err
    mask = np.asarray(nib.load(str(out)).dataobj)
    assert mask[5, 6, 1] == 0 and mask[7, 8, 2] == 0

"""README's main job: `lsms segment --demo` with the shipped demo weights on the shipped demo case."""

import json

import nibabel as nib
import numpy as np
import pytest

from lsms_core.cli.main import main
from lsms_core.resources import resources_dir
from lsms_core.volume import read_label_sidecar


@pytest.mark.slow
def test_demo_segments_the_referred_lesion_on_the_ct_grid(tmp_path, capsys):
    demo = resources_dir() / "demo"
    recipe = json.loads((demo / "demo.json").read_text())
    out = tmp_path / "demo-mask.nii.gz"
    assert main(["segment", "--demo", "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "Dice" in text and f"mask written to {out.resolve()}" in text
    from lsms_core.refiner import available

    if available():  # --refine auto: LiteMedSAM redraws the chosen lesion, and both figures are reported
        assert "stages: lsms + liver zoom + candidates + medsam-lite" in text
        assert "two-stage (LSMS + medsam-lite)" in text and "raw (LSMS alone)" in text

    ct, mask = nib.load(str(demo / recipe["ct"])), nib.load(str(out))
    assert mask.shape == ct.shape
    np.testing.assert_allclose(mask.affine, ct.affine, atol=1e-5)
    predicted = np.asanyarray(mask.dataobj) > 0
    reference = np.asanyarray(nib.load(str(demo / recipe["lesion_mask"])).dataobj) > 0
    dice = 2 * (predicted & reference).sum() / (predicted.sum() + reference.sum())
    # The demo weights are small and CPU-trained (see their model card); this guards against regressions.
    assert dice >= 0.5, dice
    label = read_label_sidecar(out)[0]
    assert label.expression == recipe["expression"] and label.extra["trained"] is True

    everything = tmp_path / "all.nii.gz"
    assert main(["segment", "--demo", "--out", str(everything), "--device", "cpu", "--all-regions"]) == 0
    assert (np.asanyarray(nib.load(str(everything)).dataobj) > 0).sum() >= predicted.sum()

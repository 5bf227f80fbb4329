"""The shared pipeline (network -> candidates -> resolution) with the shipped demo weights on the demo case."""

import json

import numpy as np
import pytest

from lsms_core.resources import resources_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo():
    from lsms_core.engine import Segmenter
    from lsms_core.volume import load_mask, load_volume

    folder = resources_dir() / "demo"
    recipe = json.loads((folder / "demo.json").read_text())
    vol = load_volume(folder / recipe["ct"])
    ref = load_mask(folder / recipe["lesion_mask"], vol) > 0
    seg = Segmenter.from_checkpoint("demo", device="cpu", threads=2)
    return seg, vol, ref, recipe["expression"]


def spacing(vol):
    return (float(vol.spacing[2]), float(vol.spacing[1]), float(vol.spacing[0]))


def test_words_choose_a_candidate_and_the_mask_is_that_candidate(demo):
    from lsms_core.referring.pipeline import refer

    seg, vol, ref, expression = demo
    steps = []
    referral = refer(seg, vol.array, expression, spacing(vol), progress=lambda d, t: steps.append((d, t)))
    res = referral.resolution
    assert referral.stages == ["lsms", "liver zoom", "candidates"]
    assert res.status in ("found", "ambiguous") and len(res.candidates) >= 2
    if seg.has_aux:  # candidates are the every-lesion map's regions: the chosen one is the mask
        assert referral.candidate_source and np.array_equal(referral.mask, res.chosen.full_mask)
    else:  # regions of the referring map at a lower threshold, cut back to what passes the threshold
        assert np.array_equal(referral.mask, res.chosen.full_mask & referral.prediction.masks)
    dice = 2 * (referral.mask & ref).sum() / (referral.mask.sum() + ref.sum())
    assert dice >= 0.5, dice
    assert steps[-1][0] == steps[-1][1]
    summary = referral.summary()
    assert summary["resolution"]["chosen"] == res.chosen.number
    assert {"long_axis_mm", "density", "net_score", "fact_score", "box"} <= set(summary["resolution"]["candidates"][0])


@pytest.mark.parametrize("words, reason", [("asdkjh qwpoeiru", "none of the words describe a lesion"),
                                           ("the cyst in the left kidney", "kidney"),
                                           ("the calcified lesion", "calcified")])
def test_words_that_name_nothing_here_return_nothing_with_the_reason(demo, words, reason):
    from lsms_core.referring.pipeline import refer

    seg, vol, _, _ = demo
    referral = refer(seg, vol.array[15:24], words, spacing(vol))
    if referral.resolution.status != "not found":
        # the calcified case needs no candidate to be calcified: the demo has none bright enough
        assert reason != "calcified" or any(c.facts.calcified for c in referral.resolution.candidates)
        pytest.fail(referral.resolution.note())
    assert not referral.mask.any() and reason in referral.resolution.reason


def test_all_regions_keeps_the_thresholded_map(demo):
    from lsms_core.referring.pipeline import refer

    seg, vol, _, expression = demo
    referral = refer(seg, vol.array[10:26], expression, spacing(vol), keep="all")
    assert referral.resolution is None and referral.status == "all regions"
    assert np.array_equal(referral.mask, referral.prediction.masks)


def test_lsms_segment_prints_the_candidates_and_writes_the_report(tmp_path, capsys):
    from lsms_core.cli.main import main

    report = tmp_path / "report.json"
    assert main(["segment", "--demo", "--out", str(tmp_path / "m.nii.gz"), "--device", "cpu", "--candidates",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "candidates (" in out and "decision: candidate #" in out
    data = json.loads(report.read_text())
    assert data["status"] in ("found", "ambiguous") and data["resolution"]["candidates"]
    assert main(["segment", "--demo", "--out", str(tmp_path / "m2.nii.gz"), "--json", str(report)]) == 2


def test_no_words_run_only_when_asked_and_take_the_networks_choice(demo):
    from lsms_core.errors import TextEncoderError
    from lsms_core.referring.pipeline import refer

    seg, vol, _, _ = demo
    with pytest.raises(TextEncoderError, match="empty"):
        refer(seg, vol.array[20], "  ", spacing(vol))
    referral = refer(seg, vol.array[20], "", spacing(vol), no_words_ok=True)  # the --text-fraction 0 ablation
    res = referral.resolution
    assert res.candidates and res.chosen is not None
    assert res.chosen.net_score == max(c.net_score for c in res.candidates)

"""The pipeline's second, closer look at the liver: where it looks, and how it merges into the first."""

import json

import numpy as np
import pytest

from lsms_core.referring.zoom import MAX_GAIN, MIN_GAIN, liver_boxes
from lsms_core.resources import resources_dir


def body_slice(size=256, radius=110):
    yy, xx = np.mgrid[:size, :size]
    return np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius ** 2, 40.0, -1000.0).astype(np.float32)


def test_the_box_frames_the_liver_and_keeps_the_gain_within_limits():
    from lsms_core.preprocess import body_box

    ct = body_slice()
    first_side = body_box(ct).side
    liver = np.zeros((4, 256, 256), np.float16)
    liver[0, 60:140, 40:150] = 0.9  # a liver section of 80 x 110 px
    liver[1, 120:126, 120:126] = 0.9  # 36 px: a tip of the organ, under MIN_LIVER_MM2
    liver[2, 20:236, 20:236] = 0.9  # as large as the body: nothing to gain
    liver[3, 100:115, 100:118] = 0.9  # small but measurable: the gain stops at MAX_GAIN
    boxes = liver_boxes(np.stack([ct] * 4), liver, (1.0, 1.0), "body")
    assert set(boxes) == {0, 3}
    r0, c0, side = boxes[0]
    assert r0 <= 60 and c0 <= 40 and r0 + side >= 140 and c0 + side >= 150
    assert MIN_GAIN <= first_side / side <= MAX_GAIN
    assert first_side / boxes[3][2] == pytest.approx(MAX_GAIN, rel=0.02)
    r0, c0, side = boxes[3]
    assert r0 <= 100 and c0 <= 100 and r0 + side >= 115 and c0 + side >= 118  # still centred on it


@pytest.mark.slow
def test_a_crop_box_the_same_as_the_checkpoints_crop_changes_nothing():
    from lsms_core.engine import Segmenter
    from lsms_core.errors import LSMSError
    from lsms_core.preprocess import crop_box
    from lsms_core.volume import load_volume

    folder = resources_dir() / "demo"
    recipe = json.loads((folder / "demo.json").read_text())
    slices = load_volume(folder / recipe["ct"]).array[14:16]
    seg = Segmenter.from_checkpoint("demo", device="cpu", threads=2)
    plain = seg.predict(slices, recipe["expression"])
    boxes = [crop_box(s, seg.config.crop) for s in slices]
    from lsms_core.progress import run_to_end

    boxed = run_to_end(seg.iter_predict(slices, recipe["expression"], crop_boxes=boxes), None)
    np.testing.assert_array_equal(plain.probs, boxed.probs)
    np.testing.assert_array_equal(plain.lesion_probs, boxed.lesion_probs)
    with pytest.raises(LSMSError, match="1 boxes for 2 slice"):
        run_to_end(seg.iter_predict(slices, recipe["expression"], crop_boxes=boxes[:1]), None)


@pytest.mark.slow
def test_the_second_look_only_adds_to_the_first(monkeypatch):
    from lsms_core.engine import Segmenter
    from lsms_core.referring.pipeline import refer
    from lsms_core.volume import load_volume

    folder = resources_dir() / "demo"
    recipe = json.loads((folder / "demo.json").read_text())
    vol = load_volume(folder / recipe["ct"])
    spacing = (float(vol.spacing[2]), float(vol.spacing[1]), float(vol.spacing[0]))
    seg = Segmenter.from_checkpoint("demo", device="cpu", threads=2)
    run = vol.array[12:20]
    one = refer(seg, run, recipe["expression"], spacing, zoom=False)
    steps = []
    two = refer(seg, run, recipe["expression"], spacing, progress=lambda d, t: steps.append((d, t)))
    assert one.stages == ["lsms", "candidates"] and two.stages == ["lsms", "liver zoom", "candidates"]
    a, b = one.prediction, two.prediction
    assert np.all(b.probs >= a.probs) and np.all(b.lesion_probs >= a.lesion_probs)
    assert np.array_equal(b.liver_probs, a.liver_probs)
    assert np.all(b.masks >= a.masks)
    assert (b.lesion_probs > a.lesion_probs).any()  # it looked, and saw something of its own
    assert [d for d, _ in steps] == sorted(d for d, _ in steps) and steps[-1][0] == steps[-1][1] == 2 * len(run)
    import lsms_core.referring.zoom as zoom

    # Merged chunk by chunk: the same maps as in one pass (one slice per batch on both sides, so that
    # batching cannot change a convolution's rounding).
    whole = refer(seg, run, recipe["expression"], spacing, batch_size=1).prediction
    monkeypatch.setattr(zoom, "CHUNK_SLICES", 3)
    chunked = refer(seg, run, recipe["expression"], spacing, batch_size=1).prediction
    np.testing.assert_array_equal(chunked.probs, whole.probs)
    np.testing.assert_array_equal(chunked.lesion_probs, whole.lesion_probs)
    np.testing.assert_array_equal(chunked.mask_bits, whole.mask_bits)


@pytest.mark.slow
def test_lsms_bench_refer_times_one_look_against_two(capsys):
    from lsms_core.cli.main import main

    assert main(["bench", "refer", "--slices", "2", "--repeats", "1", "--threads", "1", "--device", "cpu",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["slices"] == 2 and result["checkpoint"] == "lsms-e0-demo"
    assert result["zoom_off"]["stages"] == ["lsms", "candidates"]
    assert result["zoom_on"]["stages"] == ["lsms", "liver zoom", "candidates"]
    assert result["zoom_cost"] == pytest.approx(result["zoom_on"]["s_per_slice"] / result["zoom_off"]["s_per_slice"])


def test_regions_only_the_second_look_saw_are_left_out_and_the_rest_renumbered():
    from lsms_core.referring.candidates import slice_candidates
    from lsms_core.referring.zoom import FIRST_LOOK_SUPPORT, first_look_supported

    yy, xx = np.mgrid[:120, :120]
    ct = np.where(np.hypot(yy - 60, xx - 60) < 55, 100.0, -1000.0).astype(np.float32)
    lesion = np.zeros(ct.shape, np.float32)
    for r, c in ((30, 30), (60, 80), (90, 40)):  # three lesions, largest first
        disk = np.hypot(yy - r, xx - c) < 10 - (r - 30) / 20
        ct[disk] = 40.0
        lesion[disk] = 0.9
    cands, _ = slice_candidates(ct, lesion, lesion, (ct > 0).astype(np.float32), (1.0, 1.0))
    cands = [c.as_run() for c in cands]
    assert [c.number for c in cands] == [1, 2, 3]
    first = np.zeros(ct.shape, np.float32)
    first[np.hypot(yy - 30, xx - 30) < 3] = 0.2  # the first look saw a hint of the first lesion only...
    first[90, 40] = FIRST_LOOK_SUPPORT  # ... and, just, the third
    first[60, 60] = 0.9  # outside every candidate: no support to any
    support = np.packbits(first[None] >= FIRST_LOOK_SUPPORT, axis=-1)
    kept, dropped = first_look_supported(cands, support, ct.shape[1])
    assert dropped == 1 and len(kept) == 2
    assert [c.number for c in kept] == [1, 2] and kept[1].facts.centroid[0] == pytest.approx(90, abs=1)

"""Fresh synthetic training data: deterministic per (seed, epoch), groups that teach the words, real losses."""

import re

import numpy as np
import pytest
import torch

from lsms_core.preprocess import IMAGENET_MEAN, IMAGENET_STD
from lsms_core.training.synth_stream import SynthEpochs, contradicting_expression, nonsense


def stream(**kw):
    base = dict(cases=3, seed=5, size=128, slices=4, input_size=64, window=(400, 40), mean=IMAGENET_MEAN,
                std=IMAGENET_STD, crop="body", batch_size=8, unmatched_fraction=1.0, empty_text_fraction=1.0)
    base.update(kw)
    return SynthEpochs(**base)


def batches(s, epoch):
    s.set_epoch(epoch)
    return list(s)


def test_same_epoch_replays_and_new_epoch_draws_new_cases():
    s = stream()
    a, b = batches(s, 1), batches(s, 1)
    assert [x["texts"] for x in a] == [x["texts"] for x in b]
    assert all(torch.equal(x["x"], y["x"]) and torch.equal(x["target"], y["target"]) for x, y in zip(a, b, strict=True))
    c = batches(s, 2)
    assert [x["texts"] for x in a] != [x["texts"] for x in c]


def test_groups_hold_referred_unmatched_and_wordless_samples():
    out = batches(stream(cases=4), 1)
    kinds = [k for b in out for k in b["kinds"]]
    assert any(k.startswith("lesion") for k in kinds)
    assert any(k.startswith("unmatched") for k in kinds)
    for b in out:
        for i, kind in enumerate(b["kinds"]):
            target = b["target"][i]
            union = b["aux"][i, 1].bool()
            if kind.startswith("unmatched"):
                assert not target.any() and b["target_label"][i] == 0
            elif kind == "no-words":
                assert b["texts"][i] == "" and torch.equal(target.bool(), union)
            else:
                label = int(b["target_label"][i])
                assert label >= 1 and torch.equal(target.bool(), b["labels"][i] == label)
                assert (target.bool() & ~union).sum() == 0
                assert b["texts"][i]


def test_two_lesions_of_one_slice_come_in_one_batch():
    s = stream(cases=6, unmatched_fraction=0.0, empty_text_fraction=0.0, lesions_per_slice=2)
    pairs = 0
    for b in batches(s, 1):
        for i in range(len(b["texts"]) - 1):
            same_image = torch.equal(b["x"][i], b["x"][i + 1])
            if same_image and b["target_label"][i] != b["target_label"][i + 1]:
                pairs += 1
    assert pairs >= 1


def test_nonsense_and_contradictions_name_nothing_on_the_slice():
    from lsms_core.data.facts import LesionFacts

    rng = np.random.default_rng(0)
    assert all(nonsense(rng) for _ in range(20))
    hypo = LesionFacts("l1", 20.0, 15.0, 240.0, (30, 30), (24, 24), density="hypo", density_diff_hu=-40,
                       lobe="right", segment="VI")
    for seed in range(20):
        text = contradicting_expression([hypo], np.random.default_rng(seed))
        assert text
        said_other = (any(w in text for w in ("hyper", "high-density", "calcif"))
                      or not re.search(r"\b(VI|S6)\b", text))
        assert said_other, text


def test_per_lesion_contrast_prefers_the_referred_lesion():
    from lsms_core.model import LSMSConfig
    from lsms_core.model.loss import LSMSLoss

    cfg = LSMSConfig(variant="lsms-t", text_dim=8, decoder_channels=32)
    loss = LSMSLoss(cfg, lesion_contrast_weight=1.0)
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 2:6, 2:6] = 1
    labels[:, 10:14, 10:14] = 2
    feats = torch.zeros(2, 32, 4, 4)
    feats[:, 0, 0:2, 0:2] = 1.0  # lesion 1's features point one way,
    feats[:, 1, 2:4, 2:4] = 1.0  # lesion 2's another
    text = torch.zeros(2, 8, 3)
    text[:, 0] = 1.0
    tmask = torch.ones(2, 3, dtype=torch.long)
    with torch.no_grad():
        loss.contrastive.pixel_proj.weight.zero_()
        loss.contrastive.pixel_proj.bias.zero_()
        loss.contrastive.pixel_proj.weight[0, 0, 0, 0] = 1.0
        loss.contrastive.pixel_proj.weight[1, 1, 0, 0] = 1.0
        loss.contrastive.text_proj.weight.zero_()
        loss.contrastive.text_proj.bias.zero_()
        loss.contrastive.text_proj.weight[0, 0] = 1.0  # the sentence matches lesion 1's direction
    sim, present = loss.contrastive.lesion_logits(feats, text, tmask, labels, 2)
    assert present.all()
    assert (sim[:, 0] > sim[:, 1]).all()
    outputs = {"logits": torch.zeros(2, 2, 16, 16), "pixel_feats": feats}
    right = loss(outputs, (labels == 1).long(), text, tmask, labels=labels, target_label=torch.tensor([1, 1]))
    wrong = loss(outputs, (labels == 2).long(), text, tmask, labels=labels, target_label=torch.tensor([2, 2]))
    assert right["lesion_con"] < wrong["lesion_con"]


@pytest.mark.slow
def test_fresh_data_run_trains_validates_and_resumes(tmp_path):
    from lsms_core.checkpoint import read_config
    from lsms_core.training import TrainConfig, TrainingError, train

    kw = dict(out=str(tmp_path / "run"), synth=3, synth_val_cases=1, synth_size=96, synth_slices=3,
              input_size=64, crop="body", variant="lsms-e0", init_backbone="efficientnet-lite0",
              model={"aux_heads": 2, "drop_path": 0.0}, batch_size=8, lr=1e-3, threads=1, progress=False,
              token_length=32)
    first = train(TrainConfig(epochs=2, time_limit_min=1e-6, **kw), log=lambda m: None)
    assert first.stopped_early and [r["epoch"] for r in first.history] == [1]
    assert (tmp_path / "run" / "val_data" / "manifest.jsonl").is_file()
    with pytest.raises(TrainingError, match="synth_seed"):
        train(TrainConfig(epochs=2, **{**kw, "synth_seed": 7}), resume=True, log=lambda m: None)
    resumed = train(TrainConfig(epochs=2, keep_epochs=True, **kw), resume=True, log=lambda m: None)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    # --keep-epochs (set on the resumed run) kept its validated epoch beside the best
    assert sorted(p.name for p in (tmp_path / "run" / "epochs").iterdir()) == ["e002"]
    assert read_config(tmp_path / "run" / "epochs" / "e002").metrics["epoch"] == 2
    row = resumed.history[-1]
    assert {"val_mDice", "val_hit", "aux", "lesion_con"} <= set(row)
    cfg = read_config(resumed.best_checkpoint)
    assert cfg.crop == "body" and cfg.model["backbone"] == "efficientnet-lite0" and cfg.model["aux_heads"] == 2
    assert cfg.training_data["synthetic"] is True
    card = (resumed.best_checkpoint / "README.md").read_text()
    assert "synthetic only, drawn fresh every epoch from `lsms_core.data.synth`: 3 cases x 3 slices" in card
    assert "validation: 1 fixed generated cases" in card and "?" not in card
    # The every-lesion head makes validation score the pipeline (what the app runs), the network beside it.
    from lsms_core.data.format import read_dataset
    from lsms_core.engine import Segmenter
    from lsms_core.referring.scoring import evaluate_pipeline

    best_row = next(r for r in resumed.history if r["epoch"] == resumed.best["epoch"])
    assert {"val_net_mDice", "val_net_hit"} <= set(best_row)
    seg = Segmenter.from_checkpoint(resumed.best_checkpoint, device="cpu")
    pipe = evaluate_pipeline(seg, read_dataset(tmp_path / "run" / "val_data"), split="all")
    for key in ("mDice", "mIoU", "hit"):
        assert best_row[f"val_{key}"] == pytest.approx(pipe[key], abs=1e-6)


def test_every_lesion_weight_is_the_training_setting():
    from lsms_core.model import LSMSConfig
    from lsms_core.model.loss import LSMSLoss

    cfg = LSMSConfig(variant="lsms-t", text_dim=8, decoder_channels=32, aux_heads=2)
    aux = torch.zeros(1, 2, 16, 16)
    aux[:, 1, 4:8, 4:8] = 1.0
    outputs = {"logits": torch.zeros(1, 2, 16, 16), "pixel_feats": torch.zeros(1, 32, 4, 4),
               "aux_logits": torch.full((1, 2, 16, 16), -2.0)}
    args = (torch.zeros(1, 16, 16, dtype=torch.long), torch.zeros(1, 8, 3), torch.ones(1, 3, dtype=torch.long))
    low = LSMSLoss(cfg, aux_lesion_weight=1.0)(outputs, *args, aux=aux)["aux"]
    high = LSMSLoss(cfg, aux_lesion_weight=20.0)(outputs, *args, aux=aux)["aux"]
    assert high > low  # missed lesion pixels cost more with the larger weight


def test_patch_windows_cut_image_and_targets_alike_and_keep_lesions_in_view():
    whole = stream(cases=2, input_size=128, unmatched_fraction=0.0, empty_text_fraction=0.0)
    patched = stream(cases=2, input_size=128, unmatched_fraction=0.0, empty_text_fraction=0.0, patch=64)
    a, b = batches(whole, 1), batches(patched, 1)
    assert all(x["x"].shape[-2:] == (128, 128) for x in a)
    assert all(x["x"].shape[-2:] == (64, 64) and x["aux"].shape[-2:] == (64, 64) for x in b)
    assert all(x["target"].shape[-2:] == (64, 64) and x["labels"].shape[-2:] == (64, 64) for x in b)
    referred = [(x["target"][i], x["labels"][i], int(x["target_label"][i])) for x in b
                for i in range(len(x["texts"])) if x["target_label"][i] > 0]
    for target, labels, k in referred:  # a referred lesion's target is its own label, cut by the same window
        assert torch.equal(target.bool(), labels == k)
    # half the windows are centred on a lesion: most referred lesions stay in view
    assert np.mean([bool(t.any()) for t, _, _ in referred]) > 0.6
    assert all(torch.equal(x["aux"][:, 1].bool(), x["labels"] > 0) for x in b)
    assert sum(len(x["texts"]) for x in a) == sum(len(x["texts"]) for x in b)  # the same samples, cut


def test_per_lesion_contrast_skips_a_referred_lesion_outside_the_window():
    from lsms_core.model import LSMSConfig
    from lsms_core.model.loss import LSMSLoss

    cfg = LSMSConfig(variant="lsms-t", text_dim=8, decoder_channels=32)
    loss = LSMSLoss(cfg, lesion_contrast_weight=1.0)
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 2:6, 2:6] = 1
    labels[:, 10:14, 10:14] = 2  # lesion 3 of the slice was cut off by the training window
    outputs = {"logits": torch.zeros(2, 2, 16, 16), "pixel_feats": torch.randn(2, 32, 4, 4)}
    text, tmask = torch.randn(2, 8, 3), torch.ones(2, 3, dtype=torch.long)
    target = (labels == 1).long()
    target[1] = 0
    out = loss(outputs, target, text, tmask, labels=labels, target_label=torch.tensor([1, 3]))
    only_first = loss({k: v[:1] for k, v in outputs.items()}, target[:1], text[:1],
                      tmask[:1], labels=labels[:1], target_label=torch.tensor([1]))
    assert torch.isfinite(out["lesion_con"]) and out["lesion_con"] == pytest.approx(float(only_first["lesion_con"]))


def test_batches_per_epoch_estimate_is_close_to_what_an_epoch_yields():
    # the learning-rate schedule is planned from the estimate: far off, the rate reaches 0 too early
    s = stream(cases=6, slices=6, size=160, input_size=64, unmatched_fraction=0.25, empty_text_fraction=0.05)
    actual = len(batches(s, 1))
    assert abs(s.approx_batches() - actual) <= 0.3 * actual, (s.approx_batches(), actual)


def test_varied_appearance_changes_the_look_not_the_samples_or_the_contrasts():
    from lsms_core.data.demo import demo_case
    from lsms_core.training.synth_stream import vary_appearance

    plain, varied = batches(stream(), 1), batches(stream(appearance=1.0), 1)
    assert [x["texts"] for x in plain] == [x["texts"] for x in varied]
    assert all(torch.equal(x["target"], y["target"]) for x, y in zip(plain, varied, strict=True))
    assert not any(torch.equal(x["x"], y["x"]) for x, y in zip(plain, varied, strict=True))
    assert [x["texts"] for x in varied] == [x["texts"] for x in batches(stream(appearance=1.0), 1)]

    case = demo_case()  # a hypodense metastasis in portal-venous liver
    k = int(np.argmax((case.lesions == 1).reshape(len(case.lesions), -1).sum(1)))
    lesion, liver = case.lesions[k] == 1, case.liver[k] & (case.lesions[k] == 0)
    assert lesion.sum() > 20 and liver.sum() > 200
    before = float(case.ct[k][liver].mean() - case.ct[k][lesion].mean())
    rng = np.random.default_rng(0)
    for _ in range(20):
        hu = vary_appearance(case.ct[k], rng)
        assert hu.shape == case.ct[k].shape and np.isfinite(hu).all()
        after = float(hu[liver].mean() - hu[lesion].mean())
        assert 0.8 * before < after < 1.2 * before  # the metastasis stays about as much darker than its liver

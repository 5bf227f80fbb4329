"""A real (tiny) training run: the loss goes down, resume replays exactly, evaluation agrees with the engine."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors.torch import load_file

from lsms_core.checkpoint import load_checkpoint, read_config
from lsms_core.cli.main import main
from lsms_core.data.format import read_dataset
from lsms_core.engine import Segmenter
from lsms_core.evaluate import evaluate
from lsms_core.metrics import score_pair, summarize
from lsms_core.training import TrainConfig, TrainingError, train

pytestmark = pytest.mark.slow

EPOCHS = 3


def config(data, out, **kw):
    base = dict(data=str(data), out=str(out), input_size=64, epochs=EPOCHS, batch_size=8, lr=1e-3,
                token_length=16, threads=1, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def reference_run(tiny_data, text_encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ref"
    return train(config(tiny_data, out), text_encoder=text_encoder, log=lambda m: None)


def test_loss_goes_down_and_run_folder_is_complete(reference_run):
    hist = reference_run.history
    assert [r["epoch"] for r in hist] == [1, 2, 3]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["seg"] < hist[0]["seg"]
    # poly decay: learning rate falls every epoch
    assert hist[0]["lr"] > hist[1]["lr"] > hist[2]["lr"]
    run = reference_run.run_dir
    for name in ("train_config.json", "log.csv", "log.jsonl", "curves.png", "text_cache.safetensors"):
        assert (run / name).is_file(), name
    assert (run / "log.csv").read_text().count("\n") == 1 + EPOCHS
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((run / "train_config.json").read_text())
    assert saved["lr"] == 1e-3 and saved["weight_decay"] == 0.01 and saved["poly_power"] == 0.9


def test_best_checkpoint_is_a_trained_engine_checkpoint(reference_run, tiny_data, text_encoder):
    folder = reference_run.best_checkpoint
    cfg = read_config(folder)
    assert cfg.trained is True
    assert cfg.input_size == 64 and cfg.token_length == 16
    assert cfg.training_data["splits"]["train"]["lines"] == 16
    assert cfg.metrics["validation"]["samples"] == 8  # 4 val lines x 2 expressions
    assert cfg.metrics["epoch"] == reference_run.best["epoch"]
    assert cfg.metrics["validation"]["mDice"] == pytest.approx(reference_run.best["mDice"])
    card = (folder / "README.md").read_text()
    assert "Not for clinical use" in card and "tiny" in card
    model, _, _ = load_checkpoint(folder)
    seg = Segmenter(model, cfg, folder, text_encoder, "cpu")
    image = np.load(tiny_data / "images" / "case000" / "000.npy")
    pred = seg.predict(image[:50, :60], "the dark hypodense lesion on the left")
    assert pred.masks.shape == (50, 60) and pred.probs.dtype == np.float16  # float16 since the engine keeps a run's probabilities compact


def test_resume_replays_the_uninterrupted_run(reference_run, tiny_data, text_encoder, tmp_path):
    out = tmp_path / "resumed"

    class Stop(Exception):
        pass

    def interrupt(row):
        if row["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        train(config(tiny_data, out), text_encoder=text_encoder, log=lambda m: None, on_epoch_end=interrupt)
    with pytest.raises(TrainingError, match="--resume"):
        train(config(tiny_data, out), text_encoder=text_encoder, log=lambda m: None)
    with pytest.raises(TrainingError, match="batch_size"):
        train(config(tiny_data, out, batch_size=4), resume=True, text_encoder=text_encoder, log=lambda m: None)
    resumed = train(config(tiny_data, out), resume=True, text_encoder=text_encoder, log=lambda m: None)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(reference_run.history, resumed.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
    ref = load_file(str(reference_run.best_checkpoint / "model.safetensors"))
    got = load_file(str(resumed.best_checkpoint / "model.safetensors"))
    assert reference_run.best == resumed.best
    for key in ref:
        np.testing.assert_allclose(got[key].numpy(), ref[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)


def test_evaluate_matches_the_engine_scored_by_hand(reference_run, tiny_data, text_encoder, tmp_path):
    folder = reference_run.best_checkpoint
    model, cfg, _ = load_checkpoint(folder)
    dataset = read_dataset(tiny_data)
    result = evaluate(model, cfg, dataset, text_encoder, split="test", overlays=tmp_path / "worst", worst=3)
    seg = Segmenter(model, cfg, folder, text_encoder, "cpu")
    scores = []
    for sample in dataset.split("test"):
        image, mask, _ = dataset.load_pair(sample)
        for expression in sample.expressions:
            scores.append(score_pair(seg.predict(image, expression).masks, mask))
    expected = summarize(scores)
    for key in ("samples", "mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.9"):
        assert result[key] == pytest.approx(expected[key], abs=1e-9), key
    assert result["groups"]["lesions_on_slice"]["2+"]["samples"] == expected["samples"]
    assert set(result["model_resolution"]) >= {"mDice", "mIoU", "oIoU", "prec@0.5"}
    pngs = sorted((tmp_path / "worst").glob("*.png"))
    assert len(pngs) == 3 and pngs[0].name.startswith("001_")
    no_words = evaluate(model, cfg, dataset, text_encoder, split="test", text_fraction=0.0)
    assert no_words["samples"] == expected["samples"] and no_words["text_fraction"] == 0.0


def test_two_cpu_processes_under_torchrun_agree(reference_run, tiny_data, tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    # The frozen text cache of the same expressions spares the two processes a BERT load.
    shutil.copy(reference_run.run_dir / "text_cache.safetensors", out / "text_cache.safetensors")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lsms_core.cli.main", "train", "--data", str(tiny_data), "--out", str(out),
           "--epochs", "2", "--input-size", "64", "--batch-size", "4", "--token-length", "16",
           "--threads", "1", "--device", "cpu", "--lr", "0.001", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    # every rank holds the same weights after every epoch, and both ranks' samples were counted
    assert all(r["ranks_max_param_diff"] == 0.0 for r in rows)
    assert all(r["samples"] == 16 for r in rows)
    assert read_config(out / "best").trained
    assert "best checkpoint" in proc.stdout


def test_eval_command_writes_the_json_the_issue_names(reference_run, tiny_data, tmp_path, capsys):
    out = tmp_path / "eval.json"
    # --network-only: the paper's protocol, the figure training validates with (the default scores the
    # whole pipeline lsms segment runs, below)
    assert main(["eval", "--data", str(tiny_data), "--checkpoint", str(reference_run.best_checkpoint),
                 "--split", "val", "--device", "cpu", "--threads", "1", "--json", str(out), "--quiet",
                 "--network-only"]) == 0
    result = json.loads(out.read_text())
    for key in ("mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.6", "prec@0.7", "prec@0.8", "prec@0.9",
                "samples", "groups", "model_resolution"):
        assert key in result, key
    assert result["samples"] == 8 and result["trained"] is True
    assert result["mDice"] == pytest.approx(reference_run.best["mDice"])  # the same figure training chose by
    assert "lesions_on_slice=2+" in capsys.readouterr().out
    pipeline = tmp_path / "pipeline.json"
    assert main(["eval", "--data", str(tiny_data), "--checkpoint", str(reference_run.best_checkpoint),
                 "--split", "val", "--device", "cpu", "--threads", "1", "--json", str(pipeline), "--quiet"]) == 0
    result = json.loads(pipeline.read_text())
    assert result["pipeline"] is True and result["samples"] == 8
    for key in ("mDice", "hit", "raw", "resolver", "stages"):
        assert key in result, key
    assert "final masks" in capsys.readouterr().out

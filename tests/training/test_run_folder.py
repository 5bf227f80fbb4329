"""The run folder's rules: resume with the run's settings (or those that can change, applied and said),
one trainer at a time, a run that never finished an epoch starts again, a damaged log is named."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from lsms_core.training import TrainConfig, TrainingError, train
from lsms_core.training.run_folder import RunLock

pytestmark = pytest.mark.slow


def config(data, out, **kw):
    base = dict(data=str(data), out=str(out), input_size=64, epochs=2, batch_size=8, lr=1e-3, token_length=16,
                threads=1, progress=False, seed=3)
    base.update(kw)
    return TrainConfig(**base)


class Stop(Exception):
    pass


def stop_after_first(row):
    if row["epoch"] == 1:
        raise Stop


@pytest.fixture()
def stopped_run(tiny_data, text_encoder, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Stop):
        train(config(tiny_data, out), text_encoder=text_encoder, log=lambda m: None, on_epoch_end=stop_after_first)
    return out


def test_changed_settings_that_shape_the_run_are_refused_all_named(stopped_run, tiny_data, text_encoder):
    with pytest.raises(TrainingError) as err:
        train(config(tiny_data, stopped_run, lr=5e-4, weight_decay=0.1), resume=True, text_encoder=text_encoder,
              log=lambda m: None)
    assert "lr: 0.001 in the run, 0.0005 now" in str(err.value) and "weight_decay" in str(err.value)


def test_settings_that_can_change_are_applied_and_said(stopped_run, tiny_data, text_encoder):
    said = []
    result = train(config(tiny_data, stopped_run, threads=2, val_every=2), resume=True, text_encoder=text_encoder,
                   log=said.append)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert any("threads 1 -> 2" in m and "val_every 1 -> 2" in m for m in said)
    saved = json.loads((stopped_run / "train_config.json").read_text())
    assert saved["threads"] == 2 and saved["val_every"] == 2  # what the resumed epochs really used


def test_a_damaged_log_is_named_with_its_line(stopped_run, tiny_data, text_encoder):
    log = stopped_run / "log.jsonl"
    log.write_text(log.read_text() + "{not json\n")
    with pytest.raises(TrainingError, match=r"log.jsonl.*line 2"):
        train(config(tiny_data, stopped_run), resume=True, text_encoder=text_encoder, log=lambda m: None)


def test_a_run_stopped_before_its_first_epoch_ended_starts_again(tiny_data, text_encoder, tmp_path):
    out = tmp_path / "early"
    out.mkdir()
    (out / "train_config.json").write_text(json.dumps(config(tiny_data, out).to_dict()))
    (out / "log.jsonl").write_text("")
    said = []
    result = train(config(tiny_data, out, epochs=1), resume=True, text_encoder=text_encoder, log=said.append)
    assert [r["epoch"] for r in result.history] == [1]
    assert any("stopped before its first epoch ended" in m for m in said)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="notes.txt"):
        train(config(tiny_data, other), text_encoder=text_encoder, log=lambda m: None)


def test_a_live_trainers_lock_refuses_a_second_one_and_a_dead_ones_is_taken_over(stopped_run, tiny_data,
                                                                                text_encoder):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (stopped_run / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": sleeper.pid}))
        with pytest.raises(TrainingError, match=f"process {sleeper.pid}"):
            train(config(tiny_data, stopped_run), resume=True, text_encoder=text_encoder, log=lambda m: None)
    finally:
        sleeper.kill()
        sleeper.wait()
    result = train(config(tiny_data, stopped_run), resume=True, text_encoder=text_encoder, log=lambda m: None)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert not (stopped_run / ".lock").exists()


def test_the_lock_is_held_while_training_and_released_after(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()
    again = RunLock(tmp_path)
    with pytest.raises(TrainingError, match="being trained"):
        again.acquire()
    lock.release()
    again.acquire()
    again.release()
    assert not (tmp_path / ".lock").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)

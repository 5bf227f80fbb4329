"""`lsms train` / `lsms eval` / `lsms bench train` command lines."""

import json

import pytest

from lsms_core.cli.main import build_parser, main
from lsms_core.cli.train import resolve_config
from lsms_core.errors import ConfigError


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_config_file_then_flags_override_the_paper_defaults(tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"data": "d", "out": "o", "batch_size": 4, "lr": 1e-4,
                                    "model": {"fsd_stages": [1, 2, 3, 4]}}))
    cfg = resolve_config(parse("train", "--config", str(cfg_file), "--lr", "2e-4", "--window", "350", "50",
                               "--no-cache-images"))
    assert cfg.batch_size == 4 and cfg.lr == 2e-4 and cfg.window == [350.0, 50.0]
    assert cfg.model == {"fsd_stages": [1, 2, 3, 4]} and cfg.cache_images is False
    # untouched knobs keep the paper's recipe
    assert (cfg.epochs, cfg.input_size, cfg.weight_decay, cfg.poly_power) == (100, 480, 0.01, 0.9)
    cfg_file.write_text(json.dumps({"data": "d", "out": "o", "learning_rate": 1}))
    with pytest.raises(ConfigError, match="learning_rate"):
        resolve_config(parse("train", "--config", str(cfg_file)))
    with pytest.raises(ConfigError, match="--out, and --data or --synth"):
        resolve_config(parse("train", "--epochs", "3"))


def test_train_refuses_a_bad_dataset_with_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dataset.json is missing" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["lsms-t", "reclmis"])
def test_bench_train_json(capsys, variant):
    assert main(["bench", "train", "--device", "cpu", "--size", "64", "--cpu-batch", "2", "--steps", "1",
                 "--threads", "1", "--json", "--variant", variant]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"][0]["batch"] == 2 and out["samples_per_s"] > 0

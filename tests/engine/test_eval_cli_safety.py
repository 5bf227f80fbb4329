"""`lsms eval`: --json never replaces the dataset's or the checkpoint's files, nor anything else without
--overwrite; impossible --batch-size and --threshold values are refused (no NaN metrics with status 0)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsms_core.cli.main import main
from lsms_core.data.format import DatasetWriter, Sample


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    with DatasetWriter(root, name="t") as w:
        cid = w.new_case_id("case")
        image = rng.normal(40, 50, (32, 32)).astype(np.int16)
        mask = np.zeros((32, 32), bool)
        mask[10:16, 8:15] = True
        img, msk = w.write_image(cid, "000", image), w.write_mask(cid, "000_l1", mask)
        w.add(Sample(id=f"{cid}_s000_l1", case_id=cid, split="test", image=img, mask=msk,
                     expressions=["the lesion"], spacing=(0.8, 0.8)))
    return root


def test_json_never_replaces_a_file_of_the_dataset_or_the_checkpoint(dataset, random_checkpoint, capsys):
    before = {p: p.read_bytes() for p in dataset.rglob("*") if p.is_file()}
    targets = [dataset / "manifest.jsonl", dataset / "dataset.json", dataset / "images/case000/000.npy",
               random_checkpoint / "config.json"]
    for target in targets:
        assert main(["eval", "--data", str(dataset), "--checkpoint", str(random_checkpoint), "--json",
                     str(target), "--overwrite", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "refusing to overwrite" in err and target.name in err
    assert {p: p.read_bytes() for p in dataset.rglob("*") if p.is_file()} == before
    assert json.loads((random_checkpoint / "config.json").read_text())["format"] == "lsms-checkpoint"


def test_json_needs_overwrite_to_replace_a_file(dataset, random_checkpoint, tmp_path, capsys):
    keep = tmp_path / "notes.json"
    keep.write_text("mine")
    assert main(["eval", "--data", str(dataset), "--checkpoint", str(random_checkpoint), "--json", str(keep),
                 "--quiet"]) == 2
    assert "exists already; pass --overwrite" in capsys.readouterr().err and keep.read_text() == "mine"


@pytest.mark.slow
def test_json_with_overwrite_replaces_an_earlier_result(dataset, random_checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    out.write_text("{}")
    assert main(["eval", "--data", str(dataset), "--checkpoint", str(random_checkpoint), "--json", str(out),
                 "--overwrite", "--quiet", "--device", "cpu", "--threshold", "0.5"]) == 0
    assert json.loads(out.read_text())["samples"] == 1


@pytest.mark.parametrize(("flag", "value"), [("--batch-size", "0"), ("--batch-size", "-1"), ("--threshold", "nan"),
                                             ("--threshold", "5"), ("--threshold", "0"), ("--worst", "-2")])
def test_impossible_values_are_refused(dataset, random_checkpoint, flag, value, capsys):
    assert main(["eval", "--data", str(dataset), "--checkpoint", str(random_checkpoint), flag, value,
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}") and "internal" not in err


def test_evaluate_refuses_a_zero_or_negative_batch(random_checkpoint, dataset):
    from lsms_core.data.format import read_dataset
    from lsms_core.errors import LSMSError
    from lsms_core.evaluate import evaluate

    ds = read_dataset(dataset)
    for batch in (0, -1):
        with pytest.raises(LSMSError, match="batch size"):
            evaluate(None, None, ds, None, batch_size=batch)

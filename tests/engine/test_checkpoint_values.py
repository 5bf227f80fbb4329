"""Checkpoint values that would load and then give empty or garbage masks are refused, naming the file and
the field; malformed configs end as one error line (status 2), never as an internal error."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from lsms_core.checkpoint import create_random_checkpoint, load_checkpoint, read_config
from lsms_core.cli.main import main
from lsms_core.errors import CheckpointError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return create_random_checkpoint(tmp_path_factory.mktemp("values") / "ckpt", input_size=64, seed=2)


@pytest.fixture()
def ckpt(pristine, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(pristine, folder)
    return folder


def _edit(folder, change):
    path = folder / "config.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _set(key, value):
    def change(data):
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            target = target[part]
        if value is KeyError:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return change


BAD_VALUES = [
    ("threshold", float("nan"), "threshold"), ("threshold", 2, "threshold"), ("threshold", -1, "threshold"),
    ("threshold", "0.5", "threshold"), ("threshold", True, "threshold"),
    ("window", [float("nan"), 40], "window"), ("window", [0, 40], "window"), ("window", [400], "window"),
    ("normalization.std", [0.229, 0.0, 0.225], "normalization.std"),
    ("normalization.mean", KeyError, "normalization.mean"),
    ("variant", "lsms-zzz", "variant"), ("model.variant", "lsms-zzz", "variant"),
    ("model.widths", [0, 64, 160, 256], "model.widths"), ("model.decoder_channels", 0, "model.decoder_channels"),
    ("model.depths", "abc", "model.depths"), ("model.widths", [32.5, 64, 160, 256], "model.widths"),
    ("text_encoder", "abc", "text_encoder"), ("text_encoder.token_length", 0, "token_length"),
    ("version", "abc", "version"), ("input_size", 100, "input_size"), ("input_size", 0, "input_size"),
    ("trained", "yes", "trained"), ("dtype", "int8", "dtype"), ("metrics", [], "metrics"),
]


@pytest.mark.parametrize(("key", "value", "named"), BAD_VALUES, ids=[f"{k}={v!r}" for k, v, _ in BAD_VALUES])
def test_bad_config_values_are_refused_with_file_and_field(ckpt, key, value, named):
    _edit(ckpt, _set(key, value))
    with pytest.raises(CheckpointError) as info:
        read_config(ckpt)
    assert "config.json" in str(info.value) and named in str(info.value)


def test_malformed_config_files_are_one_error_line(ckpt):
    path = ckpt / "config.json"
    for text in ("[" * 100000, '{"a":' * 50000 + "1" + "}" * 50000):
        path.write_text(text)
        with pytest.raises(CheckpointError, match="nested too deeply"):
            read_config(ckpt)
    path.unlink()
    os.symlink("/dev/zero", path)  # would be read without end
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_config(ckpt)
    path.unlink()
    path.write_text(json.dumps({"format": "lsms-checkpoint", "model": {}, "pad": "x" * (2 << 20)}))
    with pytest.raises(CheckpointError, match="more than the 1 MiB"):
        read_config(ckpt)


def test_cli_refuses_a_bad_checkpoint_with_status_2(ckpt, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 2), np.int16), np.eye(4)), str(ct))
    _edit(ckpt, _set("model.widths", [0, 64, 160, 256]))
    assert main(["segment", str(ct), "-e", "the lesion", "--out", str(tmp_path / "m.nii.gz"),
                 "--checkpoint", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json" in err and "internal" not in err
    for bad in ("nan", "5", "0", "-1"):
        assert main(["segment", str(ct), "-e", "the lesion", "--out", str(tmp_path / "m.nii.gz"),
                     "--checkpoint", str(ckpt), "--threshold", bad]) == 2
        assert "--threshold" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.bool, torch.int32, torch.uint8, torch.float8_e4m3fn])
def test_weights_stored_in_a_non_float_type_are_refused(ckpt, dtype):
    state = load_file(str(ckpt / "model.safetensors"))
    name = next(k for k, v in sorted(state.items()) if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].to(dtype)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(CheckpointError, match=f"tensor {name} is stored as") as info:
        load_checkpoint(ckpt)
    assert "model.safetensors" in str(info.value)


def test_half_precision_weights_still_load(ckpt):
    state = load_file(str(ckpt / "model.safetensors"))
    save_file({k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in state.items()},
              str(ckpt / "model.safetensors"))
    model, _, _ = load_checkpoint(ckpt)
    assert all(p.dtype == torch.float32 for p in model.parameters())

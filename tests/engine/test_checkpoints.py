"""Checkpoint folders: round trip, model card, refusal of mismatched configs, of pickles, of overwrites."""

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from lsms_core.checkpoint import (
    create_random_checkpoint,
    load_checkpoint,
    read_config,
    resolve_checkpoint,
    save_checkpoint,
)
from lsms_core.errors import CheckpointError


def test_round_trip_keeps_every_tensor_and_the_config(tmp_path):
    folder = create_random_checkpoint(tmp_path / "a", input_size=96, seed=1)
    assert {p.name for p in folder.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    model, config, _ = load_checkpoint(folder)
    saved = load_file(str(folder / "model.safetensors"))
    assert set(saved) == set(model.state_dict())
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    assert config.input_size == 96 and config.variant == "lsms-t" and config.trained is False
    assert config.text_encoder["hidden_size"] == 384 and config.token_length == 32
    assert config.window == [400, 40] and set(config.normalization) == {"mean", "std"}
    card = (folder / "README.md").read_text()
    assert "not trained" in card.lower() or "random" in card.lower()
    # Saving what was loaded gives the same tensors again.
    save_checkpoint(tmp_path / "b", model, config)
    again = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(again[k], saved[k]) for k in saved)


def test_half_precision_checkpoints_load_as_float32(tmp_path):
    model, config, _ = load_checkpoint(create_random_checkpoint(tmp_path / "a", input_size=64))
    save_checkpoint(tmp_path / "half", model, config, dtype="float16")
    assert read_config(tmp_path / "half").dtype == "float16"
    half, _, _ = load_checkpoint(tmp_path / "half")
    p = dict(half.named_parameters())
    assert all(t.dtype == torch.float32 for t in p.values())
    name, ref = next(iter(model.named_parameters()))
    assert torch.allclose(p[name], ref, atol=1e-2)


def test_config_that_does_not_match_the_tensors_is_refused(tmp_path):
    folder = create_random_checkpoint(tmp_path / "a", input_size=64)
    data = json.loads((folder / "config.json").read_text())
    data["variant"] = data["model"]["variant"] = "lsms-w"
    data["model"]["widths"] = [64, 128, 320, 512]
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="do not match config.json") as info:
        load_checkpoint(folder)
    assert "model.safetensors" in str(info.value) and "wrong shape" in str(info.value)


def test_missing_tensor_is_named(tmp_path):
    folder = create_random_checkpoint(tmp_path / "a", input_size=64)
    state = load_file(str(folder / "model.safetensors"))
    dropped = sorted(state)[0]
    del state[dropped]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing") as info:
        load_checkpoint(folder)
    assert dropped in str(info.value)


def test_broken_config_json_names_the_file(tmp_path):
    folder = create_random_checkpoint(tmp_path / "a", input_size=64)
    (folder / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(folder)


class _Trap:
    """Unpickling this object would create a file: proof that nothing was unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_weights_are_never_unpickled(tmp_path):
    marker = tmp_path / "UNPICKLED"
    folder = tmp_path / "pickled"
    folder.mkdir()
    create_random_checkpoint(tmp_path / "ok", input_size=64)
    (folder / "config.json").write_text((tmp_path / "ok" / "config.json").read_text())
    (folder / "model.pt").write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(CheckpointError, match="never unpickles"):
        load_checkpoint(folder)
    # A pickle disguised under the safetensors name is rejected by the header check, not executed.
    (folder / "model.safetensors").write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_checkpoint(folder)
    assert not marker.exists()


def test_existing_folder_is_not_overwritten_by_default(tmp_path):
    folder = create_random_checkpoint(tmp_path / "a", input_size=64)
    before = (folder / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        create_random_checkpoint(folder, input_size=64, seed=9)
    assert (folder / "model.safetensors").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")


def test_a_file_inside_the_folder_points_at_the_folder(tmp_path):
    folder = create_random_checkpoint(tmp_path / "x", input_size=64)
    assert resolve_checkpoint(folder / "config.json") == folder
    assert resolve_checkpoint(folder / "model.safetensors") == folder


def test_saved_checkpoints_follow_the_umask_not_a_private_temp_folder(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        folder = create_random_checkpoint(tmp_path / "shared", input_size=64)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in folder.iterdir())

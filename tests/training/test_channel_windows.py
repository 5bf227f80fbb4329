"""One CT window per input channel: pre-processing, checkpoint config, the function-preserving start, and a
fine-tune from a one-window checkpoint that the engine then runs."""

import json

import numpy as np
import pytest
import torch

from lsms_core.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_channel_windows,
    preprocess_slices,
    window_to_unit,
)

WINDOWS = [[400.0, 40.0], [150.0, 90.0], [100.0, 60.0]]


def test_each_channel_sees_its_own_window():
    rng = np.random.default_rng(0)
    hu = rng.uniform(-200, 300, (2, 32, 32)).astype(np.float32)
    x = preprocess_slices(hu, window=WINDOWS, size=32).numpy()
    for c, w in enumerate(WINDOWS):
        expect = (window_to_unit(hu, w) - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(x[:, c], expect, atol=1e-5)
    # the narrow windows spread a 20 HU step over more of the unit range than the soft-tissue window does
    step = window_to_unit(np.array([90.0, 110.0]), WINDOWS[1])
    assert np.diff(step)[0] == pytest.approx(20 / 150) and 20 / 150 > 2.5 * (20 / 400)
    # three equal windows are the one-window input
    same = preprocess_slices(hu, window=[WINDOWS[0]] * 3, size=32)
    assert torch.equal(same, preprocess_slices(hu, window=WINDOWS[0], size=32))


def test_bad_window_lists_are_refused():
    with pytest.raises(ValueError, match="three"):
        as_channel_windows([[400, 40], [150, 90]])
    with pytest.raises(ValueError, match="8-bit"):
        preprocess_slices(np.zeros((8, 8), np.uint8), window=WINDOWS, size=8, windowed_uint8=True)


def test_checkpoint_config_names_a_bad_channel_window(tmp_path):
    from lsms_core.checkpoint import create_random_checkpoint, read_config
    from lsms_core.errors import CheckpointError

    folder = create_random_checkpoint(tmp_path / "ck", variant="lsms-t", input_size=64)
    assert read_config(folder).channel_windows == []  # checkpoints before the field read as one window
    path = folder / "config.json"
    data = json.loads(path.read_text())
    for bad, why in (([[400, 40], [150, 90]], "channel_windows"), ([[150, 90], [400, 40], [100, 60]], "first"),
                     ([[400, 40], [0, 90], [100, 60]], r"channel_windows\[1\]")):
        path.write_text(json.dumps({**data, "channel_windows": bad}))
        with pytest.raises(CheckpointError, match=why):
            read_config(folder)
    path.write_text(json.dumps({**data, "window": [400, 40], "channel_windows": WINDOWS}))
    assert read_config(folder).channel_windows == WINDOWS


@pytest.mark.parametrize("variant", ["lsms-t", "lsms-e0"])
def test_spread_start_computes_what_the_one_window_network_did(variant, tmp_path):
    from lsms_core.checkpoint import create_random_checkpoint, load_checkpoint
    from lsms_core.training.init_windows import first_input_conv, spread_to_channel_windows

    folder = create_random_checkpoint(tmp_path / variant, variant=variant, input_size=64)
    model, cfg, _ = load_checkpoint(folder)
    model.eval()
    conv_name, bn_name = first_input_conv(model)
    modules = dict(model.named_modules())
    # BatchNorm statistics of a random checkpoint are the identity: give it some, so the fold is tested
    bn = modules[bn_name]
    bn.running_mean.normal_(0, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    rng = np.random.default_rng(1)
    hu = rng.uniform(-150, 250, (1, 64, 64)).astype(np.float32)
    one = preprocess_slices(hu, window=WINDOWS[0], size=64)
    three = preprocess_slices(hu, window=WINDOWS, size=64)

    def first_block(x):
        with torch.no_grad():
            return modules[bn_name](modules[conv_name](x))

    before = first_block(one)
    model.load_state_dict(spread_to_channel_windows(model, state, IMAGENET_MEAN, IMAGENET_STD))
    after = first_block(three)
    k = modules[conv_name].kernel_size[0]
    inner = slice(k, -k)  # zero padding differs within the kernel's reach of the border (see the module)
    torch.testing.assert_close(after[..., inner, inner], before[..., inner, inner], atol=1e-4, rtol=1e-4)
    # channels 2 and 3 start silent: what they add is learnt
    assert not modules[conv_name].weight[:, 1:].any()


def test_fine_tune_with_channel_windows_exports_them_and_the_engine_uses_them(tmp_path):
    from lsms_core.checkpoint import create_random_checkpoint, read_config
    from lsms_core.engine import Segmenter
    from lsms_core.errors import ConfigError
    from lsms_core.training import TrainConfig, train

    start = create_random_checkpoint(tmp_path / "start", variant="lsms-t", input_size=64)
    flat = [v for w in WINDOWS for v in w]
    kw = dict(out=str(tmp_path / "run"), synth=2, synth_val_cases=1, synth_size=96, synth_slices=2, input_size=64,
              crop="body", variant="lsms-t", batch_size=8, lr=1e-4, threads=1, progress=False, token_length=32,
              init=str(start), epochs=1)
    result = train(TrainConfig(channel_windows=flat, **kw), log=lambda m: None)
    cfg = read_config(result.best_checkpoint)
    assert cfg.window == WINDOWS[0] and cfg.channel_windows == WINDOWS
    assert "per channel 400/40, 150/90, 100/60 HU" in (result.best_checkpoint / "README.md").read_text()
    seg = Segmenter.from_checkpoint(result.best_checkpoint, device="cpu")
    probs = seg.predict(np.full((1, 80, 80), 60, np.int16), "the hypodense lesion").probs
    assert probs.shape == (1, 80, 80) and np.isfinite(probs.astype(np.float32)).all()
    # a run whose first window is not --window, or that starts from other channel windows, is refused
    with pytest.raises(ConfigError, match="channel_windows"):
        TrainConfig(channel_windows=[150, 90, 400, 40, 100, 60], **{**kw, "out": str(tmp_path / "bad")}).validate()
    with pytest.raises(ConfigError, match="cannot start from it"):
        train(TrainConfig(**{**kw, "init": str(result.best_checkpoint), "out": str(tmp_path / "back")}), log=lambda m: None)

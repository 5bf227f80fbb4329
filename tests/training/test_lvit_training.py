"""LViT-format data (`lsms data import-lvit`: QaTa-COV19 / MosMedData+ layout, a CSV of Image, Description)
trains both networks: a few optimiser steps of LSMS (lsms-t) and of RecLMIS on an imported sample."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from lsms_core.checkpoint import load_checkpoint
from lsms_core.cli.main import main
from lsms_core.data.format import read_dataset
from lsms_core.training import TrainConfig, train

torch.set_num_threads(1)


def _lvit_folder(root, split: str, n: int, seed: int):
    """``{root}/img``, ``{root}/labelcol`` (``mask_X.png`` for ``X.png``) and ``{split}_text.csv``."""
    img_dir, msk_dir = root / "img", root / "labelcol"
    img_dir.mkdir(parents=True)
    msk_dir.mkdir()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    rows = [("Image", "Description")]
    for i in range(n):
        name = f"study_{seed:02d}{i:02d}_{i}.png"
        left = bool(i % 2)
        cx, cy, r = (18 if left else 46) + rng.uniform(-3, 3), 32 + rng.uniform(-8, 8), rng.uniform(6, 10)
        lesion = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image = rng.normal(90, 12, (64, 64))
        image[lesion] += 80
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(img_dir / name)
        Image.fromarray((lesion * 255).astype(np.uint8)).save(msk_dir / f"mask_{name}")
        side = "left" if left else "right"
        rows.append((name, f"Unilateral pulmonary infection, one infected area, {side} lung. EOF XXX"))
    text = root / f"{split}_text.csv"
    with open(text, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return img_dir, msk_dir, text


@pytest.fixture(scope="module")
def lvit_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lvit")
    out = tmp / "ds"
    for split, n, seed, extra in (("train", 6, 1, []), ("val", 2, 2, ["--append"])):
        img, msk, text = _lvit_folder(tmp / f"{split}_Folder", split, n, seed)
        assert main(["data", "import-lvit", "--images", str(img), "--masks", str(msk), "--text", str(text),
                     "--out", str(out), "--split", split, "--json", *extra]) == 0
    ds = read_dataset(out)
    assert len(ds.split("train")) == 6 and len(ds.split("val")) == 2
    return out


@pytest.mark.parametrize("variant", ["lsms-t", "reclmis", "reclmis-adapted"])
def test_imported_lvit_data_trains_each_network(variant, lvit_data, tmp_path, text_encoder):
    from lsms_core.model import LSMS
    from lsms_core.model.reclmis import RecLMIS

    cfg = TrainConfig(variant=variant, data=str(lvit_data), out=str(tmp_path / "run"), epochs=1, input_size=64,
                      batch_size=2, lr=1e-3, token_length=16, threads=1, progress=False, seed=0)
    result = train(cfg, text_encoder=text_encoder, log=lambda m: None)
    (row,) = result.history
    assert row["step"] == 3 and row["samples"] == 6  # three optimiser steps over the six train images
    assert np.isfinite(row["loss"]) and row["loss"] > 0 and 0.0 <= row["val_mDice"] <= 1.0
    # RecLMIS's reconstruction and contrast terms are logged beside the shared ones (a diverging term shows)
    recon = {"rec_text", "rec_vision", "ccl"}
    assert recon <= set(row) if variant.startswith("reclmis") else not recon & set(row)
    assert ("poi" in row) == (variant == "reclmis-adapted")
    model, config, _ = load_checkpoint(result.best_checkpoint)
    assert isinstance(model, RecLMIS if variant.startswith("reclmis") else LSMS)
    assert config.variant == variant and config.trained and model.cfg.text_dim == text_encoder.hidden_size

"""The PyTorch Dataset over the format: train draws one expression per line per epoch, eval scores all."""

import numpy as np
import pytest
import torch

from lsms_core.data.format import DatasetWriter, Sample
from lsms_core.data.torch_dataset import RefSegDataset


@pytest.fixture()
def root(tmp_path):
    root = tmp_path / "ds"
    with DatasetWriter(root) as w:
        for c in range(2):
            cid = w.new_case_id()
            img = np.full((20, 30), -1000, np.int16)
            img[5:15, 5:25] = 60
            m = np.zeros((20, 30), np.uint8)
            m[8:12, 10:14] = 1
            w.add(Sample(id=f"{cid}_a", case_id=cid, split="train" if c == 0 else "test",
                         image=w.write_image(cid, "000", img), mask=w.write_mask(cid, "000_l1", m),
                         expressions=["the lesion", "the small hypodense lesion", "it"], spacing=(0.7, 0.7),
                         extra={"expression_fractions": [1.0, 0.5, 0.25]}))
    return root


def test_train_mode_draws_one_expression_per_line_per_epoch(root):
    ds = RefSegDataset(root, "train", mode="train", seed=3)
    assert len(ds) == 1
    drawn = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        drawn.add(item["expression"])
        assert ds[0]["expression"] == item["expression"]  # deterministic per epoch
    assert len(drawn) > 1
    assert item["image"].shape == (1, 20, 30) and item["image"].dtype == torch.float32
    assert float(item["image"].max()) <= 1.0 and int(item["mask"].sum()) == 16


def test_eval_mode_gives_every_expression_with_its_fraction(root):
    ds = RefSegDataset(root, "test", mode="eval", size=64)
    items = [ds[i] for i in range(len(ds))]
    assert [it["expression"] for it in items] == ["the lesion", "the small hypodense lesion", "it"]
    assert [it["fraction"] for it in items] == [1.0, 0.5, 0.25]
    assert items[0]["image"].shape == (1, 64, 64) and set(items[0]["mask"].unique().tolist()) == {0, 1}
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 1, 64, 64)

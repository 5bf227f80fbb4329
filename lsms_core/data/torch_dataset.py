"""A PyTorch Dataset over the referring-segmentation format.

``mode="train"``: one item per manifest line, one of its expressions drawn per epoch (``set_epoch``),
deterministic for (seed, epoch, line). ``mode="eval"``: one item per (line, expression), so every
expression is scored. Items are dicts: ``image`` float32 (1, H, W) in [0, 1] (HU windowed, or an 8-bit
windowed PNG scaled), ``mask`` uint8 (H, W), ``expression``, ``expression_index``, ``fraction`` (from
``expression_fractions`` when the line has them, else None), ``id``, ``case_id``, ``spacing``.
``size`` resizes both (bilinear, antialiased when shrinking, for the image; area then >= 0.5 for the mask,
the same rule evaluation scores against); None keeps them native, so a DataLoader then needs batch_size=1
or equal-size slices. The trainer's set (``lsms_core.training.dataset.TrainSet``) is this class with a cache and the
network's normalisation on top.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

from lsms_core.data.format import RefDataset, read_dataset
from lsms_core.errors import DatasetError


class RefSegDataset:
    def __init__(self, data: RefDataset | str | os.PathLike, split: str | None = None, *, mode: str = "train",
                 size: int | None = None, window: tuple[float, float] = (400.0, 40.0), seed: int = 0,
                 samples: list | None = None):
        """``samples`` (lines of ``data``) replaces the split's lines, e.g. one rank's share."""
        import torch.utils.data  # noqa: F401  (fail here, not in a worker, when torch is missing)

        if mode not in ("train", "eval"):
            raise DatasetError("mode", f"must be 'train' or 'eval', got {mode!r}")
        self.data = data if isinstance(data, RefDataset) else read_dataset(data)
        if samples is not None:
            self.samples = list(samples)
        else:
            self.samples = self.data.split(split) if split else list(self.data.samples)
        if not self.samples:
            raise DatasetError(self.data.root, f"has no samples{' in split ' + split if split else ''}")
        self.mode, self.size, self.window, self.seed = mode, size, tuple(window), seed
        self.epoch = 0
        self._pairs = [(i, j) for i, s in enumerate(self.samples) for j in range(len(s.expressions))]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples) if self.mode == "train" else len(self._pairs)

    def expression_index(self, i: int) -> int:
        n = len(self.samples[i].expressions)
        return zlib.crc32(f"{self.seed},{self.epoch},{i}".encode()) % n

    def load_unit(self, i: int):
        """Line ``i`` as (image (1, H, W) float32 in [0, 1], mask (H, W) uint8) at ``size``."""
        import torch
        import torch.nn.functional as F

        from lsms_core.evaluate import target_at
        from lsms_core.preprocess import window_to_unit

        image, mask, windowed = self.data.load_pair(self.samples[i])
        unit = image.astype(np.float32) / 255.0 if windowed else window_to_unit(image, self.window)
        x = torch.from_numpy(np.ascontiguousarray(unit))[None]
        if self.size is None:
            return x, torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))
        if tuple(x.shape[-2:]) != (self.size, self.size):
            shrink = x.shape[-2] > self.size or x.shape[-1] > self.size
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=shrink)[0]
        return x, torch.from_numpy(target_at(mask, self.size).astype(np.uint8))

    def __getitem__(self, idx: int) -> dict:
        if self.mode == "train":
            i, j = idx, self.expression_index(idx)
        else:
            i, j = self._pairs[idx]
        s = self.samples[i]
        x, m = self.load_unit(i)
        fr = s.extra.get("expression_fractions")
        fraction = float(fr[j]) if isinstance(fr, list) and len(fr) == len(s.expressions) else None
        return {"image": x, "mask": m, "expression": s.expressions[j], "expression_index": j,
                "fraction": fraction, "id": s.id, "case_id": s.case_id, "spacing": tuple(s.spacing)}

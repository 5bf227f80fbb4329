"""A dataset folder's split as training samples, through the same pre-processing as the engine.

One sample per manifest line per epoch (one of its expressions drawn for (seed, epoch, line)); images go
through ``lsms_core.preprocess.prepare_slices`` with the run's crop, masks through ``crop_target``, so
training, evaluation and inference see a slice the same way. The other lesions of the same slice (lines
sharing the image) are the per-lesion contrast's negatives.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from lsms_core.data.torch_dataset import RefSegDataset
from lsms_core.preprocess import window_arg


class TrainSet(RefSegDataset):
    def __init__(self, dataset, samples, input_size: int, window, mean, std, seed: int, crop: str = "none",
                 cache: bool = True):
        super().__init__(dataset, mode="train", size=input_size, window=window_arg(window),
                         seed=seed, samples=samples)
        self.mean, self.std, self.crop, self.cache = mean, std, crop, cache
        self._cache: dict[int, tuple] = {}
        by_image: dict[str, list[int]] = defaultdict(list)
        for s in dataset.samples:
            by_image[s.image].append(s)
        self._siblings = {i: [o for o in by_image[s.image] if o.id != s.id] for i, s in enumerate(self.samples)}

    def _load(self, i: int):
        """(input (3, S, S) float16, target (S, S) uint8, lesion labels (S, S) uint8); float16 halves the cache."""
        import torch

        from lsms_core.preprocess import crop_target, prepare_slices

        if i in self._cache:
            return self._cache[i]
        image, mask, windowed = self.data.load_pair(self.samples[i])
        x, boxes = prepare_slices(image, window=self.window, size=self.size, mean=self.mean, std=self.std,
                                  crop=self.crop, windowed_uint8=windowed)
        target = crop_target(mask, boxes[0], self.size)
        labels = target.astype(np.uint8)
        for k, other in enumerate(self._siblings[i][:254], start=2):
            try:
                _, other_mask, _ = self.data.load_pair(other)
            except Exception:  # a sibling that cannot be read only loses its negative, never the sample
                continue
            if other_mask.shape == mask.shape:
                labels[crop_target(other_mask, boxes[0], self.size) & (labels == 0)] = k
        item = (x[0].to(torch.float16), target.astype(np.uint8), labels)
        if self.cache:
            self._cache[i] = item
        return item

    def __getitem__(self, i: int):
        x, target, labels = self._load(i)
        return {"x": x.float(), "target": target, "labels": labels, "index": i,
                "expression": self.samples[i].expressions[self.expression_index(i)]}


def collate_lines(items: list[dict]) -> dict:
    """TrainSet items -> the batch dict the loop takes (the same keys as the synthetic stream's)."""
    import torch

    n = len(items)
    return {
        "x": torch.stack([it["x"] for it in items]),
        "target": torch.from_numpy(np.stack([it["target"] for it in items])).long(),
        "aux": None,
        "aux_valid": torch.zeros(n, dtype=torch.bool),
        "labels": torch.from_numpy(np.stack([it["labels"] for it in items])),
        "target_label": torch.ones(n, dtype=torch.long),
        "texts": [it["expression"] for it in items],
        "kinds": ["lesion"] * n,
    }

"""What the network sees: CT in HU -> window -> [0, 1] -> 3 channels -> mean/std -> model input size.

The window and normalisation come from the checkpoint's config; the viewer's display window never
changes what the model sees. Voxels without a value (NaN, +-inf: a float NIfTI's masked-out or broken
voxels) are taken as the window's floor, i.e. as air: a single NaN would otherwise spread through the
resize and the convolutions and blank the whole slice. ``count_nonfinite`` lets callers say how many.
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_WINDOW = (400.0, 40.0)  # (width, level) in HU: the abdominal soft-tissue window


def count_nonfinite(slices: np.ndarray) -> int:
    """How many voxels are NaN or infinite (always 0 for integer images)."""
    arr = np.asarray(slices)
    if arr.dtype.kind not in "fc":
        return 0
    flat = arr.reshape(-1)
    step = 1 << 22  # blocks, so a large float volume never needs a full-size boolean temporary
    return int(sum(int(flat[i: i + step].size - np.count_nonzero(np.isfinite(flat[i: i + step])))
                   for i in range(0, flat.size, step)))


def nonfinite_note(count: int) -> str:
    """The one wording of the warning for ``count`` non-finite voxels (engine notes, CLI, viewer)."""
    return (f"{count} voxel(s) of the input are NaN or infinite: treated as air (the window's floor) and "
            "never labelled")


def window_to_unit(slices: np.ndarray, window: tuple[float, float] = DEFAULT_WINDOW) -> np.ndarray:
    """Clip HU to the window and scale it to [0, 1] (float32); NaN and +-inf become 0 (the floor)."""
    width, level = float(window[0]), float(window[1])
    low = level - width / 2.0
    arr = np.asarray(slices)
    out = (arr.astype(np.float32) - low) / width
    if arr.dtype.kind in "fc":
        # Before the clip: np.clip keeps NaN, and +inf would become the window's ceiling (bright tissue).
        out[~np.isfinite(out)] = 0.0
    return np.clip(out, 0.0, 1.0, out=out)


def preprocess_slices(slices, window=DEFAULT_WINDOW, size: int = 480, mean=IMAGENET_MEAN,
                      std=IMAGENET_STD, windowed_uint8: bool = False, device="cpu"):
    """(N, H, W) or (H, W) slices -> float32 tensor (N, 3, size, size) ready for the network.

    ``windowed_uint8`` marks 8-bit images that are already windowed (LViT-style PNG data): they are
    scaled by 1/255 instead of being windowed again.
    """
    import torch
    import torch.nn.functional as F

    arr = np.asarray(slices)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected (H, W) or (N, H, W) slices, got shape {arr.shape}")
    unit = arr.astype(np.float32) / 255.0 if windowed_uint8 else window_to_unit(arr, window)
    x = torch.from_numpy(np.ascontiguousarray(unit)).to(device)[:, None]
    if x.shape[-2:] != (size, size):
        shrinking = x.shape[-2] > size or x.shape[-1] > size
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean_t) / std_t

"""What the network sees: CT in HU -> window -> [0, 1] -> 3 channels -> mean/std -> model input size.

One window copied to the three channels (the paper's), or one window per channel (``channel_windows`` of
a checkpoint: e.g. the soft-tissue window beside a narrow liver window, so a lesion 20 HU from the liver
is 2.7 times the step in the second channel that it is in the first). The window and normalisation come
from the checkpoint's config; the viewer's display window never
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


def as_channel_windows(window) -> tuple[tuple[float, float], ...]:
    """``window`` as one (width, level) per input channel: a single [width, level] serves all three;
    three pairs are one per channel. Anything else is a ValueError."""
    values = list(window)
    if len(values) == 2 and all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        pair = (float(values[0]), float(values[1]))
        return (pair, pair, pair)
    if len(values) == 3 and all(len(list(v)) == 2 for v in values):
        return tuple((float(v[0]), float(v[1])) for v in values)
    raise ValueError(f"window: expected [width, level] or three [width, level] pairs, got {window!r}")


def window_arg(window) -> tuple:
    """``window`` in a hashable canonical form: (width, level), or three of them when they differ."""
    windows = as_channel_windows(window)
    return windows[0] if len(set(windows)) == 1 else windows


def preprocess_slices(slices, window=DEFAULT_WINDOW, size: int = 480, mean=IMAGENET_MEAN,
                      std=IMAGENET_STD, windowed_uint8: bool = False, device="cpu"):
    """(N, H, W) or (H, W) slices -> float32 tensor (N, 3, size, size) ready for the network.

    ``window``: [width, level], or three of them (one per channel; see ``as_channel_windows``).
    ``windowed_uint8`` marks 8-bit images that are already windowed (LViT-style PNG data): they are
    scaled by 1/255 instead of being windowed again (and cannot be given other windows).
    """
    import torch
    import torch.nn.functional as F

    arr = np.asarray(slices)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected (H, W) or (N, H, W) slices, got shape {arr.shape}")
    windows = as_channel_windows(window)
    per_channel = len(set(windows)) > 1
    if per_channel and windowed_uint8:
        raise ValueError("8-bit images that are already windowed cannot be given one window per channel: "
                         "the network needs CT in HU")
    if per_channel:
        unit = np.stack([window_to_unit(arr, w) for w in windows], axis=1)
        x = torch.from_numpy(unit).to(device)
    else:
        unit = arr.astype(np.float32) / 255.0 if windowed_uint8 else window_to_unit(arr, windows[0])
        x = torch.from_numpy(np.ascontiguousarray(unit)).to(device)[:, None]
    if x.shape[-2:] != (size, size):
        shrinking = x.shape[-2] > size or x.shape[-1] > size
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x if per_channel else x.expand(-1, 3, -1, -1)) - mean_t) / std_t


# ------------------------------------------------------------------------------------------ field of view
#: what the network sees of a slice: "none" = the whole slice (the paper's), "body" = a square around
#: the patient's body (ours): on a 512 matrix with a 400-500 mm field of view, the body's box resized to
#: 256 pixels gives about 1.3 mm pixels, so a 10 mm lesion spans two cells of the stride-4 output instead
#: of one at 160 px over the whole field.
CROPS = ("none", "body")
BODY_HU = -500.0  # soft tissue, fat and bone are above it; air, the lungs and the table's foam below
BODY_MARGIN = 0.04  # of the box's side on each side: the skin line stays inside the crop
AIR_HU = -1000.0


class CropBox(tuple):
    """A square (row0, col0, side) in slice pixels; it may reach beyond the slice (padded with air)."""

    def __new__(cls, row0: int, col0: int, side: int):
        return super().__new__(cls, (int(row0), int(col0), int(side)))

    @property
    def row0(self) -> int:
        return self[0]

    @property
    def col0(self) -> int:
        return self[1]

    @property
    def side(self) -> int:
        return self[2]


def body_box(slice_hu: np.ndarray) -> CropBox:
    """The square around the body on one axial slice: the largest connected region above -500 HU.

    The largest region is the body; the table, its mattress and the tubes of the scanner are separate
    regions (air lies between), so they never widen the box. Found on a 4x smaller mask (a few ms on a
    512 slice); a slice with no body (all air) gets the whole slice.
    """
    from scipy import ndimage

    arr = np.asarray(slice_hu)
    h, w = arr.shape
    step = 4 if min(h, w) >= 128 else 1
    small = arr[::step, ::step] > BODY_HU
    lab, n = ndimage.label(small)
    if n == 0:
        return CropBox(0, 0, max(h, w)) if h == w else _square(0, 0, h, w, h, w)
    sizes = np.bincount(lab.ravel())[1:]
    rows, cols = np.nonzero(lab == int(np.argmax(sizes)) + 1)
    r0, r1 = rows.min() * step, min(h, (rows.max() + 1) * step)
    c0, c1 = cols.min() * step, min(w, (cols.max() + 1) * step)
    return _square(r0, c0, r1, c1, h, w)


def _square(r0: int, c0: int, r1: int, c1: int, h: int, w: int) -> CropBox:
    side = max(r1 - r0, c1 - c0)
    side = max(8, int(round(side * (1.0 + 2 * BODY_MARGIN))))
    rc, cc = 0.5 * (r0 + r1), 0.5 * (c0 + c1)
    return CropBox(int(round(rc - side / 2)), int(round(cc - side / 2)), side)


def crop_box(slice_hu: np.ndarray, crop: str) -> CropBox:
    if crop == "body":
        return body_box(slice_hu)
    if crop == "none":
        h, w = np.asarray(slice_hu).shape
        return CropBox(0, 0, 0) if h != w else CropBox(0, 0, h)
    raise ValueError(f"unknown crop {crop!r}; choose one of {', '.join(CROPS)}")


def cut(slice_2d: np.ndarray, box: CropBox, fill: float) -> np.ndarray:
    """The box's square of ``slice_2d`` (padded with ``fill`` where it reaches beyond the slice)."""
    h, w = slice_2d.shape
    if box.side == 0:  # "none" on a non-square slice: the slice as it is
        return slice_2d
    if box.row0 == 0 and box.col0 == 0 and box.side == h == w:
        return slice_2d
    out = np.full((box.side, box.side), fill, dtype=slice_2d.dtype)
    r0, c0 = max(0, box.row0), max(0, box.col0)
    r1, c1 = min(h, box.row0 + box.side), min(w, box.col0 + box.side)
    if r1 > r0 and c1 > c0:
        out[r0 - box.row0: r1 - box.row0, c0 - box.col0: c1 - box.col0] = slice_2d[r0:r1, c0:c1]
    return out


def prepare_slices(slices, *, window, size: int, mean, std, crop: str = "none", windowed_uint8: bool = False,
                   device="cpu", boxes: list[CropBox] | None = None):
    """(N, H, W) HU slices -> (network input (N, 3, size, size), the crop box of each slice).

    The one pre-processing path of training, evaluation and the engine: crop (per the checkpoint), window,
    [0, 1], resize, 3 channels, mean/std. ``boxes`` (one per slice) replace the checkpoint's crop: the
    engine's second, closer look at the liver (``lsms_core.referring.zoom``).
    """
    arr = np.asarray(slices)
    if arr.ndim == 2:
        arr = arr[None]
    if boxes is not None:
        if len(boxes) != len(arr):
            raise ValueError(f"{len(boxes)} crop boxes for {len(arr)} slices")
        boxes = [CropBox(*b) for b in boxes]
    elif crop == "none":
        return (preprocess_slices(arr, window, size, mean, std, windowed_uint8=windowed_uint8, device=device),
                [crop_box(a, "none") for a in arr])
    else:
        boxes = [crop_box(a, crop) for a in arr]
    fill = 0 if windowed_uint8 else AIR_HU
    xs = [preprocess_slices(cut(a, b, fill), window, size, mean, std, windowed_uint8=windowed_uint8,
                            device=device) for a, b in zip(arr, boxes, strict=True)]
    import torch

    return torch.cat(xs), boxes


def crop_target(mask: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """A native mask as the network's target: cut like the image, area-resized, then >= 0.5."""
    import torch
    import torch.nn.functional as F

    m = torch.from_numpy(np.ascontiguousarray(cut(np.asarray(mask, dtype=np.float32), box, 0.0)))[None, None]
    if m.shape[-2:] != (size, size):
        m = F.interpolate(m, size=(size, size), mode="area")
    return (m[0, 0] >= 0.5).numpy()


def paste_logits(logits, boxes: list[CropBox], native_shape: tuple[int, int], outside: float = -30.0):
    """(N, C, s, s) logits at the network's size -> (N, C, H, W) on the slices' own grid.

    Logits (not thresholded masks) are resized, so edges stay smooth; pixels outside a crop (beyond the
    body) get ``outside``, a logit no threshold passes.
    """
    import torch.nn.functional as F

    h, w = native_shape
    if all(b.side == 0 or (b.row0 == 0 and b.col0 == 0 and b.side == h == w) for b in boxes):
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    out = logits.new_full((logits.shape[0], logits.shape[1], h, w), outside)
    for i, b in enumerate(boxes):
        up = F.interpolate(logits[i: i + 1], size=(b.side, b.side), mode="bilinear", align_corners=False)
        r0, c0 = max(0, b.row0), max(0, b.col0)
        r1, c1 = min(h, b.row0 + b.side), min(w, b.col0 + b.side)
        if r1 > r0 and c1 > c0:
            out[i, :, r0:r1, c0:c1] = up[0, :, r0 - b.row0: r1 - b.row0, c0 - b.col0: c1 - b.col0]
    return out

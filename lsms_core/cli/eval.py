"""``lsms eval --data DIR [--checkpoint demo] [--split test] [--text-fraction F] [--json OUT]``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lsms_core.errors import LSMSError

FIGURES = ("mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.6", "prec@0.7", "prec@0.8", "prec@0.9")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="measure a checkpoint on a dataset split (mDice, mIoU, oIoU, Prec@X)",
                            description="Scores every (line, expression) of a split the way the paper does, "
                                        "at native and model resolution, overall and per attribute group.")
    parser.add_argument("--data", required=True, help="dataset folder (RefHL-Seg format v1)")
    parser.add_argument("--checkpoint", default="demo", help="checkpoint folder, or demo (default)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                        help="default: test; all = every line (a held-out dataset never trained on)")
    parser.add_argument("--text-fraction", type=float, default=None,
                        help="partial-text protocol: 1.0, 0.5, 0.25 (the paper's), 0 = no words; default: "
                             "every expression as written")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the full result as JSON here")
    parser.add_argument("--overlays", metavar="DIR", help="write overlay PNGs of the worst cases here")
    parser.add_argument("--worst", type=int, default=16, help="number of overlay PNGs (default 16)")
    parser.add_argument("--threshold", type=float, help="probability threshold (default: the checkpoint's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--threads", type=int, help="CPU threads")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def format_table(result: dict) -> list[str]:
    def row(label: str, m: dict) -> str:
        return f"{label:<28}{m['samples']:>8d}" + "".join(f"{m[k]:>10.4f}" for k in FIGURES)

    head = f"{'':<28}{'samples':>8}" + "".join(f"{k:>10}" for k in FIGURES)
    fraction = "as written" if result["text_fraction"] is None else result["text_fraction"]
    lines = [f"split {result['split']}, text fraction {fraction}, threshold "
             f"{result['threshold']}; empty prediction on empty truth scores {result['empty_pair_score']}",
             head, row("native resolution", result), row("model resolution", result["model_resolution"])]
    for group, values in result["groups"].items():
        for value, m in values.items():
            lines.append(row(f"  {group}={value}", m))
    return lines


def run(args) -> int:
    import sys

    from lsms_core.data.format import read_dataset
    from lsms_core.engine import Segmenter
    from lsms_core.evaluate import evaluate

    if args.text_fraction is not None and not 0.0 <= args.text_fraction <= 1.0:
        raise LSMSError("--text-fraction", f"must be between 0 and 1, got {args.text_fraction}")
    dataset = read_dataset(args.data)
    seg = Segmenter.from_checkpoint(args.checkpoint, device=args.device, threads=args.threads)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="sample", file=sys.stderr, leave=False, mininterval=1.0)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    result = evaluate(seg.model, seg.config, dataset, seg.text_encoder, split=args.split,
                      text_fraction=args.text_fraction, threshold=args.threshold, batch_size=args.batch_size,
                      device=seg.device, overlays=args.overlays, worst=args.worst, progress=progress)
    if bar is not None:
        bar.close()
    result.update({"checkpoint": str(seg.folder), "trained": seg.trained, "data": str(dataset.root)})
    if not seg.trained:
        print("note: this checkpoint is marked untrained (random weights)", file=sys.stderr)
    print("\n".join(format_table(result)))
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    return 0

"""``lsms eval --data DIR [--checkpoint demo] [--split test] [--text-fraction F] [--json OUT]``.

By default the whole pipeline ``lsms segment`` runs is scored (candidates, resolution, refinement when
available: see ``lsms_core.referring.scoring``); ``--network-only`` scores the network's own thresholded map
the paper's way (also at model resolution). ``--data`` also takes a 3D-IRCADb patient folder
(PATIENT_DICOM/ + MASKS_DICOM.zip): its tumour slices with plain expressions.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lsms_core.errors import LSMSError

FIGURES = ("mDice", "mIoU", "oIoU", "prec@0.5", "prec@0.7", "prec@0.9", "hit")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("eval", help="measure a checkpoint on a dataset split (mDice, mIoU, oIoU, Prec@X)",
                            description="Scores every (line, expression) of a split the way the paper does, "
                                        "at native and model resolution, overall and per attribute group.")
    parser.add_argument("--data", required=True, help="dataset folder (RefHL-Seg format v1), or a 3D-IRCADb "
                                                      "patient folder (its tumour slices, plain expressions)")
    parser.add_argument("--checkpoint", default="demo", help="checkpoint folder, or demo (default)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test", "all"),
                        help="default: test; all = every line (a held-out dataset never trained on)")
    parser.add_argument("--text-fraction", type=float, default=None,
                        help="partial-text protocol: 1.0, 0.5, 0.25 (the paper's), 0 = no words; default: "
                             "every expression as written")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the full result as JSON here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --json OUT if it exists (never a file of the dataset or the checkpoint)")
    parser.add_argument("--overlays", metavar="DIR", help="write overlay PNGs of the worst cases here")
    parser.add_argument("--worst", type=int, default=16, help="number of overlay PNGs (default 16)")
    parser.add_argument("--threshold", type=float, help="probability threshold (default: the checkpoint's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--threads", type=int, help="CPU threads")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--network-only", action="store_true",
                        help="score the network's thresholded map alone (the paper's protocol), not the pipeline")
    parser.add_argument("--nonsense", type=int, default=0, metavar="N",
                        help="also try N nonsense expressions per slice with lesions and report how often the "
                             "answer is an empty mask with a note")
    from lsms_core.cli.refine_option import add_refine_flag, add_zoom_flag

    add_refine_flag(parser)
    add_zoom_flag(parser)
    parser.set_defaults(func=run)


def format_table(result: dict) -> list[str]:
    def row(label: str, m: dict) -> str:
        return f"{label:<28}{m['samples']:>8d}" + "".join(f"{m.get(k, float('nan')):>10.4f}" for k in FIGURES)

    head = f"{'':<28}{'samples':>8}" + "".join(f"{k:>10}" for k in FIGURES)
    fraction = "as written" if result["text_fraction"] is None else result["text_fraction"]
    if result.get("pipeline"):
        lines = [f"split {result['split']}, text fraction {fraction}, stages {' + '.join(result['stages'])}; "
                 f"empty prediction on empty truth scores {result['empty_pair_score']}",
                 head, row("final masks", result), row("before refinement (raw)", result["raw"])]
    else:
        lines = [f"split {result['split']}, text fraction {fraction}, threshold "
                 f"{result['threshold']}; empty prediction on empty truth scores {result['empty_pair_score']}",
                 head, row("native resolution", result), row("model resolution", result["model_resolution"])]
    for group, values in result["groups"].items():
        for value, m in values.items():
            lines.append(row(f"  {group}={value}", m))
    if result.get("resolver"):
        r = result["resolver"]
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        rules = ", ".join(f"{k} {v:.4f}" for k, v in r["hit"].items())
        lines.append(f"resolver: {outcomes}; hit by rule: {rules}")
    if result.get("nonsense"):
        n = result["nonsense"]
        lines.append(f"nonsense words: {n['empty_with_note']} of {n['tried']} returned nothing with a note "
                     f"({n['rate']:.3f})")
    return lines


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _protected_files(dataset, checkpoint_folder: Path) -> list[Path]:
    """What --json must never replace: the dataset's own files and the checkpoint's."""
    files = [dataset.root / "dataset.json", dataset.root / "manifest.jsonl"]
    for s in dataset.samples:
        files += [dataset.image_path(s), dataset.mask_path(s)]
    if checkpoint_folder.is_dir():
        files += [p for p in checkpoint_folder.iterdir() if p.is_file()]
    return files


def check_json_target(out: Path, dataset, checkpoint_folder: Path, overwrite: bool) -> None:
    """Refuse --json OUT before the evaluation runs: a file of the inputs always, an existing file
    without --overwrite, a folder or a missing parent never."""
    for protected in _protected_files(dataset, checkpoint_folder):
        if _same_file(out, protected):
            raise LSMSError(out, f"is a file of the {'dataset' if dataset.root in protected.parents else 'checkpoint'}"
                                 "; refusing to overwrite it (choose another --json path)")
    if out.is_dir():
        raise LSMSError(out, "is a folder, not a file name")
    if out.exists() and not overwrite:
        raise LSMSError(out, "exists already; pass --overwrite to replace it (or choose another --json path)")


def run(args) -> int:
    import sys

    from lsms_core.checkpoint import resolve_checkpoint
    from lsms_core.checks import check_threshold
    from lsms_core.cli.main import UsageError
    from lsms_core.data.format import read_dataset
    from lsms_core.engine import Segmenter
    from lsms_core.evaluate import evaluate

    if args.text_fraction is not None and not 0.0 <= args.text_fraction <= 1.0:
        raise LSMSError("--text-fraction", f"must be between 0 and 1, got {args.text_fraction}")
    if args.batch_size < 1:
        raise UsageError("--batch-size", f"must be at least 1, got {args.batch_size}")
    if args.worst < 0:
        raise UsageError("--worst", f"must be 0 or more, got {args.worst}")
    if args.threshold is not None:
        check_threshold(args.threshold, "--threshold", UsageError)
    data = Path(args.data)
    if (data / "PATIENT_DICOM").is_dir() and (data / "MASKS_DICOM.zip").is_file():
        from lsms_core.data.ircad import lesion_dataset, read_ircad

        dataset = lesion_dataset(read_ircad(data)).dataset
        split = "test"
    else:
        dataset = read_dataset(args.data)
        split = args.split
    if args.json_out:
        check_json_target(Path(args.json_out), dataset, resolve_checkpoint(args.checkpoint), args.overwrite)
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

    from lsms_core.referring.scoring import is_windowed

    windowed = is_windowed(dataset)
    if args.network_only or windowed:
        if windowed and not args.network_only:
            print("note: the images are windowed 8-bit PNGs (no HU): scoring the network alone", file=sys.stderr)
        result = evaluate(seg.model, seg.config, dataset, seg.text_encoder, split=split,
                          text_fraction=args.text_fraction, threshold=args.threshold, batch_size=args.batch_size,
                          device=seg.device, overlays=args.overlays, worst=args.worst, progress=progress)
    else:
        from lsms_core.cli.refine_option import load_refiner
        from lsms_core.referring.scoring import evaluate_pipeline

        refiner = load_refiner(args, seg.device, args.threads)
        result = evaluate_pipeline(seg, dataset, split=split, text_fraction=args.text_fraction,
                                   threshold=args.threshold, nonsense=args.nonsense, progress=progress,
                                   refiner=refiner, zoom=args.zoom == "on")
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

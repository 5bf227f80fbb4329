"""``lsms segment``: headless referring segmentation of one lesion in a CT volume.

``lsms segment --demo`` runs the shipped demo case (resources/demo/demo.json) with the demo weights;
``lsms segment CT --expression "..." --out mask.nii.gz`` runs any CT the loader reads; ``--refine`` lets
LiteMedSAM redraw the chosen lesion from its box (two-stage referring). ``lsms segment CT --box X0,Y0,X1,Y1
--slice K`` draws the structure in a box on one axial slice, without words. The mask is written
on the input's own grid (it overlays the CT in any viewer) with a label sidecar that records the
expression; the input is never overwritten, an existing output only with ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEMO_DEFAULT_OUT = "lsms-demo-mask.nii.gz"
LESION_COLOR = (230, 25, 75)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "segment", help="segment the lesion an expression refers to, in a CT volume (or --demo)",
        description="Segment the one lesion described by --expression in INPUT (DICOM folder/file, NIfTI, "
                    "NRRD, MHA) and write the mask on INPUT's grid.")
    parser.add_argument("input", nargs="?", help="CT: DICOM folder or file, .nii/.nii.gz, .nrrd, .mha/.mhd")
    parser.add_argument("--demo", action="store_true",
                        help="segment the shipped demo case with the demo weights (resources/demo)")
    parser.add_argument("--expression", "-e", help='the referring expression, e.g. "the low-density nodule '
                                                   'in the right lobe"')
    parser.add_argument("--out", "-o", help="mask file (.nii.gz, .nii, .nrrd, .mha); default "
                                            f"./<input>-lsms-mask.nii.gz (--demo: ./{DEMO_DEFAULT_OUT})")
    parser.add_argument("--checkpoint", default="demo", help="checkpoint folder, or 'demo' (default)")
    parser.add_argument("--device", default="auto", help="auto (default: CUDA, then MPS, then CPU), cpu, cuda")
    parser.add_argument("--slices", metavar="START:STOP",
                        help="axial slices to process (Python slice of the loaded, inferior-to-superior "
                             "stack; default all)")
    parser.add_argument("--threshold", type=float, help="probability threshold (default: the checkpoint's)")
    parser.add_argument("--batch", type=int, help="slices per batch (default: 16 on CUDA; on the CPU 1 at 480 px, more for small inputs)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--all-regions", action="store_true",
                        help="keep every region above the threshold (default: the one lesion the words refer "
                        "to, chosen among the candidates the network sees)")
    parser.add_argument("--candidates", action="store_true",
                        help="print every candidate lesion with its facts and scores, and which one the words "
                        "chose (and why)")
    parser.add_argument("--json", metavar="FILE", help="write a JSON report (candidates, resolution, stages, "
                        "timings); '-' for standard output")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                        help="auto (default): float32 on the CPU, bf16/fp16 autocast on CUDA; bfloat16 is "
                        "faster on CPUs with AVX512-BF16")
    parser.add_argument("--series", metavar="UID", help="the series to use when a DICOM folder holds several")
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists (never the input)")
    parser.add_argument("--box", metavar="X0,Y0,X1,Y1",
                        help="segment what this box holds on slice --slice with LiteMedSAM, no words: X is the "
                             "column and Y the row of the loaded volume (array[K, Y, X]), corners inclusive")
    parser.add_argument("--slice", type=int, metavar="K",
                        help="with --box: the axial slice (index into the loaded stack, as --slices counts)")
    from lsms_core.cli.refine_option import add_refine_flag, add_zoom_flag

    add_refine_flag(parser)
    add_zoom_flag(parser)
    from lsms_core.cli.seg_output import add_format_flag

    add_format_flag(parser)
    parser.set_defaults(func=run)


def parse_slices(text: str | None, count: int) -> tuple[int, int]:
    """'a:b' (Python slice semantics, negatives allowed, either end optional) -> (start, stop)."""
    from lsms_core.cli.main import UsageError

    if not text:
        return 0, count
    if ":" not in text:
        try:
            k = int(text)
        except ValueError:
            raise UsageError("--slices", f"expected START:STOP, got {text!r}") from None
        text = f"{k}:{k + 1 if k != -1 else ''}"
    start_s, _, stop_s = text.partition(":")
    try:
        start = int(start_s) if start_s.strip() else None
        stop = int(stop_s) if stop_s.strip() else None
    except ValueError:
        raise UsageError("--slices", f"expected integers START:STOP, got {text!r}") from None
    start, stop, _ = slice(start, stop).indices(count)
    if stop <= start:
        raise UsageError("--slices", f"{text!r} selects no slice of the {count}-slice volume")
    return start, stop


def _demo_case(args) -> tuple[Path, str, Path | None]:
    """(CT path, expression, reference mask or None) of the demo case, or a clear error."""
    from lsms_core.data.demo import DemoNotInstalled, read_demo_recipe
    from lsms_core.errors import LSMSError
    from lsms_core.resources import resources_dir

    try:
        recipe = read_demo_recipe(resources_dir() / "demo")
    except DemoNotInstalled as exc:
        raise LSMSError(exc.what, f"{exc.why}; run on your own CT: lsms segment CT --expression ...") from exc
    return recipe.ct, args.expression or recipe.expression, recipe.lesion_mask


def _require_demo_weights() -> None:
    from lsms_core.checkpoint import CONFIG, DEMO_NAME, WEIGHTS
    from lsms_core.errors import CheckpointError
    from lsms_core.resources import models_dir

    for name in (WEIGHTS, CONFIG):
        path = models_dir() / DEMO_NAME / name
        if not path.is_file():
            raise CheckpointError(path, "the demo weights are not installed in this copy (missing file); "
                                        "pass --checkpoint DIR")


def _default_out(src: Path) -> Path:
    name = src.name
    for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm"):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return Path.cwd() / f"{name or 'ct'}-lsms-mask.nii.gz"


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="slice", file=sys.stderr, dynamic_ncols=True,
                disable=None, leave=False)


def _summary(mask, vol, start: int, stop: int) -> list[str]:
    import numpy as np

    from lsms_core.measure import array_spacing, measure_3d

    n = int(mask.sum())
    if n == 0:
        return ["no lesion found above the threshold in slices "
                f"{start}..{stop - 1}"]
    m = measure_3d(mask, array_spacing(vol.spacing), hu=vol.array)
    volume_ml = n * vol.voxel_volume_ml  # |det| of the affine: exact for tilted grids too
    # per axis from the mask's projections: np.argwhere would hold three int64 indices per voxel
    centre = np.array([float(np.dot(np.arange(mask.shape[ax]), mask.sum(axis=tuple(a for a in range(3) if a != ax))))
                       / n for ax in range(3)])[::-1]  # (i, j, k)
    x, y, z = vol.index_to_world(centre)
    lines = [
        f"lesion: {n} voxels, {volume_ml:.2f} mL, slices {m.first_slice}..{m.last_slice} "
        f"({m.n_slices} with findings), longest axis {m.long_axis_mm:.1f} mm on slice {m.largest_slice}",
        f"        mean {m.hu_mean:.0f} HU (sd {m.hu_std:.0f}); centre at LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm",
    ]
    return lines


def parse_box(text: str) -> tuple[int, int, int, int]:
    """'X0,Y0,X1,Y1' -> four ints with X0 <= X1 and Y0 <= Y1 (inside the image is checked once loaded)."""
    from lsms_core.cli.main import UsageError

    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        x0, y0, x1, y1 = (int(p) for p in parts)
    except ValueError:
        raise UsageError("--box", f"expected four integers X0,Y0,X1,Y1 (e.g. --box 120,200,180,260), got "
                                  f"{text!r}") from None
    if x0 > x1 or y0 > y1:
        raise UsageError("--box", f"{text!r}: need X0 <= X1 and Y0 <= Y1 (top-left corner first)")
    return x0, y0, x1, y1


def _check_box_args(args) -> tuple[int, int, int, int] | None:
    from lsms_core.cli.main import UsageError

    if args.box is None:
        if args.slice is not None:
            raise UsageError("--slice", "only goes with --box (use --slices START:STOP to limit a run)")
        return None
    if args.demo:
        raise UsageError("--box", "does not go with --demo; give the CT: lsms segment CT --box ... --slice K")
    if args.expression:
        raise UsageError("--box", "give either --box (no words) or --expression, not both")
    if args.slice is None:
        raise UsageError("--box", "needs --slice K, the axial slice the box is drawn on")
    if args.refine == "off":
        raise UsageError("--box", "draws with LiteMedSAM; it cannot run with --refine off")
    for name in ("slices", "all_regions", "candidates", "threshold"):
        if getattr(args, name):
            raise UsageError("--box", f"does not go with --{name.replace('_', '-')}")
    if getattr(args, "format", None) not in (None, "auto"):
        raise UsageError("--box", f"writes the mask format --out names; --format {args.format} is not supported "
                                  "with --box")
    return parse_box(args.box)


def run_box(args, box: tuple[int, int, int, int]) -> int:
    """``--box X0,Y0,X1,Y1 --slice K``: LiteMedSAM on one slice, the mask written on the input's grid."""
    import numpy as np

    from lsms_core.cli.main import UsageError
    from lsms_core.refiner import Refiner
    from lsms_core.refiner.boxes import check_box
    from lsms_core.volume import LabelInfo, check_target, load_volume, save_mask, sidecar_path

    src = Path(args.input)
    out = Path(args.out) if args.out else _default_out(src)
    started = time.perf_counter()
    vol = load_volume(src, series_uid=args.series)
    for message in vol.warnings:
        print(f"warning: {message}", file=sys.stderr)
    depth, rows, cols = vol.shape
    k = args.slice
    if not 0 <= k < depth:
        raise UsageError("--slice", f"{k} is outside the volume's {depth} axial slices (0..{depth - 1})")
    try:
        box = check_box(box, (rows, cols), "--box")
    except ValueError as exc:
        raise UsageError("--box", str(exc).split(": ", 1)[1]) from None
    check_target(out, vol, overwrite=args.overwrite, sidecar=True)
    refiner = Refiner.load(args.refiner, device=args.device, threads=args.threads)
    drawn = refiner.segment_box(vol.array[k], box)
    mask = np.zeros(vol.shape, dtype=np.uint8)
    mask[k] = drawn
    words = f"box {box[0]},{box[1]},{box[2]},{box[3]} on slice {k}"
    label = LabelInfo(1, "lesion", LESION_COLOR, words,
                      {"prompt": "box", "box": list(box), "slice": k, "stages": [refiner.name],
                       "refiner": refiner.name})
    written = save_mask(mask, vol, out, labels=[label], overwrite=args.overwrite)
    seconds = time.perf_counter() - started
    n = int(drawn.sum())
    print(f"input: {src}  ({cols}x{rows}x{depth} voxels)")
    print(f"{words}: {n} pixels ({n * vol.voxel_volume_ml:.2f} mL) drawn by {refiner.name} on {refiner.device}")
    print(f"time: {seconds:.1f} s")
    print(f"mask written to {written.resolve()} (label sidecar {sidecar_path(written).name})")
    if args.json:
        report = {"prompt": "box", "box": list(box), "slice": k, "stages": [refiner.name], "voxels": n,
                  "input": str(src), "output": str(written.resolve()), "device": refiner.device,
                  "seconds_total": round(seconds, 3)}
        _write_json(args.json, report, args.overwrite)
    return 0


# Long by design: the command's steps in the order the user meets them, every refusal before the slow part.
def run(args) -> int:
    import numpy as np

    from lsms_core.cli.main import UsageError
    from lsms_core.volume import LabelInfo, check_target, load_mask, load_volume, save_mask, sidecar_path

    box = _check_box_args(args)
    if box is not None:
        if not args.input:
            raise UsageError("lsms segment", "INPUT is required with --box")
        return run_box(args, box)
    reference = None
    if args.demo:
        if args.input:
            raise UsageError("lsms segment", "give either INPUT or --demo, not both")
        src, expression, reference = _demo_case(args)
        if args.checkpoint == "demo":
            _require_demo_weights()
        out = Path(args.out) if args.out else Path.cwd() / DEMO_DEFAULT_OUT
    else:
        if not args.input:
            raise UsageError("lsms segment", "INPUT is required (or --demo)")
        if not args.expression or not args.expression.strip():
            raise UsageError("--expression", "is required: which lesion should be segmented?")
        src, expression = Path(args.input), args.expression
        out = Path(args.out) if args.out else _default_out(src)
    from lsms_core.cli import seg_output

    as_seg, out = seg_output.wants_seg(args, out, bool(args.out))
    if args.batch is not None and args.batch < 1:
        raise UsageError("--batch", "must be at least 1")
    if args.threshold is not None:
        from lsms_core.checks import check_threshold

        check_threshold(args.threshold, "--threshold", UsageError)

    started = time.perf_counter()
    bar = _progress_bar(1000, "loading")
    try:
        vol = load_volume(src, series_uid=args.series,
                          progress=lambda done, total: bar.update(done - bar.n))
    finally:
        bar.close()
    for message in vol.warnings:
        print(f"warning: {message}", file=sys.stderr)
    # Refuse a bad output (a file of the input, a read-only folder, a sidecar that is not ours, an existing
    # output without --overwrite; a DICOM SEG for an input that is not a DICOM series) before the expensive part.
    if as_seg:
        seg_output.check(out, vol, args.overwrite)
    else:
        check_target(out, vol, overwrite=args.overwrite, sidecar=True)
    start, stop = parse_slices(args.slices, vol.shape[0])

    from lsms_core.engine import Segmenter

    seg = Segmenter.from_checkpoint(args.checkpoint, device=args.device, threads=args.threads,
                                    precision=args.precision)
    if not seg.trained:
        print(f"warning: checkpoint {seg.name} is not trained (random weights): the mask means nothing",
              file=sys.stderr)
    from lsms_core.cli.refine_option import load_refiner
    from lsms_core.progress import run_to_end
    from lsms_core.referring.pipeline import iter_refer

    refiner = None if args.all_regions else load_refiner(args, seg.device, args.threads)
    bar = _progress_bar(stop - start, f"segmenting on {seg.device}")
    spacing_zyx = (float(vol.spacing[2]), float(vol.spacing[1]), float(vol.spacing[0]))
    try:
        def show(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        referral = run_to_end(iter_refer(seg, vol.array[start:stop], expression, spacing_zyx, batch_size=args.batch,
                                         threshold=args.threshold, keep="all" if args.all_regions else "referred",
                                         slice_offset=start, refiner=refiner, zoom=args.zoom == "on"), show)
    finally:
        bar.close()
    pred = referral.prediction
    for note in referral.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.candidates and referral.resolution is not None:
        for line in candidate_table(referral, start):
            print(line)
    kept = referral.mask
    mask = np.zeros(vol.shape, dtype=np.uint8)
    mask[start:stop] = kept
    label = LabelInfo(1, "lesion", LESION_COLOR, expression,
                      {"checkpoint": seg.name, "trained": seg.trained, "slices": [start, stop],
                       "regions": "all" if args.all_regions else "the candidate the words refer to",
                       "status": referral.status, "stages": referral.stages,
                       "threshold": float(args.threshold if args.threshold is not None else seg.config.threshold)})
    if as_seg:
        written = seg_output.write(mask, vol, out, label.name, label.color, expression, seg.name, args.overwrite)
    else:
        written = save_mask(mask, vol, out, labels=[label], overwrite=args.overwrite)
    seconds = time.perf_counter() - started

    print(f'expression: "{expression}"')
    print(f"input: {src}  ({vol.shape[2]}x{vol.shape[1]}x{vol.shape[0]} voxels, "
          f"{vol.spacing[0]:.3g}x{vol.spacing[1]:.3g}x{vol.spacing[2]:.3g} mm)")
    if referral.status == "not found":
        print(f"not found: {referral.resolution.reason} (the mask written is empty)")
    else:
        for line in _summary(mask.view(bool), vol, start, stop):  # 0/1 as bool, no copy
            print(line)
    print(f"stages: {' + '.join(referral.stages)}")
    if reference is not None:
        ref = load_mask(reference, vol) > 0
        raw = np.zeros(vol.shape, dtype=bool)
        raw[start:stop] = referral.raw_mask
        dice = _dice(ref, mask.astype(bool))
        if refiner is not None and referral.raw_mask.any():
            print(f"agreement with the demo's reference mask ({reference.name}): Dice {dice:.3f} two-stage "
                  f"(LSMS + {refiner.name}), {_dice(ref, raw):.3f} raw (LSMS alone)")
        else:
            print(f"agreement with the demo's reference mask ({reference.name}): Dice {dice:.3f}")
    print(f"time: {seconds:.1f} s ({stop - start} slices on {pred.device}, model {pred.seconds:.1f} s, "
          f"checkpoint {seg.name})")
    print(f"mask written to {written.resolve()} " + ("(DICOM SEG referring to the input series)" if as_seg
                                                     else f"(label sidecar {sidecar_path(written).name})"))
    if args.json:
        report = {**referral.summary(), "input": str(src), "output": str(written.resolve()),
                  "checkpoint": seg.name, "slices": [start, stop], "device": pred.device,
                  "seconds_total": round(seconds, 3)}
        _write_json(args.json, report, args.overwrite)
    return 0


def _dice(a, b) -> float:
    return 2.0 * int((a & b).sum()) / max(int(a.sum()) + int(b.sum()), 1)


def candidate_table(referral, start: int) -> list[str]:
    """The candidates as a radiologist reads them: number, where, how big, density, and both scores."""
    res = referral.resolution
    lines = [f"candidates ({referral.candidate_source}): {len(res.candidates)}; words read as: {res.request.describe()}"]
    if res.request.unknown:
        lines.append(f"  words not understood: {' '.join(res.request.unknown)}")
    lines.append("   #  slice  long x short mm  density  lobe/segment   HU     net   facts  score")
    for c in res.candidates:
        f = c.facts
        mark = "*" if res.chosen is c else ("?" if c in res.alternatives else " ")
        where = f"{f.lobe or '?'}/{f.segment or '?'}" + (f" {f.ap}" if f.ap else "")
        slice_no = c.slices[0] if c.slices and c.slices[0] == c.slices[1] else c.slice_index + start
        lines.append(f"{mark}{c.number:3d}  {slice_no:5d}  {f.long_mm:6.1f} x {f.short_mm:5.1f}  {f.density or '?':7s}  "
                     f"{where:13s} {c.mean_hu:5.0f}  {c.net_score:5.2f}  {c.fact_score:5.2f}  {c.score:5.2f}"
                     + (f"  contradicts: {', '.join(c.unmet)}" if c.unmet else ""))
    lines.append(f"decision: {res.note()}")
    return lines


def _write_json(target: str, report: dict, overwrite: bool) -> None:
    import json

    from lsms_core.errors import LSMSError

    text = json.dumps(report, indent=2, default=float) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    path = Path(target)
    if path.exists() and not overwrite:
        raise LSMSError(path, "exists already; pass --overwrite to replace it")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

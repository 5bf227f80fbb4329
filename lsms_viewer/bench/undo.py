"""``lsms bench undo``: memory and speed of the undo history on a CT-sized volume.

Paints ``--strokes`` brush strokes (random polylines, as the brush tool does: one ``write_region`` per
mouse segment inside one undo batch) on a 512x512x300 label, then undoes and redoes them all and checks
the label comes back bit for bit. The baseline is what a naive history would hold: one copy of the label
volume per stroke. Qt-free (the history and the Document are plain Python), so it runs anywhere.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lsms_core.cli.bench import add_json_flag, emit


def run_undo_bench(
    strokes: int = 100,
    shape: tuple[int, int, int] = (300, 512, 512),
    radius_mm: float = 5.0,
    points_per_stroke: int = 20,
    seed: int = 0,
) -> dict:
    from lsms_core.volume import Volume
    from lsms_viewer.editing import combine_changes, paint_stroke
    from lsms_viewer.state.document import Document
    from lsms_viewer.state.history import UndoHistory

    rng = np.random.default_rng(seed)
    spacing = (0.7, 0.7, 1.0)  # x, y, z mm: a typical abdominal CT
    volume = Volume(np.zeros(shape, dtype=np.int16), spacing, (0.0, 0.0, 0.0))
    doc = Document(volume)
    history = UndoHistory(doc, budget_bytes=1 << 40)  # measure everything: no step may be dropped
    label = doc.add_label(np.zeros(shape, dtype=bool), name="bench")
    spacing_yx = (spacing[1], spacing[0])
    z_count, h, w = shape

    stroke_seconds = []
    patch_bytes = 0  # baseline measured alongside: uncompressed before/after bounding-box patches per stroke
    for _ in range(strokes):
        z = int(rng.integers(0, z_count))
        start = rng.uniform((40, 40), (h - 40, w - 40))
        steps = rng.normal(0, 6.0, size=(points_per_stroke - 1, 2))
        points = np.vstack([start, start + np.cumsum(steps, axis=0)])
        t0 = time.perf_counter()
        history.begin_batch("brush stroke")
        pieces = []
        for p, q in zip(points[:-1], points[1:], strict=True):
            change = paint_stroke(label.mask, z, [p, q], radius_mm, spacing_yx)
            if not change.empty:
                doc.write_region(label.id, change.bbox, change.after)
                pieces.append(change)
        history.end_batch()
        stroke_seconds.append(time.perf_counter() - t0)
        patch_bytes += combine_changes(pieces, label.mask).nbytes

    t0 = time.perf_counter()
    painted = label.mask.copy()
    full_copy_s = time.perf_counter() - t0  # what a naive history pays per stroke, measured once
    undo_bytes = history.nbytes
    steps_recorded = len(history)
    t0 = time.perf_counter()
    while history.can_undo and history.undo_text == "brush stroke":
        history.undo()
    undo_all = time.perf_counter() - t0
    undone_clean = not label.mask.any()
    t0 = time.perf_counter()
    while history.can_redo:
        history.redo()
    redo_all = time.perf_counter() - t0
    redone_exact = bool(np.array_equal(label.mask, painted))

    # A model run replacing the label over the whole volume: one step, cost of a real lesion-sized change.
    run_mask = np.zeros(shape, dtype=bool)
    zz, yy, xx = np.ogrid[:z_count, :h, :w]
    run_mask |= ((zz - z_count // 2) * spacing[2]) ** 2 + ((yy - h // 2) * spacing[1]) ** 2 + (
        (xx - w // 3) * spacing[0]
    ) ** 2 <= 25.0**2
    before_run = history.nbytes
    t0 = time.perf_counter()
    doc.replace_mask(label.id, run_mask)
    history.flush()
    run_record_s = time.perf_counter() - t0
    run_step_bytes = history.nbytes - before_run

    mib = 1024 * 1024
    naive = strokes * painted.nbytes
    return {
        "strokes": strokes,
        "shape": list(shape),
        "radius_mm": radius_mm,
        "points_per_stroke": points_per_stroke,
        "painted_voxels": int(painted.sum()),
        "steps_recorded": steps_recorded,
        "undo_mb": round(undo_bytes / mib, 3),
        "undo_bytes": int(undo_bytes),
        "bytes_per_stroke": round(undo_bytes / max(strokes, 1), 1),
        "shadow_mb": round(history.shadow_nbytes / mib, 3),
        "baseline_full_copy_mb": round(naive / mib, 1),
        "ratio_vs_full_copy": round(naive / max(undo_bytes, 1), 1),
        "full_copy_ms": round(1000 * full_copy_s, 2),
        "baseline_bbox_patch_mb": round(patch_bytes / mib, 3),
        "ratio_vs_bbox_patch": round(patch_bytes / max(undo_bytes, 1), 1),
        "stroke_ms_mean": round(1000 * float(np.mean(stroke_seconds)), 2),
        "stroke_ms_p95": round(1000 * float(np.percentile(stroke_seconds, 95)), 2),
        "undo_all_s": round(undo_all, 3),
        "redo_all_s": round(redo_all, 3),
        "undo_restores_exactly": bool(undone_clean and redone_exact),
        "model_run_step_kb": round(run_step_bytes / 1024, 1),
        "model_run_record_s": round(run_record_s, 3),
        "limit_mb": 50,
        "within_limit": undo_bytes / mib < 50,
    }


def _main(args: argparse.Namespace) -> int:
    shape = tuple(int(s) for s in args.shape.lower().split("x"))
    if len(shape) != 3:
        from lsms_core.cli.main import UsageError

        raise UsageError("--shape", f"expected ZxYxX such as 300x512x512, got {args.shape!r}")
    result = run_undo_bench(args.strokes, shape, args.radius, args.points, args.seed)
    lines = [
        f"{result['strokes']} strokes on {args.shape}: undo history {result['undo_mb']} MB "
        f"({result['bytes_per_stroke']:.0f} B/stroke; full copies would be {result['baseline_full_copy_mb']} MB, "
        f"{result['ratio_vs_full_copy']}x more; raw bounding-box patches {result['baseline_bbox_patch_mb']} MB, "
        f"{result['ratio_vs_bbox_patch']}x more)",
        f"stroke {result['stroke_ms_mean']} ms mean, {result['stroke_ms_p95']} ms p95; undo all "
        f"{result['undo_all_s']} s, redo all {result['redo_all_s']} s; exact: {result['undo_restores_exactly']}",
        f"model run over the volume: {result['model_run_step_kb']} KB step, recorded in "
        f"{result['model_run_record_s']} s",
    ]
    emit(result, args.json, lines)
    return 0 if result["undo_restores_exactly"] and result["within_limit"] else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("undo", help="memory and speed of the undo history (100 strokes, 512x512x300)")
    parser.add_argument("--strokes", type=int, default=100)
    parser.add_argument("--shape", default="300x512x512", help="volume size ZxYxX (default 300x512x512)")
    parser.add_argument("--radius", type=float, default=5.0, help="brush radius in mm (default 5)")
    parser.add_argument("--points", type=int, default=20, help="mouse samples per stroke (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    add_json_flag(parser)
    parser.set_defaults(func=_main)

"""``lsms bench render``: how long a slice change takes to draw, with labels overlaid, offscreen.

Each step is what a wheel notch costs the user in the full main window: ``SliceView.set_slice(k)`` (new
CT slice, windowing, label overlay composed for that slice, and whatever every panel listening to slice
changes does) followed by a synchronous repaint of the view. ``view_only_ms_per_slice`` is the same scroll
with the view's signals blocked: the viewer's own drawing cost. The baseline, measured in
the same run and window size, is the least any pyqtgraph viewer can do: one bare ``ImageItem`` getting the
same slice with the same levels and repainting. ``ratio`` = ours / baseline. ``--plane coronal`` or
``sagittal`` scrolls that view instead (its sections are views of the volume, never copies), in the default
layout with the three planes shown, so every step also moves the crosshair lines in the two other views.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


def register(sub: argparse._SubParsersAction) -> None:
    from lsms_core.cli.bench import add_json_flag

    parser = sub.add_parser("render", help="slice-change render time of the viewer (offscreen, with overlay)")
    parser.add_argument("--size", type=int, default=512, help="slice width and height in pixels (default 512)")
    parser.add_argument("--slices", type=int, default=80, help="slices in the synthetic volume (default 80)")
    parser.add_argument("--labels", type=int, default=3, help="labels overlaid (default 3)")
    parser.add_argument("--mode", choices=("fill", "outline"), default="fill", help="overlay mode")
    parser.add_argument("--plane", choices=("axial", "coronal", "sagittal"), default="axial",
                        help="the view scrolled (default axial)")
    parser.add_argument("--passes", type=int, default=2, help="scrolls through the volume (default 2)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="device pixel ratio to emulate (2 = HiDPI/Retina); sets QT_SCALE_FACTOR")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(size: int = 512, slices: int = 80, labels: int = 3, mode: str = "fill", passes: int = 2,
            plane: str = "axial") -> dict:
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from lsms_viewer.app import build_viewer, create_application
    from lsms_viewer.demo import synthetic_abdomen

    app = create_application()
    volume, lesions = synthetic_abdomen(shape=(slices, size, size), spacing=(0.7, 0.7, 2.5), seed=0)
    viewer = build_viewer()
    window = viewer.window
    window.resize(1280, 860)
    window.show()
    viewer.opening.set_volume(volume)
    masks = list(lesions.values())
    # A big organ-sized label too, so the overlay is never a few pixels.
    yy, xx = np.mgrid[0:size, 0:size]
    organ = ((xx - 0.32 * size) / (0.3 * size)) ** 2 + ((yy - 0.47 * size) / (0.28 * size)) ** 2 <= 1
    masks.append(np.broadcast_to(organ, volume.shape).copy())
    for n in range(labels):
        window.document.add_label(masks[n % len(masks)], expression=f"label {n + 1}")
    window.set_overlay_mode(mode)
    view = window.planes.views[plane]
    for _ in range(3):
        app.processEvents()

    order = list(range(view.geometry.count)) * passes
    ours = []
    viewport = view.canvas.viewport()
    for k in order:
        start = time.perf_counter()
        view.set_slice(k)
        viewport.repaint()
        ours.append((time.perf_counter() - start) * 1000.0)
    shown_slices = len({k for k in order})

    # The same scroll with the view's signals blocked: the slice view's own drawing, without the work
    # other panels do when told the slice changed (status bar, measurements of the new slice, ...).
    view.blockSignals(True)
    view_only = []
    for k in order:
        start = time.perf_counter()
        view.set_slice(k)
        viewport.repaint()
        view_only.append((time.perf_counter() - start) * 1000.0)
    view.blockSignals(False)

    # Baseline: a bare image item of the same size on screen, same data and levels, no overlay.
    canvas = pg.GraphicsView(background="k")
    box = pg.ViewBox(lockAspect=True, invertY=True)
    canvas.setCentralItem(box)
    item = pg.ImageItem(axisOrder="row-major")
    box.addItem(item)
    canvas.resize(view.canvas.size())
    canvas.show()
    section = view.geometry.section
    item.setImage(section(volume.array, 0), autoLevels=False, levels=view.window.levels)
    box.autoRange(padding=0)
    for _ in range(3):
        app.processEvents()
    base = []
    levels = view.window.levels
    for k in order:
        start = time.perf_counter()
        item.setImage(section(volume.array, k), autoLevels=False, levels=levels)
        canvas.viewport().repaint()
        base.append((time.perf_counter() - start) * 1000.0)
    ratio_dpr = viewport.devicePixelRatioF()
    canvas.close()
    window.close()
    QApplication.processEvents()

    ms = statistics.median(ours)
    base_ms = statistics.median(base)
    return {
        "ms_per_slice": round(ms, 3),
        "p95_ms": round(_percentile(ours, 0.95), 3),
        "max_ms": round(max(ours), 3),
        "baseline_ms_per_slice": round(base_ms, 3),
        "view_only_ms_per_slice": round(statistics.median(view_only), 3),
        "view_only_p95_ms": round(_percentile(view_only, 0.95), 3),
        "ratio": round(ms / base_ms, 3) if base_ms > 0 else None,
        "fps_equivalent": round(1000.0 / ms, 1) if ms > 0 else None,
        "slices": shown_slices,
        "steps": len(order),
        "shape": list(volume.shape),
        "labels": labels,
        "mode": mode,
        "plane": plane,
        "view_pixels": [viewport.width(), viewport.height()],
        "device_pixel_ratio": ratio_dpr,
        "qt_platform": QApplication.platformName(),
        "python": platform.python_version(),
        "goal_ms": 10.0,
    }


def run(args: argparse.Namespace) -> int:
    import tempfile

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from lsms_core.cli.bench import emit

    if QApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        if args.scale != 1.0:
            os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    with tempfile.TemporaryDirectory() as folder:
        # The benchmark's window must neither read nor overwrite the user's own viewer settings.
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, folder)
        result = measure(args.size, args.slices, args.labels, args.mode, args.passes, args.plane)
    lines = [
        f"{result['plane']} slice change with {result['labels']} labels ({result['mode']}), "
        f"{result['shape'][2]}x{result['shape'][1]}x{result['shape'][0]}, "
        f"view {result['view_pixels'][0]}x{result['view_pixels'][1]} px @ {result['device_pixel_ratio']}x:",
        f"  ours     median {result['ms_per_slice']:.2f} ms  p95 {result['p95_ms']:.2f} ms  max {result['max_ms']:.2f} ms",
        f"  view     median {result['view_only_ms_per_slice']:.2f} ms  p95 {result['view_only_p95_ms']:.2f} ms "
        "(slice view alone: no listeners of slice changes)",
        f"  baseline median {result['baseline_ms_per_slice']:.2f} ms (bare pyqtgraph ImageItem, no overlay)",
        f"  ratio    {result['ratio']}  (goal: under {result['goal_ms']:.0f} ms per slice)",
    ]
    emit(result, args.json, lines)
    return 0

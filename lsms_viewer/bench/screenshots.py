"""``python -m lsms_viewer.bench.screenshots [--out docs/screenshots]``: the main window rendered to PNG, offscreen.

It opens a real file through the real loader: the installed demo case, or else the synthetic abdomen
phantom written to a NIfTI first. When trained demo weights are installed, the labels are the model's
own output for the demo expression; otherwise the demo case's reference mask is imported (or the
phantom's exact lesion masks are used) and named as such, never presented as a model result, and the
window's notice says the weights are missing. A run in progress is shown with whatever checkpoint exists (a random one if none).

``--ct PATH`` renders another study instead (a DICOM folder or a volume file), ``--labels MASK`` imports a
mask on its grid through File ▸ Import labels (named as a reference mask), ``--words`` puts an expression
in the box and runs the model on the shown slice, ``--slice N`` shows slice N (1-based, file order), and
``--credit TEXT`` shows a line in the window's banner (the README's 3D-IRCADb screenshots carry its credit).
The window shows the axial, coronal and sagittal views (its default layout) with the crosshair through the
middle of the labelled lesion on the shown slice; ``planes_2x2.png`` shows the 2x2 layout of a ``--ct`` study.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

SIZE = (1600, 1000)


def _settle(app, rounds: int = 5) -> None:
    for _ in range(rounds):
        app.processEvents()


def _wait(app, condition, timeout_s: float = 300.0) -> None:
    import time

    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not reach the state to capture")
        app.processEvents()
        time.sleep(0.01)


def _save(window, path: Path) -> Path:
    import time

    from PySide6.QtWidgets import QApplication

    # Panels refresh on short timers (measurements when scrolling pauses, details when edits pause):
    # let them run so the picture shows what a user sees a moment later.
    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise OSError(f"{path}: could not write the PNG")
    return path


def _best_slice(mask) -> int:
    import numpy as np

    return int(np.argmax(mask.sum(axis=(1, 2))))


def _aim_crosshair(window, mask) -> None:
    """Put the three planes through the middle of ``mask`` on the axial slice shown (when it is there)."""
    import numpy as np

    k = window.slice_view.current_slice
    rows, cols = np.nonzero(mask[k])
    if rows.size:
        window.planes.set_point((int(np.median(cols)), int(np.median(rows)), k))


# Long by design: a script of window states, each followed by its screenshot, in the order they are shot.
def render(out: Path, work: Path, ct: Path | None = None, labels: Path | None = None, words: str | None = None,
           slice_number: int | None = None, credit: str | None = None) -> list[Path]:
    from PySide6.QtCore import QSettings

    from lsms_core.volume import save_volume

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(work / "settings"))
    os.environ["LSMS_SESSION_DIR"] = str(work / "sessions")

    from lsms_viewer.app import build_viewer, create_application
    from lsms_viewer.demo import find_demo, synthetic_abdomen

    app = create_application()
    demo = find_demo()
    written: list[Path] = []

    # 1. The empty window, as it first opens.
    viewer = build_viewer(checkpoint=demo.checkpoint)
    window, opening, segmentation = viewer.window, viewer.opening, viewer.segmentation
    window.resize(*SIZE)
    window.show()
    _settle(app)
    written.append(_save(window, out / "empty.png"))

    if ct is not None:
        written += _render_study(app, viewer, out, ct, labels, words or demo.expression, slice_number, credit)
        window.close()
        _settle(app)
        return written

    # 2. A study with labels: the model's result with trained weights, else the phantom's own lesions.
    if demo.ct_path is not None:
        ct_path, lesions = demo.ct_path, None
    else:
        volume, lesions = synthetic_abdomen(shape=(64, 512, 512), spacing=(0.78, 0.78, 2.5), seed=3)
        ct_path = save_volume(volume, work / "synthetic_abdomen.nii.gz")
    _wait(app, lambda: not opening.is_loading())
    opening.open_path(ct_path)
    _wait(app, lambda: window.document.volume is not None and not opening.is_loading())
    window.expression_bar.set_words(demo.expression)
    if demo.case_notes:
        window.show_notice("Demo: " + " ".join(demo.case_notes), key="demo")
    if demo.model_notes:
        window.show_notice(" ".join(demo.model_notes), key="model")
    if demo.checkpoint_is_demo:
        window.expression_bar.set_scope("volume")
        segmentation.segment(demo.expression, "volume")
        _wait(app, lambda: not segmentation.is_segmenting(), timeout_s=1800)
        label = window.document.labels[-1] if window.document.labels else None
        if label is not None and label.mask.any():
            window.slice_view.set_slice(_best_slice(label.mask))
            _aim_crosshair(window, label.mask)
    elif lesions is None:
        # The demo case's own reference mask, through File > Import labels: shown as what it is.
        if demo.reference_mask is not None and opening.import_labels(demo.reference_mask):
            label = window.document.labels[-1]
            window.document.update_label(label.id, name=f"{label.name} (reference mask)")
            window.slice_view.set_slice(demo.slice_index if demo.slice_index is not None
                                        else _best_slice(label.mask))
            _aim_crosshair(window, label.mask)
    else:
        names = {"smaller lesion": "Smaller lesion (phantom truth)", "larger lesion": "Larger lesion (phantom truth)"}
        for key in ("larger lesion", "smaller lesion"):
            window.document.add_label(lesions[key], name=names[key])
        window.slice_view.set_slice(_best_slice(lesions["smaller lesion"]))
        _aim_crosshair(window, lesions["smaller lesion"])
    if demo.ct_path is not None and demo.window is not None:
        from lsms_viewer.display.windowing import Window

        window.slice_view.set_window(Window(*demo.window))  # the window the demo recipe was made for
    else:
        window.apply_preset("liver")
    label_rows = window.label_panel.table.rowCount()
    if label_rows:
        window.label_panel.table.selectRow(label_rows - 1)
    _settle(app)
    written.append(_save(window, out / "main.png"))

    # 3. Outline mode, zoomed on the liver, lesion-friendly liver window.
    window.set_overlay_mode("outline")
    window.apply_preset("liver" if demo.ct_path is None else "abdomen")
    window.slice_view.zoom(0.55)
    _settle(app)
    written.append(_save(window, out / "outline_zoom.png"))
    window.set_overlay_mode("fill")
    window.slice_view.reset_view()

    # 4. A whole-volume run in progress (progress bar and Cancel), with any checkpoint available.
    checkpoint = demo.checkpoint
    if checkpoint is None:
        from lsms_core.checkpoint import create_random_checkpoint

        checkpoint = create_random_checkpoint(work / "random-checkpoint", input_size=64)
    segmentation.use_checkpoint(checkpoint)
    window.expression_bar.set_scope("volume")
    window.expression_bar.set_words(demo.expression)
    segmentation.segment(demo.expression, "volume")
    _wait(app, lambda: window.expression_bar.progress.maximum() > 0 and window.expression_bar.progress.value() > 0,
          timeout_s=600)
    _settle(app)
    written.append(_save(window, out / "running.png"))
    segmentation.cancel()
    _wait(app, lambda: not segmentation.is_segmenting(), timeout_s=600)
    window.close()
    _settle(app)
    return written


def _render_study(app, viewer, out: Path, ct: Path, labels: Path | None, words: str, slice_number: int | None,
                  credit: str | None) -> list[Path]:
    """main.png, outline_zoom.png and running.png of the study at ``ct`` (see the module's docstring)."""
    window, opening, segmentation = viewer.window, viewer.opening, viewer.segmentation
    written = []
    if credit:
        window.show_notice(credit, key="credit")
    opening.open_path(ct)
    _wait(app, lambda: window.document.volume is not None and not opening.is_loading())
    if labels is not None:
        if not opening.import_labels(labels):
            raise SystemExit(f"{labels}: could not be imported ({window.last_error})")
        for label in window.document.labels:
            window.document.update_label(label.id, name=f"{label.name} (reference mask)")
    if slice_number is not None:
        window.slice_view.set_slice(slice_number - 1)
    elif window.document.labels:
        window.slice_view.set_slice(_best_slice(window.document.labels[-1].mask))
    if window.document.labels:
        _aim_crosshair(window, window.document.labels[-1].mask)
    window.apply_preset("liver")
    window.expression_bar.set_words(words)
    if segmentation.engine is not None:
        window.expression_bar.set_scope("slice")
        segmentation.segment(words, "slice")
        _wait(app, lambda: not segmentation.is_segmenting(), timeout_s=600)
    rows = window.label_panel.table.rowCount()
    if rows:
        window.label_panel.table.selectRow(rows - 1)
    _settle(app)
    written.append(_save(window, out / "main.png"))

    window.set_overlay_mode("outline")
    window.slice_view.zoom(0.55)
    _settle(app)
    written.append(_save(window, out / "outline_zoom.png"))
    window.set_overlay_mode("fill")
    window.slice_view.reset_view()

    # The 2x2 layout: the three planes and the crosshair's read-out (the layout is put back after).
    window.planes.set_layout("2x2", remember=False)
    _settle(app)
    written.append(_save(window, out / "planes_2x2.png"))
    window.planes.set_layout("1+2", remember=False)
    _settle(app)

    if segmentation.engine is not None:
        window.expression_bar.set_scope("range")
        segmentation.segment(words, "range")
        _wait(app, lambda: window.expression_bar.progress.maximum() > 0 and window.expression_bar.progress.value() > 0,
              timeout_s=600)
        _settle(app)
        written.append(_save(window, out / "running.png"))
        segmentation.cancel()
        _wait(app, lambda: not segmentation.is_segmenting(), timeout_s=600)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsms_viewer.bench.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="folder for the PNGs")
    parser.add_argument("--scale", type=float, default=1.0, help="device pixel ratio (2 = HiDPI screenshots)")
    parser.add_argument("--ct", type=Path, help="render this study (DICOM folder or volume file) instead of the demo")
    parser.add_argument("--labels", type=Path, help="a mask on the study's grid to import (a reference mask)")
    parser.add_argument("--words", help="the expression in the box (run on the shown slice)")
    parser.add_argument("--slice", type=int, help="the slice to show (1-based, file order)")
    parser.add_argument("--credit", help="a line for the window's banner (e.g. the data set's credit)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.scale != 1.0:
        os.environ["QT_SCALE_FACTOR"] = str(args.scale)
    with tempfile.TemporaryDirectory() as work:
        for path in render(args.out, Path(work), args.ct, args.labels, args.words, args.slice, args.credit):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

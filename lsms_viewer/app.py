"""``lsms-viewer [PATH] [--demo] [--checkpoint DIR] [--device ...]``: the composition root of the viewer.

``build_viewer`` makes every part once and connects them: the Document and its undo history and autosave
(Qt-free, ``lsms_viewer.state``), the main window (``main_window``), the controllers
(``lsms_viewer.controllers``: opening, export, segmentation, editing, recovery) and the measuring and
annotation docks. Parts get what they need through their constructors; nothing looks another part up later.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Qt is imported when a viewer is built, never by ``lsms --help`` (which reads build_parser)
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QDockWidget

    from lsms_viewer.controllers.candidates import CandidatesController
    from lsms_viewer.controllers.editing import EditingController
    from lsms_viewer.controllers.export import ExportController
    from lsms_viewer.controllers.opening import OpeningController
    from lsms_viewer.controllers.recovery import RecoveryController
    from lsms_viewer.controllers.refining import RefiningController
    from lsms_viewer.controllers.segmentation import SegmentationController
    from lsms_viewer.inference import EngineHost
    from lsms_viewer.main_window import MainWindow
    from lsms_viewer.state.document import Document
    from lsms_viewer.state.history import UndoHistory
    from lsms_viewer.state.session import Autosaver
    from lsms_viewer.views.annotation_panel import AnnotationPanel
    from lsms_viewer.views.measure_panel import MeasurePanel


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="lsms-viewer", description="LSMS Viewer: referring lesion segmentation on CT.")
    parser.add_argument("path", nargs="?", help="a DICOM folder or file, or a NIfTI / NRRD / MHA volume")
    parser.add_argument("--demo", action="store_true",
                        help="open the demo case with the demo weights (or say what is missing)")
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="model checkpoint folder (model.safetensors + config.json) or 'demo' (the default)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threshold", type=float, help="probability threshold (default: the checkpoint's)")
    parser.add_argument("--series", metavar="UID", help="series to open when PATH holds several")
    return parser


def create_application(argv: list[str] | None = None):
    """The QApplication, set up for crisp HiDPI rendering (fractional scale factors kept, not rounded)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        return app
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("LSMS Viewer")
    app.setOrganizationName("LSMS")
    app.setStyle("Fusion")
    from lsms_viewer.qt_compat import install_none_guard

    install_none_guard()
    apply_dark_palette(app)
    return app


def apply_dark_palette(app) -> None:
    """A dark neutral theme: reading rooms are dim, and a bright UI around a CT hurts contrast perception."""
    from PySide6.QtGui import QColor, QPalette

    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#23272b", QPalette.ColorRole.WindowText: "#dfe3e6",
        QPalette.ColorRole.Base: "#1b1e21", QPalette.ColorRole.AlternateBase: "#262a2e",
        QPalette.ColorRole.Text: "#dfe3e6", QPalette.ColorRole.Button: "#2e3338",
        QPalette.ColorRole.ButtonText: "#dfe3e6", QPalette.ColorRole.Highlight: "#3d7ab8",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2e3338",
        QPalette.ColorRole.ToolTipText: "#dfe3e6", QPalette.ColorRole.PlaceholderText: "#7d868e",
        QPalette.ColorRole.Link: "#6cb0f0",
    }
    for role, value in colors.items():
        palette.setColor(role, QColor(value))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b7278"))
    app.setPalette(palette)


@dataclass
class Viewer:
    """Every part of one viewer, as ``build_viewer`` connected them."""

    window: MainWindow
    document: Document
    history: UndoHistory
    autosaver: Autosaver
    opening: OpeningController
    export: ExportController
    segmentation: SegmentationController
    editing: EditingController
    recovery: RecoveryController
    measure_panel: MeasurePanel
    annotation_panel: AnnotationPanel
    editing_dock: QDockWidget
    measure_dock: QDockWidget
    annotation_dock: QDockWidget
    annotation_mode_action: QAction  # Tools ▸ Annotation mode (shows the annotation dock)
    candidates: CandidatesController
    candidates_dock: QDockWidget
    refining: RefiningController


_gui_thread_gc = None


def collect_garbage_in_gui_thread() -> None:
    """Python's cycle collector runs in whichever thread happens to allocate; run in a model worker, it
    finalised Qt objects of the GUI thread there and crashed the process (a segfault seen inside a worker
    loading LiteMedSAM's weights). pyqtgraph's collector turns automatic collection off and collects on a
    GUI-thread timer instead; one per process."""
    global _gui_thread_gc
    if _gui_thread_gc is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _gui_thread_gc = GarbageCollector(interval=1.0)


def build_viewer(checkpoint: str | Path | None = None, device: str = "auto", threshold: float | None = None,
                 engine: EngineHost | None = None) -> Viewer:
    """The main window with all its parts. ``engine`` (an ``EngineHost``) wins over ``checkpoint``."""
    collect_garbage_in_gui_thread()
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QKeySequence

    from lsms_viewer.controllers.candidates import CandidatesController
    from lsms_viewer.controllers.editing import EditingController, undo_budget_bytes
    from lsms_viewer.controllers.export import ExportController
    from lsms_viewer.controllers.opening import OpeningController
    from lsms_viewer.controllers.recovery import RecoveryController, view_state_of
    from lsms_viewer.controllers.refining import RefiningController
    from lsms_viewer.controllers.segmentation import SegmentationController
    from lsms_viewer.main_window import MainWindow
    from lsms_viewer.state.document import Document
    from lsms_viewer.state.history import UndoHistory
    from lsms_viewer.state.measurements import Measurements
    from lsms_viewer.state.session import Autosaver
    from lsms_viewer.views.annotation_panel import AnnotationPanel
    from lsms_viewer.views.measure_panel import MeasurePanel
    from lsms_viewer.views.ruler_list import RulerList

    document = Document()
    history = UndoHistory(document, budget_bytes=undo_budget_bytes())
    window = MainWindow(document)
    rulers = window.planes.rulers  # kept in the session's view part, saved whenever one is added or removed
    autosaver = Autosaver(document, history,
                          view_state=lambda: {**view_state_of(window.slice_view), "rulers": rulers.to_json()},
                          has_work=lambda: len(rulers) > 0)
    rulers.added.connect(lambda _ruler: autosaver.save())
    rulers.removed.connect(lambda _ruler: autosaver.save())
    opening = OpeningController(window, autosaver)
    export = ExportController(window)
    window.add_to_toolbar([opening.open_action, export.export_action], first=True)
    segmentation = SegmentationController(window, history, device=device, threshold=threshold, engine=engine,
                                          checkpoint=checkpoint)
    # Esc stops whatever runs: a model run or a study being read.
    segmentation.cancel_action.triggered.connect(opening.cancel)

    def update_cancel() -> None:
        segmentation.cancel_action.setEnabled(segmentation.is_segmenting() or opening.is_loading())

    opening.busy_changed.connect(update_cancel)
    segmentation.busy_changed.connect(update_cancel)
    update_cancel()
    editing = EditingController(window, history)
    editing_dock = window.add_dock(editing.panel, "Editing", Qt.DockWidgetArea.RightDockWidgetArea)

    slice_view = window.slice_view
    measurements = Measurements(document)  # one measurement of each lesion for the dock and the form
    measure_panel = MeasurePanel(document, measurements, slice_view)
    planes = window.planes
    measure_panel.layout().insertWidget(1, RulerList(
        rulers, show_slice=lambda plane, index: planes.views[plane].set_slice(index),
        number_of=lambda plane, index: planes.views[plane].numbering.number(index)))
    measure_dock = window.add_dock(measure_panel, "Measurements", Qt.DockWidgetArea.BottomDockWidgetArea)
    candidates = CandidatesController(window, history, engine_of=lambda: segmentation.engine)
    segmentation.result_applied.connect(candidates.show_result)
    candidates_dock = window.add_dock(candidates.panel, "Candidates", Qt.DockWidgetArea.BottomDockWidgetArea)
    # Side by side, not tabbed: a second tab group in this window left a stale copy of its tab bar drawn
    # over the panel (Qt 6.11, seen on the screenshots), and both tables are worth seeing at once.
    window.splitDockWidget(measure_dock, candidates_dock, Qt.Orientation.Horizontal)
    segmentation.result_applied.connect(lambda *_: candidates_dock.raise_())
    annotation_panel = AnnotationPanel(document, measurements, slice_view,
                                       window_of=lambda: (float(slice_view.window.width),
                                                          float(slice_view.window.level)))
    annotation_dock = window.add_dock(annotation_panel, "Annotation", Qt.DockWidgetArea.RightDockWidgetArea)
    window.tabifyDockWidget(editing_dock, annotation_dock)
    annotation_dock.hide()  # annotation mode is off until asked for
    annotation_mode_action = annotation_dock.toggleViewAction()
    annotation_mode_action.setText("&Annotation mode")
    annotation_mode_action.setShortcut(QKeySequence("Ctrl+Shift+A"))
    # triggered, not toggled: it comes after the dock has shown itself, when raising it can work
    annotation_mode_action.triggered.connect(lambda on: on and annotation_dock.raise_())
    window.menus["tools"].addSeparator()
    window.menus["tools"].addAction(annotation_mode_action)

    refining = RefiningController(window, history, engine_of=lambda: segmentation.engine)
    editing.add_tool("ruler", "Ruler", "R", "Drag a line in any plane to measure it in mm (listed under "
                     "Measurements, kept with the study)", planes.ruler_tools["axial"])
    editing.add_tool("box", "Box", "Shift+B", "Drag a rectangle around a lesion: LiteMedSAM draws it into the "
                     "active label (a new label if none)", refining.tool)

    recovery = RecoveryController(window, history, autosaver, open_path=opening.open_path)
    window.finish_menus()
    window.restore_layout()  # after every panel exists, so their sizes and places come back too
    return Viewer(window, document, history, autosaver, opening, export, segmentation, editing, recovery,
                  measure_panel, annotation_panel, editing_dock, measure_dock, annotation_dock,
                  annotation_mode_action, candidates, candidates_dock, refining)


def create_viewer(args: argparse.Namespace) -> Viewer:
    """The viewer for parsed arguments; opens PATH or the demo (errors become dialogs, not exits)."""
    checkpoint = args.checkpoint
    demo = None
    if args.demo:
        from lsms_viewer.demo import find_demo

        demo = find_demo()
        if checkpoint is None and demo.checkpoint is not None:
            checkpoint = demo.checkpoint
    viewer = build_viewer(device=args.device, threshold=args.threshold)
    if checkpoint is not None:
        # A missing or malformed folder is reported now, not at the first run.
        viewer.segmentation.use_checkpoint(checkpoint)
    elif demo is None:
        # 'demo' is the default checkpoint of every command and of the viewer: loaded on the first run, and
        # the status bar names it (a copy without the demo weights says so instead of an error dialog).
        viewer.segmentation.use_default_checkpoint()
    if args.path:
        viewer.opening.open_path(Path(args.path), series=args.series)
    elif demo is not None:
        open_demo(viewer, demo)
    return viewer


def open_demo(viewer: Viewer, demo) -> None:
    """Show the demo case (or the synthetic phantom) and say on screen what is missing."""
    window = viewer.window
    if demo.ct_path is not None:
        def show_recipe_view() -> None:
            viewer.opening.volume_opened.disconnect(show_recipe_view)
            if demo.window is not None:
                from lsms_viewer.display.windowing import Window

                window.slice_view.set_window(Window(*demo.window))
            if demo.slice_index is not None:
                window.slice_view.set_slice(demo.slice_index)

        viewer.opening.volume_opened.connect(show_recipe_view)
        viewer.opening.open_path(demo.ct_path)
    else:
        from lsms_viewer.demo import synthetic_abdomen

        volume, _lesions = synthetic_abdomen()
        viewer.opening.set_volume(volume)
    window.expression_bar.set_words(demo.expression)
    if demo.case_notes:
        window.show_notice("Demo: " + " ".join(demo.case_notes), key="demo")
    if demo.model_notes:
        window.show_notice(" ".join(demo.model_notes), key="model")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    app = create_application()
    viewer = create_viewer(args)
    viewer.window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

"""``lsms-viewer [PATH] [--demo] [--checkpoint DIR] [--device ...]``: the QApplication and the main window."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="lsms-viewer", description="LSMS Viewer: referring lesion segmentation on CT.")
    parser.add_argument("path", nargs="?", help="a DICOM folder or file, or a NIfTI / NRRD / MHA volume")
    parser.add_argument("--demo", action="store_true",
                        help="open the demo case with the demo weights (or say what is missing)")
    parser.add_argument("--checkpoint", metavar="DIR",
                        help="model checkpoint folder (model.safetensors + config.json) or 'demo'")
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


def create_window(args: argparse.Namespace):
    """The main window for parsed arguments; opens PATH or the demo (errors become dialogs, not exits)."""
    from lsms_viewer.main_window import MainWindow

    checkpoint = args.checkpoint
    demo = None
    if args.demo:
        from lsms_viewer.demo import find_demo

        demo = find_demo()
        if checkpoint is None and demo.checkpoint is not None:
            checkpoint = demo.checkpoint
    window = MainWindow(device=args.device, threshold=args.threshold)
    if checkpoint is not None:
        window.use_checkpoint(checkpoint)  # a missing or malformed folder is reported now, not at the first run
    if args.path:
        window.open_path(Path(args.path), series=args.series)
    elif demo is not None:
        open_demo(window, demo)
    return window


def open_demo(window, demo) -> None:
    """Show the demo case (or the synthetic phantom) and say on screen what is missing."""
    if demo.ct_path is not None:
        def show_recipe_view() -> None:
            window.volume_opened.disconnect(show_recipe_view)
            if demo.window is not None:
                from lsms_viewer.display.windowing import Window

                window.slice_view.set_window(Window(*demo.window))
            if demo.slice_index is not None:
                window.slice_view.set_slice(demo.slice_index)

        window.volume_opened.connect(show_recipe_view)
        window.open_path(demo.ct_path)
    else:
        from lsms_viewer.demo import synthetic_abdomen

        volume, _lesions = synthetic_abdomen()
        window.set_volume(volume)
    window.expression_bar.edit.setText(demo.expression)
    if demo.case_notes:
        window.show_notice("Demo: " + " ".join(demo.case_notes), key="demo")
    if demo.model_notes:
        window.show_notice(" ".join(demo.model_notes), key="model")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)


def run(args: argparse.Namespace) -> int:
    app = create_application()
    window = create_window(args)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())

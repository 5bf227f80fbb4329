"""``lsms view``: the viewer as a sub-command of ``lsms`` (registered through an entry point)."""

from __future__ import annotations

import argparse


def register_view(sub: argparse._SubParsersAction) -> None:
    from lsms_viewer.app import build_parser

    parser = sub.add_parser("view", help="open the desktop viewer (same options as lsms-viewer)",
                            description="Open LSMS Viewer on a DICOM folder or a NIfTI / NRRD / MHA file.")
    build_parser(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from lsms_viewer.app import run

    return run(args)

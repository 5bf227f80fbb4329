"""``lsms bench ...``: benchmarks. Every benchmark takes ``--json`` and then prints one JSON object."""

from __future__ import annotations

import argparse
import importlib
import json
from importlib.metadata import entry_points

# name -> module exposing register(subparsers); the viewer adds `render` and `undo` by entry points.
BENCHES: dict[str, str] = {
    "model": "lsms_core.cli.bench_model",
    "load": "lsms_core.cli.bench_load",
    "train": "lsms_core.cli.bench_train",
    "synth": "lsms_core.cli.bench_synth",
    "refine": "lsms_core.cli.bench_refine",
    "refer": "lsms_core.cli.bench_refer",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="measure speed (model, load, refer, refine, render, undo, train)")
    bench_sub = parser.add_subparsers(dest="bench", metavar="BENCH", parser_class=type(parser))
    for module_name in BENCHES.values():
        importlib.import_module(module_name).register(bench_sub)
    for ep in entry_points(group="lsms.bench"):
        try:
            ep.load()(bench_sub)
        except ImportError:
            continue
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def emit(result: dict, as_json: bool, lines: list[str]) -> None:
    """Print a benchmark's result as one JSON object, or as human-readable lines."""
    if as_json:
        print(json.dumps(result, sort_keys=True))
    else:
        print("\n".join(lines))

"""Entry point of the ``lsms`` command.

Each sub-command lives in its own module exposing ``register(subparsers)``, which adds a parser and sets
``func`` (called with the parsed namespace, returns an exit status). Modules are imported when the parser
is built, so they must keep heavy imports (torch, transformers, SimpleITK) inside their functions.
The viewer contributes its commands through the ``lsms.commands`` entry-point group, so this package
never imports Qt.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from lsms_core import __version__
from lsms_core.errors import LSMSError

# name -> module; order is the order of `lsms --help`.
CORE_COMMANDS: dict[str, str] = {
    "segment": "lsms_core.cli.segment",
    "convert": "lsms_core.cli.convert",
    "data": "lsms_core.cli.data",
    "train": "lsms_core.cli.train",
    "eval": "lsms_core.cli.eval",
    "bench": "lsms_core.cli.bench",
}


class UsageError(LSMSError):
    """A command-line argument is wrong."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error: <what>: <why>`` line with status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lsms",
        description="LSMS: referring lesion segmentation on CT (segment, data, train, eval, view, bench).",
    )
    parser.add_argument("--version", action="version", version=f"lsms {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module_name in CORE_COMMANDS.values():
        importlib.import_module(module_name).register(sub)
    for ep in entry_points(group="lsms.commands"):
        try:
            register = ep.load()
        except ImportError:
            continue  # the viewer's optional dependencies are missing: its commands are simply absent
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except LSMSError as exc:
        if debug:
            raise
        print(f"error: {exc.what}: {exc.why}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted: stopped by the user", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one readable line
        if debug:
            raise
        print(f"error: internal: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def _reader_went_away() -> int:
    """``lsms ... | head``: the reader closed the pipe. Stop quietly with the status a program killed by
    SIGPIPE has (128 + 13), as shell tools do; the rest of the output has nowhere to go."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit cannot fail again
    except (OSError, ValueError):
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())

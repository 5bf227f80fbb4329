"""``--refine auto|on|off``: whether the box-prompted refiner (LiteMedSAM) redraws what LSMS chose; and
``--zoom on|off``: whether the pipeline takes its second, closer look at the liver.

Shared by ``lsms segment`` and ``lsms eval``. ``auto`` (the default) refines when the refiner's weights are
installed; ``on`` requires them (a clear error names the missing folder); ``off`` never loads them.
"""

from __future__ import annotations

import argparse


def add_refine_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refine", choices=("auto", "on", "off"), default="auto",
                        help="redraw the chosen lesion with LiteMedSAM from its box, slice by slice: auto "
                             "(default: when its weights are installed), on, off")
    parser.add_argument("--refiner", default="medsam-lite", metavar="NAME|DIR",
                        help="the refiner's weights: medsam-lite (default, shipped) or a folder")


def add_zoom_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zoom", choices=("on", "off"), default="on",
                        help="a second, closer look at the liver the network found, for networks with a liver "
                             "map (default on; it finds small lesions the first look misses; off: one look, "
                             "about half the network time)")


def load_refiner(args, device: str, threads: int | None = None):
    """The Refiner ``args.refine`` asks for, or None."""
    from lsms_core.refiner import Refiner, available

    choice = getattr(args, "refine", "auto")
    name = getattr(args, "refiner", "medsam-lite")
    if choice == "off" or (choice == "auto" and not available(name)):
        return None
    return Refiner.load(name, device=device, threads=threads)

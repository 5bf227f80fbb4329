"""DICOM SEG output for ``lsms segment`` (``--out mask.dcm`` or ``--format seg``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_format_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["auto", "seg"], default="auto",
                        help="auto (default): from the output's extension (.dcm = DICOM SEG); seg: a DICOM SEG "
                             "referring to the input series (needs a DICOM input)")


def wants_seg(args, out: Path, explicit_out: bool) -> tuple[bool, Path]:
    """Whether the mask goes out as a DICOM SEG, and the output path (``--format seg`` without ``--out``
    names it ``<input>-lsms-seg.dcm``)."""
    from lsms_core.cli.main import UsageError
    from lsms_core.volume.seg import is_seg_path

    fmt = getattr(args, "format", "auto")
    if fmt == "seg":
        if not explicit_out:
            stem = out.name.split(".")[0].removesuffix("-lsms-mask")
            return True, out.with_name(f"{stem}-lsms-seg.dcm")
        if not is_seg_path(out):
            raise UsageError("--format seg", f"writes a DICOM file: name the output .dcm, not {out.name}")
        return True, out
    return is_seg_path(out), out


def check(out: Path, vol, overwrite: bool) -> None:
    """Refuse a SEG output before the model runs (not a DICOM series, existing file, bad folder)."""
    from lsms_core.volume.seg import check_seg_target

    check_seg_target(out, vol, overwrite=overwrite)


def write(mask, vol, out: Path, name: str, color, expression: str, checkpoint: str, overwrite: bool) -> Path:
    """The model's mask as one AUTOMATIC segment (algorithm LSMS, version = the checkpoint's name)."""
    from lsms_core.volume.seg import AUTOMATIC, SegSegment, save_seg

    notes: list[str] = []
    segment = SegSegment(mask.astype(bool), name, tuple(color), expression, AUTOMATIC, checkpoint, label_id=1)
    written = save_seg([segment], vol, out, overwrite=overwrite, notes=notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return written

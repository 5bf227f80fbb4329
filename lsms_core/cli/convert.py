"""``lsms convert INPUT OUT``: any supported input to NIfTI/NRRD/MHA through our own loader and writer.

Like dcm2niix, the output keeps the input's own voxel grid (``--layout source``, default) so it overlays
the original in any viewer; ``--layout lps`` writes the radiological layout the viewer shows instead
(same voxels in world space, another axis order). ``--mask`` writes integer labels (uint8/uint16, with
a label sidecar when there are several). A refused input exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "convert", help="convert a DICOM series/NIfTI/NRRD/MHA to NIfTI/NRRD/MHA with exact geometry",
        description="Load INPUT (a DICOM folder or file, .nii/.nii.gz, .nrrd, .mha/.mhd) and write it to OUT "
                    "(.nii.gz, .nii, .nrrd, .mha, .mhd) with the same voxels in world space.")
    parser.add_argument("input", help="DICOM folder or file, NIfTI, NRRD or MetaImage")
    parser.add_argument("out", nargs="?", help="output file (.nii.gz, .nii, .nrrd, .mha, .mhd)")
    parser.add_argument("--series", metavar="UID", help="the series to convert when a folder holds several")
    parser.add_argument("--list", action="store_true", help="list the series of a DICOM folder and exit")
    parser.add_argument("--mask", action="store_true", help="the input is a label mask: write integer labels")
    parser.add_argument("--layout", choices=["source", "lps"], default="source",
                        help="source: the input's own voxel grid (default); lps: the radiological layout")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (never an input)")
    parser.set_defaults(func=run)


def _list(path: Path) -> int:
    from lsms_core.volume import scan_folder

    scan = scan_folder(path)
    if not scan.series:
        from lsms_core.errors import VolumeError

        raise VolumeError(path, "no DICOM image series found")
    print(f"{len(scan.series)} series in {path} (largest first):")
    for info in scan.series:
        print(f"  {info.summary()}")
    if scan.notes:
        print(f"{len(scan.notes)} file(s) skipped (not images or unreadable), e.g. {scan.notes[0]}")
    return 0


def run(args) -> int:
    from lsms_core.cli.main import UsageError
    from lsms_core.errors import VolumeError
    from lsms_core.volume import load_volume, save_mask, save_volume

    src = Path(args.input)
    if args.list:
        return _list(src)
    if not args.out:
        raise UsageError("lsms convert", "OUT is required (or pass --list)")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise VolumeError(out, "exists already; pass --overwrite to replace it")
    vol = load_volume(src, series_uid=args.series)
    for message in vol.warnings:
        print(f"warning: {message}", file=sys.stderr)
    on_source = args.layout == "source"
    if args.mask:
        written = save_mask(vol.array, vol, out, on_source_grid=on_source, overwrite=args.overwrite)
    else:
        written = save_volume(vol, out, on_source_grid=on_source, overwrite=args.overwrite)
    x, y, z = vol.spacing
    print(f"wrote {written}  ({vol.shape[2]}x{vol.shape[1]}x{vol.shape[0]} voxels of {x:.3g}x{y:.3g}x{z:.3g} mm, "
          f"{vol.array.dtype}, {'source' if on_source else 'LPS'} layout)")
    return 0

"""``lsms convert INPUT OUT``: any supported input to NIfTI/NRRD/MHA through our own loader and writer.

Like dcm2niix, the output keeps the input's own voxel grid (``--layout source``, default) so it overlays
the original in any viewer; ``--layout lps`` writes the radiological layout the viewer shows instead
(same voxels in world space, another axis order). ``--mask`` writes integer labels (uint8/uint16, with
a label sidecar when there are several). A DICOM SEG input (``lsms convert mask.dcm mask.nii.gz``) becomes a
label mask with its sidecar (names, colours, expressions): on the grid of its own frames (every slice of
the source series, for SEGs written here), or exactly onto a CT's grid with ``--ct CT`` (refused, with the
reason, when the SEG was made for another series). A refused input exits with status 2 and one line.
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
    parser.add_argument("--ct", metavar="CT", help="a DICOM SEG input: write it on this CT series' grid (the "
                        "series the SEG refers to)")
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
    from lsms_core.volume.seg import is_seg_file

    if src.is_file() and is_seg_file(src):
        return _convert_seg(src, out, args)
    if args.ct:
        raise UsageError("--ct", "goes with a DICOM SEG input only")
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


def _convert_seg(src: Path, out: Path, args) -> int:
    """A DICOM SEG -> a label mask (value = label id) with its sidecar, on the CT's grid or the SEG's own."""
    from lsms_core.volume import LabelInfo, load_volume, save_mask
    from lsms_core.volume.seg import load_seg, seg_grid_volume

    if args.ct:
        ct = load_volume(args.ct, series_uid=args.series)
        read = load_seg(src, ct)
        grid, on_source, where = ct, args.layout == "source", f"the grid of {args.ct}"
    else:
        grid, read = seg_grid_volume(src)
        on_source, where = False, "the grid of its frames (the source series' slices)"
    for note in read.notes:
        print(f"note: {note}", file=sys.stderr)
    labels = [LabelInfo(lab.label_id, lab.name, lab.color, lab.expression,
                        {"dicom_seg": {"segment_number": lab.number, "algorithm_type": lab.algorithm,
                                       "algorithm": lab.algorithm_name, "algorithm_version": lab.algorithm_version,
                                       "category": lab.category, "type": lab.type,
                                       "series_uid": read.series_uid}})
              for lab in read.labels]
    mask = read.label_map(src)
    written = save_mask(mask, grid, out, labels=labels, on_source_grid=on_source, overwrite=args.overwrite)
    sizes = ", ".join(f"{lab.name} ({int(m.sum())} voxels)" for lab, m in zip(read.labels, read.masks, strict=True))
    print(f"wrote {written}  ({len(read.labels)} segment(s) on {where}: {sizes})")
    return 0

"""``lsms data ...``: make, import, check and look at referring-segmentation datasets."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="make, import, check and preview referring-segmentation datasets")
    dsub = parser.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(parser))

    p = dsub.add_parser("synth", help="generate synthetic abdominal CT cases with liver lesions and expressions")
    p.add_argument("--out", required=True, help="new dataset folder (must not exist or be empty)")
    p.add_argument("--cases", type=int, required=True, help="number of cases (patients)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same data")
    p.add_argument("--size", type=int, default=256, help="in-plane matrix (default 256; real CT is 512)")
    p.add_argument("--slices-per-case", type=int, default=32, help="axial slices per case (default 32)")
    p.add_argument("--phase", choices=["non-contrast", "arterial", "portal venous", "delayed"],
                   help="one contrast phase for every case (default: a realistic mix)")
    p.add_argument("--no-volumes", action="store_true", help="skip the NIfTI volumes under volumes/")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_synth)

    p = dsub.add_parser("demo", help="write the demo study (CT, lesion mask, expression) reproducibly")
    p.add_argument("--out", required=True, help="folder, e.g. resources/demo")
    p.add_argument("--force", action="store_true", help="replace an existing demo in that folder")
    p.set_defaults(func=_demo)

    p = dsub.add_parser("check", help="validate a dataset; print counts, lesion sizes, expression lengths, vocabulary")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--quick", action="store_true", help="check the manifest and that files exist, without reading them")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_check)

    p = dsub.add_parser("preview", help="render a contact sheet PNG of samples with masks and expressions")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--n", type=int, default=12, help="number of samples (default 12)")
    p.add_argument("--seed", type=int, default=0, help="which samples (random but reproducible)")
    p.add_argument("--split", choices=["train", "val", "test"], help="only samples of this split")
    p.add_argument("--window", type=float, nargs=2, default=(400.0, 40.0), metavar=("WIDTH", "LEVEL"))
    p.set_defaults(func=_preview)

    p = dsub.add_parser("from-masks", help="turn a CT and a lesion label map into dataset lines with expressions")
    p.add_argument("--ct", required=True, help="CT volume (NIfTI, NRRD, MHA or a DICOM folder)")
    p.add_argument("--lesions", required=True, help="lesion mask: one label per lesion, or a binary mask")
    p.add_argument("--organ", help="liver mask (enables density against the liver, lobe and segment)")
    p.add_argument("--out", required=True, help="dataset folder (new, or existing with --append)")
    p.add_argument("--lesion-label", type=int, help="only voxels with this label are lesions (LiTS: 2)")
    p.add_argument("--organ-label", type=int, help="only voxels with this label are the organ (default: non-zero)")
    p.add_argument("--append", action="store_true", help="add to an existing dataset")
    p.add_argument("--case-id", help="case id (default: the next free caseNNN; never taken from the file or "
                                     "folder name, which may hold the patient's name)")
    p.add_argument("--split", choices=["train", "val", "test"], default="train")
    p.add_argument("--seed", type=int, default=0, help="seed for the wording of expressions")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_from_masks)

    p = dsub.add_parser("import-lvit", help="import an LViT-style set (images, masks, Image/Description sheet)")
    p.add_argument("--images", required=True, help="folder of images (PNG/JPG)")
    p.add_argument("--masks", required=True, help="folder of masks")
    p.add_argument("--text", required=True, help="spreadsheet (.xlsx or .csv) with Image and Description columns")
    p.add_argument("--out", required=True, help="dataset folder (new, or existing with --append)")
    p.add_argument("--append", action="store_true", help="add to an existing dataset")
    p.add_argument("--split", choices=["train", "val", "test"],
                   help="split of every line (default: by case, 80/10/10)")
    p.add_argument("--spacing", type=float, nargs=2, default=None, metavar=("ROW_MM", "COL_MM"),
                   help="pixel size if known (LViT sets carry none; default 1 1, marked as unknown)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_import_lvit)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _print(obj: dict, as_json: bool, lines: list[str]) -> None:
    print(json.dumps(obj, sort_keys=True) if as_json else "\n".join(lines))


def _synth(args) -> int:
    from lsms_core.data.synth_dataset import write_synth_dataset

    def progress(done, total):
        if not args.json:
            print(f"\r  case {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    s = write_synth_dataset(args.out, cases=args.cases, seed=args.seed, size=args.size,
                            slices_per_case=args.slices_per_case, volumes=not args.no_volumes, phase=args.phase,
                            progress=progress)
    _print(s, args.json, [
        f"wrote {args.out}: {s['cases']} cases, {s['samples']} samples, {s['expressions']} expressions",
        f"  splits {s['splits']}", f"  lesion types {s['lesion_types']}", f"  phases {s['phases']}",
        f"  {s['seconds']} s ({s['slices'] / max(s['render_seconds'], 1e-9):.0f} slices/s rendering)",
    ])
    return 0


def _demo(args) -> int:
    from lsms_core.data.demo import write_demo

    info = write_demo(args.out, overwrite=args.force)
    print(f"wrote {args.out}: ct.nii.gz, lesion.nii.gz, demo.json (slice {info['slice']}: \"{info['expression']}\")")
    return 0


def _check(args) -> int:
    from lsms_core.data.check import check_dataset, format_report

    report = check_dataset(args.dir, read_files=not args.quick)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(format_report(report, with_problems=False))
    # The CLI's convention for a refused input: one error line per problem on stderr, status 2.
    sys.stdout.flush()
    for problem in report["problems"]:
        for line in problem.splitlines():
            if line.strip():
                print(f"error: {line.strip()}", file=sys.stderr)
    return 2 if report["problems"] else 0


def _preview(args) -> int:
    from lsms_core.data.preview import contact_sheet

    path = contact_sheet(args.dir, args.out, n=args.n, seed=args.seed, split=args.split, window=tuple(args.window))
    print(f"wrote {path}")
    return 0


def _from_masks(args) -> int:
    from lsms_core.data.from_masks import dataset_from_masks

    s = dataset_from_masks(args.ct, args.lesions, args.out, organ=args.organ, append=args.append,
                           case_id=args.case_id, split=args.split, seed=args.seed,
                           lesion_label=args.lesion_label, organ_label=args.organ_label)
    _print(s, args.json, [f"wrote {s['samples']} samples ({s['lesions']} lesions, {s['slices']} slices) "
                          f"for case {s['case_id']} to {args.out}"] + [f"  note: {n}" for n in s["notes"]])
    return 0


def _import_lvit(args) -> int:
    from lsms_core.data.lvit import import_lvit

    s = import_lvit(args.images, args.masks, args.text, args.out, append=args.append, split=args.split,
                    spacing=tuple(args.spacing) if args.spacing else None)
    _print(s, args.json, [f"imported {s['samples']} samples from {args.text} into {args.out}"]
           + [f"  skipped: {n}" for n in s["skipped"][:20]])
    return 0

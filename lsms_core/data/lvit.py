"""``lsms data import-lvit``: LViT-style sets (image folder, mask folder, Image/Description sheet) -> format.

LViT (QaTa-COV19, MosMedData+) ships 8-bit images, masks named like the image (or ``mask_<image>``), and
a spreadsheet (.xlsx or .csv) whose ``Image`` column names the image and whose ``Description`` column
holds the text, padded with ``EOF XXX`` tokens that are dropped here. Images are stored as windowed 8-bit
PNG (the format's second image kind); the pixel size is unknown unless given and is marked so.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from pathlib import Path

import numpy as np

from lsms_core.data.format import MAX_IMAGE_SIDE, DatasetWriter, Sample, assign_splits
from lsms_core.errors import DatasetError

_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_EOF = re.compile(r"\bEOF\b.*$", re.IGNORECASE | re.DOTALL)
_PAD = re.compile(r"\b(?:XXX|\[PAD\])\b")


def clean_description(text: str) -> str:
    """LViT text without its ``EOF XXX ...`` padding and extra spaces."""
    text = _EOF.sub("", str(text))
    text = _PAD.sub("", text)
    return " ".join(text.split()).strip(" ,;")


def read_sheet(path: str | os.PathLike) -> list[tuple[int, str, str]]:
    """(row number, image name, description) from an .xlsx or .csv with Image and Description columns."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "text sheet not found")
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    elif path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a bad file
            raise DatasetError(path, f"is not a readable .xlsx file ({exc})") from None
        rows = [["" if v is None else str(v) for v in r] for r in wb.active.iter_rows(values_only=True)]
        wb.close()
    else:
        raise DatasetError(path, "the text sheet must be .xlsx or .csv")
    if not rows:
        raise DatasetError(path, "is empty")
    header = [h.strip().lower() for h in rows[0]]
    try:
        ci = header.index("image")
    except ValueError:
        raise DatasetError(path, f"has no 'Image' column (columns: {rows[0]})") from None
    di = next((header.index(n) for n in ("description", "text", "caption") if n in header), None)
    if di is None:
        raise DatasetError(path, f"has no 'Description' column (columns: {rows[0]})")
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) <= max(ci, di) or not str(r[ci]).strip():
            continue
        out.append((n, str(r[ci]).strip(), str(r[di])))
    return out


def case_of(stem: str) -> str:
    """Case id of an image: ``study_0255_18`` -> ``study_0255`` (slice number dropped); else the stem."""
    m = re.match(r"^(.*\d)[_-](\d+)$", stem)
    cid = m.group(1) if m else stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", cid)


def _find(folder: Path, name: str, mask: bool) -> Path | None:
    stem = Path(name).stem
    cands = [name, f"mask_{name}", f"{stem}_mask{Path(name).suffix}"] if mask else [name]
    for c in cands:
        if (folder / c).is_file():
            return folder / c
    prefixes = (stem, f"mask_{stem}", f"{stem}_mask") if mask else (stem,)
    for p in prefixes:
        for ext in _IMAGE_EXT:
            if (folder / (p + ext)).is_file():
                return folder / (p + ext)
    return None


def _gray(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # PIL's bomb warning: the size is checked below, before decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            if max(im.size) > MAX_IMAGE_SIDE:
                raise DatasetError(path, f"is {im.size[0]}x{im.size[1]}: more than {MAX_IMAGE_SIDE} pixels a "
                                         "side is not a slice this importer takes")
            return np.asarray(im.convert("L"))
    except Image.DecompressionBombError as exc:
        raise DatasetError(path, f"is too large to be imported ({exc})") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(path, f"is not a readable image ({exc})") from None


def import_lvit(images: str | os.PathLike, masks: str | os.PathLike, text: str | os.PathLike,
                out: str | os.PathLike, *, append: bool = False, split: str | None = None,
                spacing: tuple[float, float] | None = None) -> dict:
    images, masks = Path(images), Path(masks)
    for folder in (images, masks):
        if not folder.is_dir():
            raise DatasetError(folder, "folder not found")
    rows = read_sheet(text)
    by_image: dict[str, list[str]] = {}
    skipped: list[str] = []
    for n, name, desc in rows:
        d = clean_description(desc)
        if not d:
            skipped.append(f"{text} row {n}: empty description for {name}")
            continue
        by_image.setdefault(name, [])
        if d not in by_image[name]:
            by_image[name].append(d)
    cases = {name: case_of(Path(name).stem) for name in by_image}
    splits = {c: split for c in cases.values()} if split else assign_splits(cases.values(), seed=0)
    n = 0
    with DatasetWriter(out, append=append, name=Path(out).name, created_by="lsms data import-lvit",
                       description=f"Imported from LViT-style set {Path(text).name}") as w:
        case_map: dict[str, str] = {}
        for name, exprs in by_image.items():
            ip, mp = _find(images, name, False), _find(masks, name, True)
            if ip is None:
                skipped.append(f"{name}: image not found in {images}")
                continue
            if mp is None:
                skipped.append(f"{name}: mask not found in {masks} (tried {name}, mask_{name}, ..._mask)")
                continue
            try:
                img, msk = _gray(ip), _gray(mp)
            except DatasetError as exc:
                skipped.append(f"{exc.what}: {exc.why}")
                continue
            if img.shape != msk.shape:
                skipped.append(f"{name}: mask shape {msk.shape} differs from image shape {img.shape}")
                continue
            binary = msk > 127  # JPEG-saved masks are not exactly 0/255
            if not binary.any():
                skipped.append(f"{name}: empty mask (no referred lesion)")
                continue
            want = cases[name]
            if want not in case_map:
                case_map[want] = w.unique_case_id(want) if append else want
            cid = case_map[want]
            stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name).stem)
            irel = w.write_image(cid, stem, img, suffix=".png")
            mrel = w.write_mask(cid, stem, binary)
            w.add(Sample(id=f"{cid}_{stem}", case_id=cid, split=splits[want], image=irel, mask=mrel,
                         expressions=exprs, spacing=spacing or (1.0, 1.0),
                         attributes={"source": "lvit", "spacing_known": spacing is not None,
                                     "source_image": name}))
            n += 1
    return {"samples": n, "rows": len(rows), "skipped": skipped}

"""``lsms data from-masks``: a CT plus lesion masks (LiTS, MSD Task03, 3D-IRCADb style) -> dataset lines.

Each lesion is one label of the lesion map, or one 3D connected component of a binary mask (or of the
voxels equal to ``lesion_label``, e.g. 2 in LiTS, where 1 is the liver). On each slice a lesion appears
on, its facts are measured (long/short axis in mm from the spacing, density against the surrounding
liver, shape, boundary, side and an approximate Couinaud segment from its position within the liver,
size rank among the lesions of that slice) and expressions are built from them, comparatives included.
Lesion type and enhancement are never guessed: a mask does not say them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from lsms_core.data.expressions import compose_expressions, describe_count
from lsms_core.data.facts import slice_facts
from lsms_core.data.format import DatasetWriter, Sample
from lsms_core.errors import DatasetError


def lesion_labels(lesions: np.ndarray, lesion_label: int | None = None) -> tuple[np.ndarray, str]:
    """A label map with one positive label per lesion, and how it was made."""
    from scipy import ndimage

    arr = np.asarray(lesions)
    if lesion_label is not None:
        binary = arr == lesion_label
        how = f"connected components of label {lesion_label}"
    else:
        values = [int(v) for v in np.unique(arr) if v != 0]
        if len(values) > 1:
            return arr.astype(np.int32), f"{len(values)} labels, one per lesion"
        binary = arr != 0
        how = "connected components of a binary mask"
    labels, n = ndimage.label(binary, structure=np.ones((3, 3, 3), bool))
    return labels.astype(np.int32), f"{how}: {n} lesion(s)"


def source_hash(vol) -> str:
    """A one-way hash of the series (its DICOM UID, else the path it was read from), never the UID or the
    path itself: the same recipe as the viewer's annotation export."""
    raw = str((vol.meta or {}).get("series_uid") or (vol.source or "in-memory"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def dataset_from_masks(ct: str | os.PathLike, lesions: str | os.PathLike, out: str | os.PathLike, *,
                       organ: str | os.PathLike | None = None, append: bool = False, case_id: str | None = None,
                       split: str = "train", seed: int = 0, lesion_label: int | None = None,
                       organ_label: int | None = None) -> dict:
    from lsms_core.volume import load_mask, load_volume

    vol = load_volume(ct)
    les_raw = load_mask(lesions, vol)
    labels, how = lesion_labels(les_raw, lesion_label)
    notes = [how] + list(vol.warnings)
    liver = None
    if organ is not None:
        org = load_mask(organ, vol)
        liver = (org == organ_label) if organ_label is not None else (org != 0)
        if not liver.any():
            raise DatasetError(organ, "the organ mask is empty")
        liver = liver | (labels > 0)  # lesions are part of the liver they sit in
    else:
        notes.append("no --organ: density is measured against a ring around each lesion; lobe and segment "
                     "are left out")
    if not (labels > 0).any():
        raise DatasetError(lesions, "holds no lesion voxels")
    sx, sy, _sz = vol.spacing
    spacing = (sy, sx)  # (row, col) mm in the radiological layout
    z_top = z_bot = None
    if liver is not None:
        ks = np.nonzero(liver.any(axis=(1, 2)))[0]
        z_bot, z_top = int(ks.min()), int(ks.max())  # k grows towards the head: the dome is at z_top
        k_wide = int(np.argmax(liver.sum(axis=(1, 2))))
    rng = np.random.default_rng(seed)
    series_hash = source_hash(vol)
    n_samples = 0
    slices_used = set()
    lesion_ids = set()
    image_dtype = np.int16 if vol.array.dtype == np.int16 else np.float32
    with DatasetWriter(out, append=append, name=Path(out).name, created_by="lsms data from-masks",
                       description="Referring lines made from lesion masks by `lsms data from-masks`") as w:
        # File and folder names of a PACS export often hold the patient's name: the ids and paths written
        # are neutral (caseNNN) unless the user chose one; the hash tells two cases of one series apart.
        if case_id:
            cid = w.unique_case_id(case_id)
            if cid != case_id:
                notes.append(f"case id {case_id!r} is taken: using {cid!r}")
        else:
            cid = w.new_case_id("case")
        for k in range(vol.shape[0]):
            present = [int(v) for v in np.unique(labels[k]) if v]
            if not present:
                continue
            masks = {f"l{v}": labels[k] == v for v in present}
            z_frac = None
            if liver is not None and z_top > z_bot:
                # The portal plane is taken at the liver's largest cross-section (scans rarely hold the whole
                # liver, so its visible height is no ruler): 0.45 there, 0 at the top, 1 at the bottom.
                if k >= k_wide:
                    z_frac = 0.45 * (z_top - k) / max(1, z_top - k_wide)
                else:
                    z_frac = 0.45 + 0.55 * (k_wide - k) / max(1, k_wide - z_bot)
            facts = slice_facts(vol.array[k], masks, spacing, liver=None if liver is None else liver[k],
                                z_frac=z_frac)
            ranks = describe_count(facts)
            image_rel = None
            for f in facts:
                exprs = compose_expressions(f, facts, rng)
                if not exprs:
                    notes.append(f"slice {k} lesion {f.lesion_id}: no unambiguous expression; skipped")
                    continue
                if image_rel is None:
                    image_rel = w.write_image(cid, f"{k:03d}", vol.array[k].astype(image_dtype))
                mask_rel = w.write_mask(cid, f"{k:03d}_{f.lesion_id}", masks[f.lesion_id])
                attrs = f.attributes()
                attrs.update({"lesions_on_slice": len(facts), "size_rank": ranks[f.lesion_id],
                              "source": "from-masks"})
                w.add(Sample(id=f"{cid}_s{k:03d}_{f.lesion_id}", case_id=cid, split=split, image=image_rel,
                             mask=mask_rel, expressions=[t for t, _ in exprs], spacing=spacing, slice_index=k,
                             lesion_id=f.lesion_id, attributes=attrs,
                             extra={"expression_fractions": [fr for _, fr in exprs],
                                    "provenance": {"tool": "lsms data from-masks",
                                                   "series_uid_sha256": series_hash}}))
                n_samples += 1
                slices_used.add(k)
                lesion_ids.add(f.lesion_id)
    if n_samples == 0:
        notes.append("no lesion is large enough to refer to (>= 3 mm long axis and >= 6 pixels on a slice)")
    return {"case_id": cid, "samples": n_samples, "slices": len(slices_used), "lesions": len(lesion_ids),
            "notes": notes}

"""Real CT with reference masks in the 3D-IRCADb layout, for validation and tests (never for training).

A 3D-IRCADb-01 patient folder holds ``PATIENT_DICOM/`` (the CT series) and ``MASKS_DICOM.zip`` (one DICOM
series per structure, values 0/255 stored as CT images). :func:`read_ircad` loads the CT and the named
structures on its grid; :func:`lesion_dataset` turns the slices that show the tumour into an in-memory
dataset with plain expressions, which ``lsms_core.evaluate.evaluate`` scores like any dataset folder.

The database's licence (CC BY-NC-ND) forbids derivatives: nothing here writes the data anywhere.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.data.format import Sample
from lsms_core.errors import DatasetError

#: what a user would type for the tumour of a liver CT without knowing anything else about it
PLAIN_EXPRESSIONS = ("the liver lesion", "the hypodense lesion in the liver")


@dataclass
class IrcadCase:
    volume: object  # lsms_core.volume.Volume of the CT
    masks: dict[str, np.ndarray]  # structure -> bool (K, rows, cols) on the CT's grid
    folder: Path


def read_ircad(folder: str | os.PathLike, structures: tuple[str, ...] = ("tumor", "liver")) -> IrcadCase:
    from lsms_core.volume import load_volume

    root = Path(folder)
    ct_dir, masks_zip = root / "PATIENT_DICOM", root / "MASKS_DICOM.zip"
    if not ct_dir.is_dir() or not masks_zip.is_file():
        raise DatasetError(root, "not a 3D-IRCADb patient folder (needs PATIENT_DICOM/ and MASKS_DICOM.zip)")
    volume = load_volume(ct_dir)
    masks = {}
    with zipfile.ZipFile(masks_zip) as z, tempfile.TemporaryDirectory(prefix="lsms-ircad-") as tmp:
        names = z.namelist()
        for name in structures:
            members = [n for n in names if n.startswith(f"MASKS_DICOM/{name}/") and not n.endswith("/")]
            if not members:
                raise DatasetError(masks_zip, f"holds no {name!r} mask series")
            z.extractall(tmp, members)
            mask_vol = load_volume(Path(tmp) / "MASKS_DICOM" / name)
            if mask_vol.array.shape != volume.array.shape or not np.allclose(mask_vol.origin, volume.origin,
                                                                               atol=1e-3):
                raise DatasetError(masks_zip, f"{name}: the mask series is not on the CT's grid")
            masks[name] = mask_vol.array > 0
    return IrcadCase(volume, masks, root)


class ArrayDataset:
    """Samples whose images and masks live in memory: the interface ``evaluate`` reads (no files)."""

    def __init__(self, root: str | os.PathLike, samples: list[Sample], images: dict[str, np.ndarray],
                 masks: dict[str, np.ndarray], info: dict | None = None, sources: tuple[str, str] = ("", "")):
        self.root = Path(root)
        self._sources = sources
        self.samples = samples
        self.info = info or {}
        self._images = images
        self._masks = masks

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def load_pair(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, bool]:
        return self._images[sample.image], self._masks[sample.mask], False

    def image_path(self, sample: Sample) -> Path:
        """The file or folder the sample's image was read from (what a writer must never replace)."""
        return self.root / self._sources[0]

    def mask_path(self, sample: Sample) -> Path:
        return self.root / self._sources[1]


@dataclass
class LesionSlices:
    dataset: ArrayDataset
    slices: list[int] = field(default_factory=list)


def lesion_dataset(case: IrcadCase, *, structure: str = "tumor", expressions=PLAIN_EXPRESSIONS,
                   min_pixels: int = 50, every: int = 1) -> LesionSlices:
    """Every ``every``-th slice where the structure covers at least ``min_pixels`` pixels, as samples of
    split "test" with ``expressions``; the slice's other structures are not lesions and stay background."""
    vol = case.volume
    mask = case.masks[structure]
    spacing = (float(vol.spacing[1]), float(vol.spacing[0]))
    counts = mask.reshape(mask.shape[0], -1).sum(1)
    slices = [int(k) for k in np.nonzero(counts >= min_pixels)[0]][::max(1, every)]
    samples, images, masks = [], {}, {}
    for k in slices:
        key = f"{case.folder.name}/{k:03d}"
        images[key] = vol.array[k]
        masks[key] = mask[k]
        samples.append(Sample(id=f"{case.folder.name}_s{k:03d}", case_id=case.folder.name, split="test",
                              image=key, mask=key, expressions=list(expressions), spacing=spacing,
                              slice_index=k, attributes={"lesions_on_slice": 1}))
    return LesionSlices(ArrayDataset(case.folder, samples, images, masks, info={"name": case.folder.name, "real": True},
                                     sources=("PATIENT_DICOM", "MASKS_DICOM.zip")), slices)

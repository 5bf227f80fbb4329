"""Reading studies and label files, without Qt: a study (or the choice of series a folder offers), and
the labels of a mask file saved earlier (by this viewer or any tool) on the open CT's grid.

``lsms_core.volume`` is imported when a study is opened, which keeps the first window fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import VolumeError


@dataclass
class SeriesChoice:
    """A folder holds several series: the user must pick one (largest first)."""

    path: Path
    series: list


def read_study(path: str | Path, series_uid: str | None = None, progress=None, cancel=None):
    """A Volume, or a SeriesChoice when ``path`` is a folder with several series and none was named.

    Runs in a worker thread (no widgets here).
    """
    from lsms_core.volume import SeriesChoiceError, list_series, load_volume

    path = Path(path)
    if not path.exists():
        raise VolumeError(path, "no such file or folder")
    if path.is_dir() and series_uid is None:
        series = list_series(path, progress, cancel)
        if len(series) > 1:
            return SeriesChoice(path, sorted(series, key=lambda s: s.voxels, reverse=True))
    try:
        return load_volume(path, series_uid, progress, cancel)
    except SeriesChoiceError as exc:
        return SeriesChoice(path, list(exc.series))


@dataclass
class ImportedLabel:
    """One label of a mask file: its value there, its mask on the CT's grid, and its sidecar's words."""

    value: int
    mask: np.ndarray
    name: str
    color: tuple[int, int, int] | None
    expression: str
    meta: dict = field(default_factory=dict)  # kept on the label (a SEG segment: how it was made)


def read_label_file(path: str | Path, reference) -> list[ImportedLabel]:
    """Labels of a mask file on ``reference``'s grid, with names/colours/expressions from its sidecar; a
    DICOM SEG gives one label per segment (refused, with the reason, when made for another series)."""
    from lsms_core.volume import load_mask, read_label_sidecar
    from lsms_core.volume.seg import is_seg_file

    path = Path(path)
    if path.is_file() and is_seg_file(path):
        return _read_seg(path, reference)
    array = np.asarray(load_mask(path, reference))
    if not np.issubdtype(array.dtype, np.integer):
        if not np.array_equal(array, np.round(array)):
            raise VolumeError(path, "a label file must hold whole label numbers")
        array = array.astype(np.int64)
    infos = {info.id: info for info in read_label_sidecar(path)}
    values = [int(v) for v in np.unique(array) if v > 0]
    if not values:
        raise VolumeError(path, "the file holds no labelled voxel")
    out = []
    for value in values:
        info = infos.get(value)
        out.append(ImportedLabel(
            value, array == value,
            info.name if info else f"{path.name.split('.')[0]} {value}",
            tuple(info.color) if info else None,
            info.expression if info else "",
        ))
    return out


def _read_seg(path: Path, reference) -> list[ImportedLabel]:
    from lsms_core.volume.seg import load_seg

    read = load_seg(path, reference)
    if not any(mask.any() for mask in read.masks):
        raise VolumeError(path, "the SEG holds no segmented voxel")
    return [ImportedLabel(lab.label_id, mask, lab.name, lab.color, lab.expression,
                          {"dicom_seg": {"segment_number": lab.number, "algorithm_type": lab.algorithm,
                                         "algorithm": lab.algorithm_name, "algorithm_version": lab.algorithm_version,
                                         "type": lab.type, "notes": read.notes}})
            for lab, mask in zip(read.labels, read.masks, strict=True)]

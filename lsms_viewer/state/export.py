"""Export a Document's labels as masks on the CT's exact grid, through ``lsms_core.volume.save_mask`` (no Qt).

Two shapes of output, as radiology tools expect:
- one multi-label file (uint8, voxel value = label id) with a JSON sidecar naming each id, its colour and
  its referring expression; where labels overlap, the later label in the list wins (said in the report);
- one binary file per label, each with its own sidecar, so overlapping lesions keep every voxel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import VolumeError
from lsms_core.volume import LabelInfo, save_mask, sidecar_path
from lsms_core.volume.write import volume_extension
from lsms_viewer.state.document import Document, Label


@dataclass
class ExportReport:
    files: list[Path] = field(default_factory=list)
    overlapping_voxels: int = 0
    empty_labels: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Wrote {len(self.files)} file{'s' if len(self.files) != 1 else ''}:"]
        lines += [f"  {p}" for p in self.files]
        if self.overlapping_voxels:
            lines.append(f"{self.overlapping_voxels:,} voxels belong to more than one label; in a single "
                         "multi-label file the later label wins (export one file per label to keep both).")
        if self.empty_labels:
            lines.append("Empty labels (written, no voxels): " + ", ".join(self.empty_labels))
        return "\n".join(lines)


def label_info(label: Label) -> LabelInfo:
    extra = {}
    if label.run is not None:
        extra["model"] = {"checkpoint": label.run.checkpoint, "trained": label.run.trained,
                          "device": label.run.device, "seconds": round(label.run.seconds, 3),
                          "slices": list(label.run.slices)}
    return LabelInfo(label.id, label.name, tuple(label.color), label.expression, extra)


def combined_mask(labels: list[Label]) -> tuple[np.ndarray, int]:
    """uint8 label map (later labels drawn over earlier ones) and the count of voxels in 2+ labels."""
    if not labels:
        raise ValueError("no labels")
    out = np.zeros(labels[0].mask.shape, np.uint8)
    count = np.zeros(labels[0].mask.shape, np.uint8)
    for label in labels:
        out[label.mask] = label.id
        count += label.mask
    return out, int(np.count_nonzero(count > 1))


def _require_labels(document: Document, path: Path) -> list[Label]:
    if document.volume is None:
        raise VolumeError(path, "no study is open")
    labels = document.labels
    if not labels:
        raise VolumeError(path, "there are no labels to export")
    return labels


def export_multilabel(document: Document, path: str | Path) -> ExportReport:
    """One uint8 mask, voxel value = label id, plus ``<name>.json`` (always written, even for one label)."""
    path = Path(path)
    labels = _require_labels(document, path)
    mask, overlaps = combined_mask(labels)
    written = save_mask(mask, document.volume, path, labels=[label_info(lab) for lab in labels])
    report = ExportReport([written, sidecar_path(written)], overlaps,
                          [lab.name for lab in labels if not lab.mask.any()])
    return report


def slug(text: str, limit: int = 40) -> str:
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return text[:limit].strip("-") or "label"


def export_per_label(document: Document, folder: str | Path, stem: str = "label",
                     extension: str = ".nii.gz") -> ExportReport:
    """One binary mask per label in ``folder``: ``<stem>-<id>-<name>.nii.gz`` each with its sidecar."""
    folder = Path(folder)
    labels = _require_labels(document, folder)
    if not volume_extension("x" + extension):
        raise VolumeError(folder, f"unknown mask format {extension!r}")
    if not folder.is_dir():
        raise VolumeError(folder, "the folder does not exist")
    report = ExportReport(empty_labels=[lab.name for lab in labels if not lab.mask.any()])
    for label in labels:
        target = folder / f"{stem}-{label.id:02d}-{slug(label.name)}{extension}"
        info = label_info(label)
        info.id = 1  # a binary file stores the lesion as 1; its id in the study goes in the sidecar
        info.extra = {**info.extra, "study_label_id": label.id}
        written = save_mask(label.mask, document.volume, target, labels=[info])
        report.files += [written, sidecar_path(written)]
    return report


def default_export_path(document: Document) -> Path:
    """``<source stem>_labels.nii.gz`` next to the study (never the source itself), or in the home folder."""
    volume = document.volume
    source = volume.source if volume is not None else None
    if source is None:
        return Path.home() / "labels.nii.gz"
    source = Path(source)
    if source.is_dir():
        return source.parent / f"{source.name}_labels.nii.gz"
    ext = volume_extension(source)
    stem = source.name[: len(source.name) - len(ext)] if ext else source.stem
    return source.parent / f"{stem}_labels.nii.gz"

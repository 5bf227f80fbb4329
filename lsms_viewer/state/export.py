"""Export a Document's labels as masks on the CT's exact grid, through ``lsms_core.volume.save_mask`` (no Qt).

Two shapes of output, as radiology tools expect:
- one multi-label file (uint8, voxel value = label id) with a JSON sidecar naming each id, its colour and
  its referring expression. A voxel holds one value, so where labels overlap one must win: the later label
  in the list (``precedence="later"``) or the smaller label (``"smaller"``: a lesion drawn inside an organ
  stays visible). A label that would lose *every* voxel is never written as if it were there: the export
  is refused (``HiddenLabelsError``, naming it and what covers it) and the caller asks for another
  precedence or separate files;
- one binary file per label, each with its own sidecar, so overlapping lesions keep every voxel;
- one DICOM SEG (``export_seg``) referring to the open DICOM series, one segment per label (segments may
  overlap, so nothing is lost), for a PACS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import VolumeError
from lsms_core.volume import LabelInfo, save_mask, sidecar_path
from lsms_core.volume.write import volume_extension
from lsms_viewer.state.document import Document, Label, auto_name
from lsms_viewer.state.provenance import EDITED_AFTER_RUN, IMPORTED, MODEL_RUN, model_found_something, origin

PRECEDENCES = {"later": "the later label in the list wins", "smaller": "the smaller label wins"}


class HiddenLabelsError(VolumeError):
    """A single multi-label file cannot hold every label: some would have no voxel left in it."""

    def __init__(self, path, plan: MultilabelPlan):
        self.plan = plan
        super().__init__(path, "a single multi-label file cannot hold every label: " + plan.hidden_text()
                         + "; export one file per label, or let the smaller label win")


@dataclass
class MultilabelPlan:
    """What one multi-label file would hold: the map, voxels in two or more labels, the labels that would
    lose voxels (id -> voxels lost) and those that would lose all of them (``hidden``, with what covers them)."""

    mask: np.ndarray
    precedence: str
    overlapping_voxels: int
    lost: dict[int, int]
    hidden: list[tuple[Label, list[Label]]]

    def hidden_text(self) -> str:
        parts = []
        for label, covering in self.hidden:
            by = ", ".join(f"“{c.name}” (id {c.id})" for c in covering)
            parts.append(f"“{label.name}” (id {label.id}, {int(label.mask.sum()):,} voxels) lies entirely under {by}")
        return "; ".join(parts)


@dataclass
class ExportReport:
    files: list[Path] = field(default_factory=list)
    overlapping_voxels: int = 0
    empty_labels: list[str] = field(default_factory=list)
    precedence: str = "later"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Wrote {len(self.files)} file{'s' if len(self.files) != 1 else ''}:"]
        lines += [f"  {p}" for p in self.files]
        if self.overlapping_voxels:
            lines.append(f"{self.overlapping_voxels:,} voxels belong to more than one label; in a single "
                         f"multi-label file {PRECEDENCES[self.precedence]} (export one file per label to keep "
                         "both).")
        if self.empty_labels:
            lines.append("Empty labels (written, no voxels): " + ", ".join(self.empty_labels))
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)


def file_name(label: Label) -> str:
    """The label's name as files carry it: never a display ellipsis (older sessions named labels "six
    words…"; such a name is the expression's automatic name)."""
    name = label.name
    if name.endswith(("…", "...")):
        stem = name.rstrip(".…").rstrip()
        if label.expression and " ".join(label.expression.split()).startswith(stem):
            return auto_name(label.expression)
        return stem or f"Label {label.id}"
    return name


def label_info(label: Label) -> LabelInfo:
    """The sidecar entry: what made the mask (``origin``), and the model run only when the model produced
    some of it (a run that found nothing, then drawn by hand, is hand-drawn)."""
    extra: dict = {"origin": origin(label)}
    if model_found_something(label):
        extra["model"] = {"checkpoint": label.run.checkpoint, "trained": label.run.trained,
                          "device": label.run.device, "seconds": round(label.run.seconds, 3),
                          "slices": list(label.run.slices)}
    return LabelInfo(label.id, file_name(label), tuple(label.color), label.expression, extra)


def combined_mask(labels: list[Label], precedence: str = "later") -> MultilabelPlan:
    """The uint8 label map one file would hold, and what it would lose (see :class:`MultilabelPlan`).

    ``precedence="later"``: labels drawn in list order (the later wins); ``"smaller"``: the larger labels
    first, so a smaller label inside a larger one stays whole (ties: list order).
    """
    if not labels:
        raise ValueError("no labels")
    if precedence not in PRECEDENCES:
        raise ValueError(f"unknown precedence {precedence!r}")
    sizes = {label.id: int(label.mask.sum()) for label in labels}
    order = list(labels) if precedence == "later" else sorted(labels, key=lambda lab: -sizes[lab.id])
    out = np.zeros(labels[0].mask.shape, np.uint8)
    count = np.zeros(labels[0].mask.shape, np.uint8)
    for label in order:
        out[label.mask] = label.id
        count += label.mask
    lost, hidden = {}, []
    for label in labels:
        if not sizes[label.id]:
            continue
        kept = int(np.count_nonzero(out[label.mask] == label.id))
        if kept < sizes[label.id]:
            lost[label.id] = sizes[label.id] - kept
        if kept == 0:
            covering_ids = set(np.unique(out[label.mask]).tolist())
            hidden.append((label, [lab for lab in labels if lab.id in covering_ids]))
    return MultilabelPlan(out, precedence, int(np.count_nonzero(count > 1)), lost, hidden)


def _require_labels(document: Document, path: Path) -> list[Label]:
    if document.volume is None:
        raise VolumeError(path, "no study is open")
    labels = document.labels
    if not labels:
        raise VolumeError(path, "there are no labels to export")
    return labels


def plan_multilabel(document: Document, precedence: str = "later") -> MultilabelPlan:
    """What :func:`export_multilabel` would write with ``precedence``, without writing (the window asks
    the user with it before exporting)."""
    return combined_mask(_require_labels(document, Path("labels")), precedence)


def export_multilabel(document: Document, path: str | Path, precedence: str = "later") -> ExportReport:
    """One uint8 mask, voxel value = label id, plus ``<name>.json`` (always written, even for one label).

    Refused with :class:`HiddenLabelsError` (nothing written) when a label would have no voxel in the file;
    a label that keeps only part of its voxels is written, its sidecar entry saying how many it lost."""
    path = Path(path)
    labels = _require_labels(document, path)
    plan = combined_mask(labels, precedence)
    if plan.hidden:
        raise HiddenLabelsError(path, plan)
    infos = []
    for lab in labels:
        info = label_info(lab)
        if lab.id in plan.lost:
            info.extra = {**info.extra, "voxels": int(lab.mask.sum()), "voxels_lost_to_overlap": plan.lost[lab.id],
                          "overlap_precedence": PRECEDENCES[precedence]}
        infos.append(info)
    written = save_mask(plan.mask, document.volume, path, labels=infos)
    report = ExportReport([written, sidecar_path(written)], plan.overlapping_voxels,
                          [lab.name for lab in labels if not lab.mask.any()], precedence)
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


def default_export_path(document: Document, folder: str | Path | None = None) -> Path:
    """``<source stem>_labels.nii.gz`` in ``folder`` (a user folder: the last one exported to, else the
    home folder), never next to the study: a DICOM folder is often a read-only PACS export or a CD, and
    derived files among the source's are easily taken for part of it."""
    folder = Path(folder) if folder is not None else Path.home()
    volume = document.volume
    source = volume.source if volume is not None else None
    if source is None:
        return folder / "labels.nii.gz"
    source = Path(source)
    if source.is_dir():
        return folder / f"{source.name}_labels.nii.gz"
    ext = volume_extension(source)
    stem = source.name[: len(source.name) - len(ext)] if ext else source.stem
    return folder / f"{stem}_labels.nii.gz"


def seg_segment(label: Label):
    """The label as a DICOM SEG segment: AUTOMATIC (algorithm LSMS, the checkpoint's name) for a model's
    mask, SEMIAUTOMATIC for one edited by hand, MANUAL for a hand-drawn one; an imported SEG segment keeps
    what its file said; the annotation's lesion type picks the segment's type code."""
    from lsms_core.volume.seg import AUTOMATIC, MANUAL, SEMIAUTOMATIC, SegSegment

    made = origin(label)
    algorithm, checkpoint = MANUAL, ""
    if made == MODEL_RUN:
        algorithm, checkpoint = AUTOMATIC, label.run.checkpoint
    elif made == EDITED_AFTER_RUN:
        algorithm, checkpoint = SEMIAUTOMATIC, label.run.checkpoint
    elif made == IMPORTED and isinstance(label.meta.get("dicom_seg"), dict):
        was = label.meta["dicom_seg"]
        if was.get("algorithm_type") in (AUTOMATIC, SEMIAUTOMATIC):
            algorithm, checkpoint = was["algorithm_type"], str(was.get("algorithm_version", ""))
    annotation = label.meta.get("annotation") or {}
    lesion_type = str((annotation.get("attributes") or {}).get("lesion_type", "")) if isinstance(annotation, dict) else ""
    return SegSegment(label.mask, file_name(label), tuple(label.color), label.expression, algorithm, checkpoint,
                      lesion_type, label.id)


def export_seg(document: Document, path: str | Path) -> ExportReport:
    """Every label as one segment of a DICOM SEG referring to the open DICOM series (see
    ``lsms_core.volume.seg``). Segments may overlap: every voxel of every label is kept."""
    from lsms_core.volume.seg import save_seg

    path = Path(path)
    labels = _require_labels(document, path)
    notes: list[str] = []
    written = save_seg([seg_segment(lab) for lab in labels], document.volume, path, notes=notes)
    return ExportReport([written], empty_labels=[lab.name for lab in labels if not lab.mask.any()], notes=notes)


def default_seg_path(document: Document, folder: str | Path | None = None) -> Path:
    """``<source>_labels.dcm`` in ``folder`` (see ``default_export_path``)."""
    path = default_export_path(document, folder)
    return path.with_name(path.name[: -len(".nii.gz")] + ".dcm")

"""Annotation mode, the Qt-free part: lesion measurements, attributes, expressions, consistency, export.

An annotator draws (or corrects) a lesion, fills a short form of the RefHL-Seg attributes (liver segment,
diameter, shape, boundary, density, enhancement, lesion type, notes), and gets a full referring expression
composed from them plus shorter partial ones (the paper evaluates with 25% and 50% of the text). Diameter
and density are *measured* from the mask and the CT, never typed. A consistency check compares every
expression with its mask before export. Export appends (slice, expressions, mask) samples to a dataset in
the project's format (``lsms_core.data.format``), with provenance and without patient identifiers.

Where the annotation lives: ``label.meta["annotation"]`` (JSON-safe dict), so it is autosaved with the
session and undone like any label change. The mask the model gave a label is kept, packed, on its run
(``label.run.mask``) for the provenance of the export.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import LSMSError
from lsms_core.measure import (
    Density,
    Measurement2D,
    Measurement3D,
    array_spacing,
    measure_slice,
    measure_volume,
)
from lsms_core.volume import Volume
from lsms_viewer.state.provenance import model_found_something, origin, slice_origin

SEGMENTS = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")
SHAPES = ("round", "oval", "lobulated", "irregular")
BOUNDARIES = ("clear", "blurred")
DENSITIES = ("hypodense", "isodense", "hyperdense")
ENHANCEMENTS = (
    "no enhancement",
    "rim enhancement",
    "peripheral nodular enhancement",
    "homogeneous enhancement",
    "heterogeneous enhancement",
    "arterial enhancement with washout",
)
LESION_TYPES = ("cyst", "hemangioma", "hcc", "metastasis", "fnh")
LESION_NAMES = {"hcc": "hepatocellular carcinoma", "fnh": "focal nodular hyperplasia"}
# Couinaud: I is the caudate lobe, II-IV the left lobe, V-VIII the right lobe.
LOBE_OF_SEGMENT = {"I": "caudate", "II": "left", "III": "left", "IV": "left", "V": "right", "VI": "right",
                   "VII": "right", "VIII": "right"}
DENSITY_WORD = {"hypo": "hypodense", "iso": "isodense", "hyper": "hyperdense"}
DIAMETER_TOLERANCE = 0.20
PARTIAL_FRACTIONS = (0.5, 0.25)
FORM_FRACTIONS = (1.0, *PARTIAL_FRACTIONS)  # the form's rows: full, 50 %, 25 %


class AnnotationError(LSMSError):
    """An annotation cannot be measured or exported as asked."""


# -- measurement ------------------------------------------------------------------------------------
@dataclass
class LesionMeasurement:
    """Everything measured about one label: on one slice and over the volume."""

    slice_index: int
    slice_2d: Measurement2D | None  # None when the label is absent from that slice
    volume_3d: Measurement3D
    density: Density | None  # on the slice (ring of surrounding tissue), None if not measurable
    density_3d: Density | None
    side: str | None  # "right" / "left" (patient) of the lesion's centroid on the slice

    @property
    def diameter_mm(self) -> float | None:
        """The long axis of the largest connected piece on the slice."""
        return None if self.slice_2d is None else self.slice_2d.long_axis.length_mm

    @property
    def pieces(self) -> int:
        """Connected pieces of the label on the slice (the diameter is the largest one's)."""
        if self.slice_2d is None:
            return 0
        return len(self.slice_2d.pieces) or 1

    @property
    def lesion_density(self) -> Density | None:
        """The lesion's one density: against its 3D ring (what the Measurements dock shows), the slice's
        ring only when no 3D ring tissue is left."""
        return self.density_3d if self.density_3d is not None else self.density


def measure_lesion(
    volume: Volume, mask: np.ndarray, slice_index: int | None = None, *, exclude: np.ndarray | None = None,
    ring_mm: float = 5.0, long_axes: dict[int, float] | None = None,
) -> LesionMeasurement:
    """Measure a label. ``slice_index=None``: the slice with the longest axis (RECIST-style). On a slice the
    label's largest connected piece is measured (``slice_2d.pieces`` lists them when there are several).

    ``exclude`` (e.g. the other labels) is kept out of the density reference ring. Raises
    :class:`AnnotationError` for an empty label.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise AnnotationError("label", "is empty: draw or segment the lesion first")
    spacing = array_spacing(volume.spacing)
    m3, density_3d = measure_volume(volume.array, mask, spacing, exclude=exclude, ring_mm=ring_mm,
                                    long_axes=long_axes, largest=slice_index is None, largest_piece=True)
    k = m3.largest_slice if slice_index is None else int(slice_index)
    on_slice = measure_slice(volume.array, mask, k, spacing, exclude=exclude, ring_mm=ring_mm, largest_piece=True)
    m2, density, side = on_slice if on_slice is not None else (None, None, None)
    return LesionMeasurement(k, m2, m3, density, density_3d, side)


# -- attributes and expressions ---------------------------------------------------------------------
@dataclass
class LesionAttributes:
    """The form of one lesion. Empty strings / None mean "not stated" (left out of the expression)."""

    segment: str = ""  # Couinaud I..VIII
    diameter_mm: float | None = None  # measured long axis on the annotated slice
    shape: str = ""
    boundary: str = ""
    density: str = ""  # hypodense / isodense / hyperdense (measured)
    enhancement: str = ""
    lesion_type: str = ""
    notes: str = ""

    @property
    def lobe(self) -> str:
        return LOBE_OF_SEGMENT.get(self.segment, "")

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v not in ("", None)}
        if self.lobe:
            out["lobe"] = self.lobe
        return out

    @classmethod
    def from_json(cls, data: dict) -> LesionAttributes:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


def round_half_up(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` decimals, halves away from zero (6.25 -> 6.3), on its decimal text:
    Python's round() and format() round binary halves to even (6.25 -> 6.2), which a reader never does."""
    from decimal import ROUND_HALF_UP, Decimal

    return float(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def diameter_mm_of(measured_mm: float) -> float:
    """The one rounding of a measured diameter: to 0.1 mm. The form shows it and the expressions say it."""
    return round_half_up(measured_mm, 1)


def format_diameter(mm: float) -> str:
    """"2.3 cm" from 10 mm up (how radiologists write it), "8 mm" below; halves round up, once, from the
    diameter rounded to 0.1 mm (62.54 mm -> 62.5 mm -> "6.3 cm", in the form and in every expression)."""
    mm = diameter_mm_of(mm)
    return f"{round_half_up(mm / 10, 1):.1f} cm" if mm >= 10 else f"{round_half_up(mm, 0):.0f} mm"


def _location_phrase(a: LesionAttributes, short: bool = False) -> str:
    if not a.segment:
        return ""
    if a.lobe == "caudate":
        return "in the caudate lobe" if short else "in the caudate lobe (segment I)"
    return f"in segment {a.segment}" if short else f"in segment {a.segment} of the {a.lobe} lobe"


def _phrases(a: LesionAttributes, short: bool = False) -> dict[str, str]:
    """Each attribute as the words it contributes, keyed by attribute (``short``: for partial ones)."""
    kind = LESION_NAMES.get(a.lesion_type, a.lesion_type)
    return {
        "shape": a.shape,
        "boundary": f"{'well-defined' if a.boundary == 'clear' else 'ill-defined'}" if a.boundary else "",
        "density": a.density,
        "diameter": f"of about {format_diameter(a.diameter_mm)}" if a.diameter_mm else "",
        "segment": _location_phrase(a, short),
        "enhancement": f"with {a.enhancement}" if a.enhancement else "",
        "lesion_type": f"suggestive of {kind}" if kind else "",
    }


def compose_expression(a: LesionAttributes, keep: set[str] | None = None) -> str:
    """A referring expression from the attributes, e.g. "the round, well-defined hypodense lesion of about
    2.3 cm in segment VII of the right lobe with rim enhancement, suggestive of metastasis".

    ``keep``: only these attributes (a partial expression, with the short location "in segment VII").
    """
    p = _phrases(a, short=keep is not None)
    if keep is not None:
        p = {k: (v if k in keep else "") for k, v in p.items()}
    adjectives = [w for w in (p["shape"], p["boundary"]) if w]
    head = ", ".join(adjectives)
    words = ["the"]
    if head:
        words.append(head)
    if p["density"]:
        words.append(p["density"])
    words.append("lesion")
    for key in ("diameter", "segment", "enhancement"):
        if p[key]:
            words.append(p[key])
    text = " ".join(words)
    if p["lesion_type"]:
        text += ", " + p["lesion_type"]
    return text


# Order in which attributes survive shortening: what best tells one liver lesion from another first.
_PRIORITY = ("segment", "density", "diameter", "lesion_type", "shape", "enhancement", "boundary")


def compose_within(a: LesionAttributes, keep: set[str] | None = None, limit: int | None = None) -> str:
    """:func:`compose_expression`, dropping the least telling attributes (``_PRIORITY``'s end first) until
    the text encoder reads the expression whole: it reads ``MAX_TOKENS`` (32) tokens and cuts the rest."""
    from lsms_core.data.expressions import MAX_TOKENS, token_count

    limit = MAX_TOKENS if limit is None else limit
    text = compose_expression(a, keep)
    phrases = _phrases(a)
    stated = [k for k in _PRIORITY if phrases[k] and (keep is None or k in keep)]
    while token_count(text) > limit and len(stated) > 1:
        stated.pop()
        text = compose_expression(a, set(stated))
    return text


def partial_expressions(a: LesionAttributes, fractions=PARTIAL_FRACTIONS) -> dict[float, str]:
    """Shorter expressions with about ``fraction`` of the full expression's words, keeping the most
    discriminative attributes (location, density, size) first; always grammatical, and within the text
    encoder's token limit."""
    phrases = _phrases(a)
    stated = [k for k in _PRIORITY if phrases[k]]
    full_len = len(compose_expression(a).split())
    out = {}
    for fraction in fractions:
        budget = max(1, round(fraction * full_len))
        keep: set[str] = set()
        for key in stated:
            if len(compose_expression(a, keep | {key}).split()) <= budget:
                keep.add(key)
        if not keep and stated:
            keep.add(stated[0])
        out[fraction] = compose_within(a, keep)
    return out


def form_expressions(a: LesionAttributes) -> list[str]:
    """What "Compose" writes: the full expression, then the 50 % and 25 % ones, each within the token limit."""
    partial = partial_expressions(a)
    return [compose_within(a), partial[0.5], partial[0.25]]


# -- consistency ---------------------------------------------------------------------------------------
_NUMBER_UNIT = re.compile(r"(\d+(?:[.,]\d+)?)\s*(mm|cm)\b", re.IGNORECASE)


def stated_diameters_mm(text: str) -> list[float]:
    return [float(n.replace(",", ".")) * (10.0 if unit.lower() == "cm" else 1.0)
            for n, unit in _NUMBER_UNIT.findall(text)]


def check_expression(text: str, measurement: LesionMeasurement, tolerance: float = DIAMETER_TOLERANCE) -> list[str]:
    """Warnings where an expression contradicts its mask: size off by more than ``tolerance``, the wrong
    lobe/side for the lesion's centroid, a density word against the measured density."""
    warnings = []
    low = text.lower()
    diameter = measurement.diameter_mm
    if diameter:
        for stated in stated_diameters_mm(text):
            if abs(stated - diameter) > tolerance * diameter:
                warnings.append(f"says {format_diameter(stated)} but the lesion measures {format_diameter(diameter)} "
                                f"(long axis on slice {measurement.slice_index + 1})")
    side = measurement.side
    if side:
        other = "left" if side == "right" else "right"
        if re.search(rf"\b{other}\s+(lobe|liver|hepatic|side|hemiliver)", low):
            warnings.append(f"says “{other}” but the lesion's centroid is on the patient's {side}")
        for seg, lobe in LOBE_OF_SEGMENT.items():
            if lobe in ("left", "right") and lobe != side and re.search(rf"\bsegment\s+{seg}\b", text):
                warnings.append(f"names segment {seg} ({lobe} lobe) but the lesion's centroid is on the "
                                f"patient's {side}")
    density = measurement.lesion_density
    if density is not None:
        measured = DENSITY_WORD[density.label]
        for word, key in (("hypodense", "hypo"), ("hyperdense", "hyper"), ("isodense", "iso"),
                          ("low-density", "hypo"), ("low density", "hypo"), ("high-density", "hyper"),
                          ("high density", "hyper"), ("hypoattenuating", "hypo"), ("hyperattenuating", "hyper")):
            if word in low and key != density.label:
                warnings.append(f"says “{word}” but it measures {measured} ({density.difference_hu:+.0f} HU vs "
                                f"the surrounding tissue)")
                break
    return warnings


# -- the record stored on a label ------------------------------------------------------------------------
@dataclass
class Annotation:
    """What annotation mode keeps for one label (``label.meta["annotation"]``)."""

    attributes: LesionAttributes = field(default_factory=LesionAttributes)
    expressions: list[str] = field(default_factory=list)  # full first, then partial ones (editable)
    slice_index: int | None = None  # the annotated slice
    annotator: str = ""
    split: str = "train"
    done: bool = False  # ready for export
    #: the share of the full expression's attributes each expression keeps (1.0, 0.5, 0.25: the form's rows)
    fractions: list[float] = field(default_factory=list)

    def fractions_for(self, expressions: list[str]) -> list[float]:
        """``expression_fractions`` for the manifest: the stored ones, else by position (full, 50 %, 25 %)."""
        if len(self.fractions) == len(expressions):
            return [float(f) for f in self.fractions]
        return [float(f) for f in FORM_FRACTIONS[:len(expressions)]] + [1.0] * max(0, len(expressions) - 3)

    def to_json(self) -> dict:
        return {"attributes": self.attributes.to_json(), "expressions": list(self.expressions),
                "expression_fractions": self.fractions_for(list(self.expressions)),
                "slice_index": self.slice_index, "annotator": self.annotator, "split": self.split,
                "done": self.done}

    @classmethod
    def from_json(cls, data: dict | None) -> Annotation:
        data = data or {}
        return cls(LesionAttributes.from_json(data.get("attributes", {})), list(data.get("expressions", [])),
                   data.get("slice_index"), data.get("annotator", ""), data.get("split", "train"),
                   bool(data.get("done", False)), [float(f) for f in data.get("expression_fractions", [])])


# -- export -------------------------------------------------------------------------------------------------
def hashed_series_uid(volume: Volume) -> str:
    """A one-way hash of the series (its UID if the loader kept one, else its source path): never the UID."""
    meta = volume.meta or {}
    for key in ("series_uid_sha256", "series_uid_hash", "series_hash"):
        if meta.get(key):
            return str(meta[key])
    raw = str(meta.get("series_uid") or meta.get("SeriesInstanceUID") or (volume.source or "in-memory"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass
class ExportReport:
    root: Path
    case_id: str
    samples: list[str]
    warnings: list[str]


def export_annotations(
    root: str | Path,
    volume: Volume,
    labels: list,
    *,
    window: tuple[float, float] | None = None,
    annotator: str = "",
    split: str | None = None,
    dataset_name: str | None = None,
    slices: str = "annotated",
) -> ExportReport:
    """Append the annotated labels (``meta["annotation"]`` with ``done``) to the dataset at ``root``.

    Creates the dataset when ``root`` is absent or empty. All labels of this study go to one new case
    (a fresh ``caseNNN`` id, never clashing with the dataset's). Per label: the annotated slice as int16 HU
    ``.npy``, the final mask as PNG, and the model's mask as ``*_model.png`` only where a run found the
    lesion on that slice; the manifest line carries expressions with their ``expression_fractions``,
    spacing, attributes and ``provenance`` (``origin``: model run, edited after a run, drawn by hand; the
    checkpoint and the model's words only when the model made some of the mask).
    ``slices="all"`` exports every slice the lesion is on (same expressions), not just the annotated one.
    """
    if slices not in ("annotated", "all"):
        raise AnnotationError("slices", f"must be 'annotated' or 'all', not {slices!r}")
    from lsms_core.data.format import DatasetWriter, Sample

    root = Path(root)
    todo = []
    for label in labels:
        ann = Annotation.from_json(label.meta.get("annotation"))
        if not ann.done:
            continue
        if ann.slice_index is None or not 0 <= ann.slice_index < volume.shape[0]:
            raise AnnotationError(label.name, "has no annotated slice")
        if not label.mask[ann.slice_index].any():
            raise AnnotationError(label.name, f"is empty on its annotated slice {ann.slice_index + 1}")
        expressions = [e.strip() for e in ann.expressions if e and e.strip()]
        if not expressions:
            raise AnnotationError(label.name, "has no expression")
        todo.append((label, ann, expressions))
    if not todo:
        raise AnnotationError(root, "no label is marked done in the annotation form: nothing to export")
    append = (root / "manifest.jsonl").exists() or (root / "dataset.json").exists()
    sx, sy, _ = volume.spacing
    series_hash = hashed_series_uid(volume)
    warnings: list[str] = []
    written = []
    writer = DatasetWriter(root, append=append, name=dataset_name or root.name,
                           description="RefHL-Seg-style samples annotated in LSMS Viewer", created_by="lsms-viewer")
    with writer:
        case_id = writer.new_case_id("case")
        split = split or todo[0][1].split or "train"  # a case lives in one split
        for label, ann, expressions in todo:
            kept = label.run.mask if model_found_something(label) else None
            model_mask = kept.unpack() if kept is not None else None
            if model_mask is not None and model_mask.shape != label.mask.shape:
                warnings.append(f"{label.name}: the kept model mask is from another grid; not exported")
                model_mask = None
            if slices == "all":
                ks = [int(k) for k in np.flatnonzero(label.mask.any(axis=(1, 2)))]
            else:
                ks = [int(ann.slice_index)]
            lesion = f"l{label.id}"
            fractions = ann.fractions_for(expressions)
            for k in ks:
                stem = f"{k:03d}"
                model_k = model_mask[k] if model_mask is not None and model_mask[k].any() else None
                image_rel = f"images/{case_id}/{stem}.npy"
                if not (root / image_rel).exists():  # one image per slice, shared by its lesions
                    image_rel = writer.write_image(case_id, stem, _hu_int16(volume.array[k]))
                mask_rel = writer.write_mask(case_id, f"{stem}_{lesion}", label.mask[k])
                provenance = {
                    "tool": "lsms-viewer",
                    "annotator": ann.annotator or annotator,
                    "series_uid_sha256": series_hash,
                    "window": list(window) if window else None,
                    # what made this slice's mask: the model, the model then the hand, or the hand alone
                    "origin": slice_origin(label, model_k, k),
                    "label_origin": origin(label),
                    "checkpoint": label.run.checkpoint if model_k is not None else None,
                    "model_expression": label.run.expression if model_k is not None else None,
                    "annotated_slice": int(ann.slice_index),
                    "edited": None,
                    "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                if model_k is not None:  # a model mask only where the model found something
                    provenance["model_mask"] = writer.write_mask(case_id, f"{stem}_{lesion}_model", model_k)
                    provenance["edited"] = bool(not np.array_equal(model_k, label.mask[k]))
                sample = Sample(
                    id=f"{case_id}_s{stem}_{lesion}", case_id=case_id, split=split,
                    image=image_rel, mask=mask_rel, expressions=expressions, spacing=(sy, sx), slice_index=k,
                    lesion_id=lesion, attributes=ann.attributes.to_json(),
                    extra={"expression_fractions": fractions, "provenance": provenance},
                )
                writer.add(sample)
                written.append(sample.id)
    return ExportReport(root, case_id, written, warnings)


def _hu_int16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), -32768, 32767).astype(np.int16)

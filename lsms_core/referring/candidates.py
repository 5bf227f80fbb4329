"""Every lesion the network sees on a slice, with the facts a radiologist would state about it.

Candidates are the connected regions of the network's text-free lesion map (the ``aux_heads`` channel
that is trained on every lesion of a slice whatever the words say); for a network without that head, the
regions of its referring map at a lower threshold (the words then still shape which regions appear, so
such candidates are fewer and less reliable; the engine says which source it used). Each candidate gets
the facts of ``lsms_core.data.facts.slice_facts`` (long/short axis, area, density against the liver
around it, lobe and segment estimate, anterior/posterior, shape, boundary, dome/hilum/capsule), measured
against the network's liver map, its mean HU, and the network's referring score: the peak of the
text-conditioned probability over the region. The peak, not the mean: a lesion map region on real CT
often holds some liver around the lesion, which dilutes the mean of the lesion the words name. Measured
with the demo weights and the resolver's weights: one-slice hit on 3D-IRCADb 1.7's tumour slices 0.786
(mean) -> 0.857 (peak; upper decile 0.833); a generated tuning set unchanged (0.752 both). Over a
whole volume the peak saturates on several regions; they then tie on the network's side, and the facts,
then size, decide (the resolver reports the tie as ambiguous).
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

import numpy as np

from lsms_core.measure import RING_WIDTH_MM

#: a region smaller than this on the slice is noise, not a lesion a radiologist would name
MIN_AREA_MM2 = 12.0
LESION_THRESHOLD = 0.5
FALLBACK_THRESHOLD = 0.3
LIVER_THRESHOLD = 0.5
#: a candidate's density is its confident core (lesion probability at least this) against a ring around
#: the region that leaves out whatever the lesion map finds at all lesion-like (above RING_EXCLUDE)
CORE_PROBABILITY = 0.8
RING_EXCLUDE = 0.2
MIN_RING_PIXELS = 5


@dataclass
class Candidate:
    """One lesion the network sees. Its region is kept as a crop (``crop`` at ``origin`` within ``shape``):
    a volume run finds dozens of candidates, and a full-volume mask each would cost gigabytes."""

    number: int  # 1-based, as drawn on the image (largest first)
    mask: InitVar[np.ndarray | None]  # bool (H, W) or (K, H, W); stored cropped
    slice_index: int  # the slice its facts are measured on (the largest cross-section), within the run
    facts: object  # lsms_core.data.facts.LesionFacts
    mean_hu: float
    net_score: float = 0.0  # peak referring probability over the region, in [0, 1]
    fact_score: float = 0.0  # how well the expression's words fit the facts, in [0, 1]
    score: float = 0.0
    unmet: list[str] = field(default_factory=list)  # words its facts contradict
    slices: tuple[int, int] | None = None  # first and last slice of a 3-D region (volume indices)
    volume_ml: float | None = None
    crop: np.ndarray = field(default=None, repr=False)
    origin: tuple[int, ...] = ()
    shape: tuple[int, ...] = ()

    def __post_init__(self, mask):
        if mask is not None:
            self.crop, self.origin, self.shape = crop_region(np.asarray(mask, dtype=bool))

    @property
    def region(self) -> tuple[slice, ...]:
        return tuple(slice(o, o + n) for o, n in zip(self.origin, self.crop.shape, strict=True))

    @property
    def full_mask(self) -> np.ndarray:
        """The region on the run's grid (allocates one mask of the run's shape)."""
        out = np.zeros(self.shape, bool)
        out[self.region] = self.crop
        return out

    def as_run(self) -> Candidate:
        """A one-slice candidate as a one-slice run: (1, H, W)."""
        if self.crop.ndim == 3:
            return self
        self.crop, self.origin, self.shape = self.crop[None], (0, *self.origin), (1, *self.shape)
        return self

    def on_slice(self, k: int) -> np.ndarray:
        """The region's (H, W) cross-section on run slice ``k`` (2-D candidates: their own slice)."""
        if self.crop.ndim == 2:
            return self.full_mask
        out = np.zeros(self.shape[1:], bool)
        z = k - self.origin[0]
        if 0 <= z < self.crop.shape[0]:
            out[self.region[1:]] = self.crop[z]
        return out

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), corners inclusive, of the region on its measured slice."""
        m = self.on_slice(self.slice_index)
        rows, cols = np.nonzero(m)
        return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())

    def summary(self) -> dict:
        f = self.facts
        d = {"number": self.number, "slice": self.slice_index, "long_axis_mm": round(f.long_mm, 1),
             "short_axis_mm": round(f.short_mm, 1), "area_mm2": round(f.area_mm2, 1), "mean_hu": round(self.mean_hu, 1),
             "density": f.density, "lobe": f.lobe, "segment": f.segment, "ap": f.ap, "shape": f.shape,
             "boundary": f.boundary, "near": list(f.near), "net_score": round(self.net_score, 3),
             "fact_score": round(self.fact_score, 3), "score": round(self.score, 3), "unmet": list(self.unmet),
             "box": list(self.box)}
        if self.slices is not None:
            d["slices"] = list(self.slices)
            d["volume_ml"] = None if self.volume_ml is None else round(self.volume_ml, 2)
        return d


def crop_region(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]]:
    """(the mask's bounding-box crop, the crop's origin, the mask's shape); an empty mask keeps one voxel."""
    idx = np.nonzero(mask)
    if not idx[0].size:
        return np.zeros((1,) * mask.ndim, bool), (0,) * mask.ndim, mask.shape
    lo = tuple(int(i.min()) for i in idx)
    hi = tuple(int(i.max()) + 1 for i in idx)
    return mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].copy(), lo, mask.shape


def _lobe_from_side(facts, image_hu: np.ndarray) -> None:
    """Without a liver map no segment can be estimated; the side of the body's midline still tells the
    lobe to the accuracy the words "right lobe" / "left lobe" need (left-lobe lesions lie left of it)."""
    from lsms_core.measure import body_midline_col

    if facts.lobe is None:
        mid = body_midline_col(image_hu)
        if mid is not None:
            facts.lobe = "right" if facts.centroid[1] < mid else "left"


def _core_density(facts, image_hu: np.ndarray, region: np.ndarray, lesion_probs: np.ndarray,
                  liver: np.ndarray | None, spacing: tuple[float, float]) -> None:
    """Density of a lesion-map region measured as a reader would: its confident core against liver that
    is no part of any lesion. The generator's rule (the region's median against a ring around it) misreads
    network regions both ways: on real CT the region at 0.5 often covers only the middle of a large tumour,
    so its ring lies on the tumour's own rim (3D-IRCADb 1.7's hypodense tumour read iso on most of its
    slices); on generated slices a region wider than its lesion mixes in liver. Measured with the demo
    weights (both looks) on the lesion each expression names, where a candidate found it: the density word
    agreed with the generator's for 86.7 % of a tuning set's lesions (seed 5151) against 83.9 %, and the
    tumour read hypo on 77.8 % of 3D-IRCADb 1.7's tumour slices against 42.9 %; one-slice hit there 0.865
    -> 0.944, on the tuning set 0.810 -> 0.808 (one expression of 468). The real CT's misses are where this
    rule was found, so its figure after the change is not an independent test.
    Leaves the facts as measured when no liver is left to compare with within 20 mm."""
    from lsms_core.measure import classify_density, ring_mask

    # The ring widens (5, 10, 20 mm) until it reaches liver beyond what the lesion map calls lesion-like.
    for ring_mm in (RING_WIDTH_MM, 2 * RING_WIDTH_MM, 4 * RING_WIDTH_MM):
        margin = int(np.ceil(ring_mm / min(spacing))) + 3
        rows, cols = np.nonzero(region)
        box = (slice(max(0, rows.min() - margin), rows.max() + margin + 1),
               slice(max(0, cols.min() - margin), cols.max() + margin + 1))
        reg, probs, img = region[box], np.asarray(lesion_probs[box], dtype=np.float32), image_hu[box]
        exclude = (probs > RING_EXCLUDE) & ~reg
        ring = ring_mask(reg, spacing, ring_mm, within=None if liver is None else liver[box], exclude=exclude)
        if ring.sum() >= MIN_RING_PIXELS:
            break
    else:
        return
    core = reg & (probs >= CORE_PROBABILITY)
    if core.sum() < 6:
        core = reg
    diff = float(np.median(img[core]) - np.median(img[ring]))
    facts.density, facts.density_diff_hu = classify_density(diff), diff


def _regions(mask: np.ndarray, min_pixels: int) -> list[np.ndarray]:
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")
    return [lab == i + 1 for i in order if sizes[i] >= min_pixels]


def slice_candidates(image_hu: np.ndarray, probs: np.ndarray, lesion_probs: np.ndarray | None,
                     liver_probs: np.ndarray | None, spacing: tuple[float, float], *, z_frac: float | None = None,
                     slice_index: int = 0) -> tuple[list[Candidate], str]:
    """Candidates on one slice, and which map they came from ("lesion map" or "referring map")."""
    from lsms_core.data.facts import slice_facts

    source = "lesion map" if lesion_probs is not None else "referring map at a lower threshold"
    region_map = lesion_probs > LESION_THRESHOLD if lesion_probs is not None else probs > FALLBACK_THRESHOLD
    min_pixels = max(6, int(np.ceil(MIN_AREA_MM2 / (spacing[0] * spacing[1]))))
    regions = _regions(region_map, min_pixels)
    if not regions:
        return [], source
    liver = liver_probs > LIVER_THRESHOLD if liver_probs is not None else None
    if liver is not None:
        liver = liver | region_map  # a lesion is part of the liver it sits in
    masks = {f"c{i + 1}": m for i, m in enumerate(regions)}
    facts = {f.lesion_id: f for f in slice_facts(image_hu, masks, spacing, liver=liver, z_frac=z_frac)}
    out = []
    for key, m in masks.items():
        if key not in facts:
            continue  # too small to measure
        _lobe_from_side(facts[key], image_hu)
        if lesion_probs is not None:
            _core_density(facts[key], image_hu, m, lesion_probs, liver, spacing)
        out.append(Candidate(len(out) + 1, m, slice_index, facts[key], float(np.mean(image_hu[m])),
                             net_score=float(probs[m].max())))
    return out, source


def volume_candidates(volume_hu: np.ndarray, probs: np.ndarray, lesion_probs: np.ndarray | None,
                      liver_probs: np.ndarray | None, spacing_zyx: tuple[float, float, float],
                      slice_offset: int = 0) -> tuple[list[Candidate], str]:
    """3-D candidates over a run of consecutive slices: connected regions of the lesion map in 3-D, each
    measured on its largest cross-section (facts), scored over the whole region."""
    from lsms_core.data.facts import slice_facts

    source = "lesion map" if lesion_probs is not None else "referring map at a lower threshold"
    region_map = lesion_probs > LESION_THRESHOLD if lesion_probs is not None else probs > FALLBACK_THRESHOLD
    sz, sy, sx = spacing_zyx
    min_pixels = max(6, int(np.ceil(MIN_AREA_MM2 / (sy * sx))))
    liver = liver_probs > LIVER_THRESHOLD if liver_probs is not None else None
    z_fracs = _liver_z_fractions(liver) if liver is not None else [None] * len(volume_hu)
    from scipy import ndimage

    out: list[Candidate] = []
    shape = region_map.shape
    lab, n, origin = _label_within_box(region_map)
    if n == 0:
        return [], source
    lesion_map = region_map if liver is not None else None  # only the liver check reads it again, so
    del region_map  # without a liver map no second full-volume mask is held while candidates are built
    sizes = np.zeros(n + 1, np.int64)
    for plane in lab:  # per slice: bincount of the whole array would cast it to a 64-bit temporary
        sizes += np.bincount(plane.ravel(), minlength=n + 1)
    sizes = sizes[1:]
    boxes = ndimage.find_objects(lab)
    for i in np.argsort(-sizes, kind="stable"):
        local = boxes[i]
        crop = lab[local] == i + 1
        box = tuple(slice(b.start + o, b.stop + o) for b, o in zip(local, origin, strict=True))
        areas = crop.reshape(len(crop), -1).sum(1)
        if areas.max() < min_pixels:
            continue
        kz = int(np.argmax(areas))
        k = kz + box[0].start
        section = np.zeros(volume_hu.shape[1:], bool)
        section[box[1:]] = crop[kz]
        live = liver[k] | lesion_map[k] if liver is not None else None
        found = slice_facts(volume_hu[k], {"c": section}, (sy, sx), liver=live, z_frac=z_fracs[k])
        if not found:
            continue
        _lobe_from_side(found[0], volume_hu[k])
        if lesion_probs is not None:
            _core_density(found[0], volume_hu[k], section, lesion_probs[k], live, (sy, sx))
        ks = np.nonzero(areas)[0] + box[0].start
        c = Candidate(len(out) + 1, None, k, found[0], _masked_mean(volume_hu[box], crop),
                      net_score=_masked_max(probs[box], crop),
                      slices=(int(ks[0]) + slice_offset, int(ks[-1]) + slice_offset),
                      volume_ml=float(crop.sum()) * sz * sy * sx / 1000.0,
                      crop=crop, origin=tuple(b.start for b in box), shape=shape)
        out.append(c)
    return out, source


def _masked_max(values: np.ndarray, mask: np.ndarray) -> float:
    """Largest of ``values`` under ``mask``, slice by slice (no copy of a large region's values)."""
    peaks = [float(v[m].max()) for v, m in zip(values, mask, strict=True) if m.any()]
    return max(peaks) if peaks else float("nan")


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values`` under ``mask``, slice by slice (a region as large as the volume never needs a
    copy of all its values at once)."""
    total, count = 0.0, 0
    for v, m in zip(values, mask, strict=True):
        picked = v[m]
        total += float(picked.sum(dtype=np.float64))
        count += picked.size
    return total / count if count else float("nan")


def _label_within_box(region_map: np.ndarray) -> tuple[np.ndarray, int, tuple[int, ...]]:
    """3-D connected regions of ``region_map``, labelled only inside the box that holds any of it, in the
    smallest integer type that fits (uint16 unless there are more regions): a full-volume int32 label
    array was 1.2 GB on 512x512x300. Returns (labels of the box, count, the box's origin)."""
    from scipy import ndimage

    bounds = []
    for axis in range(region_map.ndim):
        others = tuple(a for a in range(region_map.ndim) if a != axis)
        hit = np.flatnonzero(region_map.any(axis=others))
        if hit.size == 0:
            return np.zeros((0,) * region_map.ndim, np.uint16), 0, (0,) * region_map.ndim
        bounds.append(slice(int(hit[0]), int(hit[-1]) + 1))
    inside = region_map[tuple(bounds)]
    try:
        lab, n = ndimage.label(inside, output=np.uint16)
    except RuntimeError:  # more than 65535 regions
        lab, n = ndimage.label(inside, output=np.int32)
    return lab, int(n), tuple(b.start for b in bounds)


def _liver_z_fractions(liver: np.ndarray) -> list[float | None]:
    """Per slice, 0 at the liver's top (the dome) to 1 at its lowest slice, when the run shows both ends;
    slices run towards the head with the index (the Volume convention)."""
    present = np.nonzero(liver.reshape(len(liver), -1).sum(1) > 50)[0]
    if len(present) < 3 or present[0] == 0 or present[-1] == len(liver) - 1:
        return [None] * len(liver)  # the run cuts the liver: where its dome is cannot be told
    top, bottom = present[-1], present[0]
    return [float(np.clip((top - k) / max(1, top - bottom), 0.0, 1.0)) for k in range(len(liver))]

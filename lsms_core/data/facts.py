"""What can honestly be said about each lesion on a slice, measured from masks (and known facts, if any).

``slice_facts`` turns the lesion masks of one slice into :class:`LesionFacts`: long/short axis in mm,
density relative to the surrounding liver, lobe and Couinaud segment (from a segment map, or estimated
from the lesion's position within the liver), shape and boundary from the mask and the image, and
location words (dome, hilum, subcapsular, anterior/posterior). Synthetic data adds what only the
generator knows (lesion type, enhancement pattern). ``expressions.py`` turns facts into words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsms_core.data.vocabulary import LOBE_OF_SEGMENT
from lsms_core.data.vocabulary import SEGMENTS as SEGMENT_NAMES
from lsms_core.measure import MeasureError, body_midline_col, measure_2d, relative_density, ring_mask

#: lesions smaller than this on a slice are not referred to (a few pixels at a lesion's pole)
MIN_LONG_AXIS_MM = 3.0
MIN_PIXELS = 6


@dataclass
class LesionFacts:
    lesion_id: str
    long_mm: float
    short_mm: float
    area_mm2: float
    centroid: tuple[float, float]  # (row, col) px
    centroid_mm: tuple[float, float]  # (row, col) mm from the image corner
    density: str | None = None  # hypo | iso | hyper, relative to the liver around it
    density_diff_hu: float | None = None
    lobe: str | None = None  # right | left | caudate
    segment: str | None = None  # Couinaud I..VIII
    segment_estimated: bool = False
    shape: str | None = None  # round | oval | lobulated | irregular
    boundary: str | None = None  # clear | blurred
    lesion_type: str | None = None  # cyst | hemangioma | hcc | metastasis | fnh
    enhancement: str | None = None  # a phrase, e.g. "with rim enhancement"
    calcified: bool = False
    near: list[str] = field(default_factory=list)  # dome | hilum | capsule
    ap: str | None = None  # anterior | posterior (within the liver on this slice)

    def attributes(self) -> dict[str, Any]:
        """The manifest's ``attributes`` for this lesion (only what is known)."""
        d: dict[str, Any] = {
            "diameter_mm": round(self.long_mm, 1),
            "short_axis_mm": round(self.short_mm, 1),
            "area_mm2": round(self.area_mm2, 1),
        }
        for key in ("density", "lobe", "segment", "shape", "boundary", "lesion_type", "enhancement", "ap"):
            val = getattr(self, key)
            if val is not None:
                d[key] = val
        if self.density_diff_hu is not None:
            d["density_diff_hu"] = round(self.density_diff_hu, 1)
        if self.segment is not None:
            d["segment_estimated"] = self.segment_estimated
        if self.calcified:
            d["calcification"] = True
        if self.near:
            d["near"] = list(self.near)
        return d


def shape_of(mask: np.ndarray, long_mm: float, short_mm: float, spacing) -> str | None:
    """round / oval / lobulated / irregular from elongation and solidity; None when too few pixels to tell."""
    from skimage.measure import regionprops

    if long_mm / min(spacing) < 6:
        return None
    props = regionprops(mask.astype(np.uint8))
    if not props:
        return None
    solidity = float(props[0].solidity)
    if solidity < 0.82:
        return "irregular"
    if solidity < 0.92:
        return "lobulated"
    return "round" if short_mm / long_mm >= 0.8 else "oval"


def boundary_of(image: np.ndarray, mask: np.ndarray, spacing, within=None) -> str | None:
    """clear / blurred from how much of the lesion-to-liver contrast happens across the edge itself.

    None when the lesion is too small or too close to the liver's density for an edge to be judged.
    """
    from scipy import ndimage

    if mask.sum() < 30:
        return None
    core = ndimage.binary_erosion(mask, iterations=2)
    if core.sum() < 5:
        return None
    ring = ring_mask(mask, spacing, 5.0, within=within)
    near_out = ring_mask(mask, spacing, 1.6 * max(spacing), within=within)
    edge_in = mask & ~ndimage.binary_erosion(mask)
    if ring.sum() < 5 or near_out.sum() < 3:
        return None
    full = float(np.median(image[core]) - np.median(image[ring & ~near_out] if (ring & ~near_out).any() else image[ring]))
    if abs(full) < 20:
        return None
    step = float(np.median(image[edge_in]) - np.median(image[near_out]))
    return "clear" if step / full >= 0.45 else "blurred"


def estimate_ivc(image: np.ndarray, spacing: tuple[float, float], midline_col: float) -> tuple[float, float] | None:
    """Approximate (row, col) of the inferior vena cava: 20 mm in front of the vertebral body and 22 mm to the
    patient's right of the midline. The vertebral body is the largest bone (> 400 HU) centred within 10 mm of
    the midline (the aorta, even when bright, sits further left). None when no vertebra is found."""
    from scipy import ndimage

    band = int(round(12.0 / spacing[1]))
    c0, c1 = max(0, int(midline_col) - band), int(midline_col) + band + 1
    bone = np.zeros(image.shape, bool)
    bone[:, c0:c1] = image[:, c0:c1] > 400
    lab, n = ndimage.label(bone)
    best = None
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        m = lab[sl] == i
        cc = np.nonzero(m)[1].mean() + sl[1].start
        if abs(cc - midline_col) * spacing[1] < 10.0 and (best is None or m.sum() > best[0]):
            best = (int(m.sum()), sl[0].start)
    if best is None or best[0] * spacing[0] * spacing[1] < 150.0:  # < 1.5 cm^2 is not a vertebral body
        return None
    return best[1] - 20.0 / spacing[0], midline_col - 22.0 / spacing[1]


def estimate_segment(centroid: tuple[float, float], liver2d: np.ndarray, col_mm: float, midline_col: float,
                     z_frac: float | None, ivc: tuple[float, float] | None = None,
                     row_mm: float | None = None) -> str | None:
    """Approximate Couinaud segment from position alone (no vessel masks).

    With an IVC position: the hepatic-vein planes fan out from the IVC (right hepatic vein about 20 degrees
    anterior of patient-right, middle about 66, left about 118), which is how Couinaud's segments are
    defined. Without one: Cantlie's line 20 mm to the patient's right of the body midline, the falciform
    ligament 25 mm to its left, and the right lobe's anterior/posterior halves split at the middle of the
    liver's rows. Superior/inferior: above or below the portal plane, ``z_frac`` < 0.45. Columns run patient
    right -> left; rows anterior -> posterior.
    """
    if not liver2d.any():
        return None
    sup = z_frac is None or z_frac < 0.45
    if ivc is not None:
        rmm = col_mm if row_mm is None else row_mm
        psi = np.degrees(np.arctan2(-(centroid[0] - ivc[0]) * rmm, -(centroid[1] - ivc[1]) * col_mm))
        if psi < -108.0:  # behind and left of the IVC: the posterior part of segment II
            psi += 360.0
        if psi < 20.0:
            return "VII" if sup else "VI"
        if psi < 66.0:
            return "VIII" if sup else "V"
        if psi < 118.0:
            return "IV"
        return "II" if sup else "III"
    dx = (centroid[1] - midline_col) * col_mm  # > 0: towards the patient's left
    if dx >= 25.0:
        return "II" if sup else "III"
    if dx >= -20.0:
        return "IV"
    c = int(round(centroid[1]))
    rows = np.nonzero(liver2d[:, max(0, c - 3): c + 4].any(axis=1))[0]
    if rows.size == 0:
        rows = np.nonzero(liver2d.any(axis=1))[0]
    mid = 0.5 * (rows.min() + rows.max())
    if centroid[0] < mid:
        return "VIII" if sup else "V"
    return "VII" if sup else "VI"


def slice_facts(
    image: np.ndarray,
    masks: dict[str, np.ndarray],
    spacing: tuple[float, float],
    *,
    liver: np.ndarray | None = None,
    segments: np.ndarray | None = None,
    z_frac: float | None = None,
    hilum: tuple[float, float] | None = None,
    known: dict[str, dict] | None = None,
) -> list[LesionFacts]:
    """Facts for every lesion visible on one slice (2D masks keyed by lesion id), in the order given.

    ``segments``: Couinaud map (1..8) when the anatomy is known (synthetic data); otherwise the segment is
    estimated from the lesion's position relative to the body midline and within ``liver``. ``z_frac``: 0 at the liver's
    dome, 1 at its inferior tip. ``hilum``: (row, col) of the portal bifurcation if known. ``known``: per
    lesion id, facts only a generator knows (lesion_type, enhancement, boundary, calcified).
    """
    image = np.asarray(image, dtype=np.float32)
    known = known or {}
    visible = {lid: np.asarray(m) != 0 for lid, m in masks.items()}
    visible = {lid: m for lid, m in visible.items() if m.sum() >= MIN_PIXELS}
    all_lesions = np.zeros(image.shape, bool)
    for m in visible.values():
        all_lesions |= m
    liver_rows = None
    midline = body_midline_col(image) if segments is None else None
    ivc = estimate_ivc(image, spacing, midline) if midline is not None and liver is not None else None
    if liver is not None:
        liver = np.asarray(liver) != 0
        rows = np.nonzero(liver.any(axis=1))[0]
        liver_rows = (rows.min(), rows.max()) if rows.size else None
    out: list[LesionFacts] = []
    # Everything local is measured on a crop around the lesion (rings reach 5 mm): a 512 slice per lesion
    # would cost ten times as much.
    margin = int(np.ceil(8.0 / min(spacing))) + 3
    for lid, m_full in visible.items():
        rr_, cc_ = np.nonzero(m_full)
        r0, c0 = max(0, rr_.min() - margin), max(0, cc_.min() - margin)
        box = (slice(r0, rr_.max() + margin + 1), slice(c0, cc_.max() + margin + 1))
        m, img_c = m_full[box], image[box]
        liver_c = None if liver is None else liver[box]
        try:
            meas = measure_2d(m, spacing)
        except MeasureError:
            continue
        if meas.long_axis.length_mm < MIN_LONG_AXIS_MM:
            continue
        cr, cc = meas.centroid[0] + r0, meas.centroid[1] + c0
        f = LesionFacts(lid, meas.long_axis.length_mm, meas.short_axis.length_mm, meas.area_mm2, (cr, cc),
                        (cr * spacing[0], cc * spacing[1]))
        others = all_lesions[box] & ~m
        try:
            den = relative_density(img_c, m, spacing, organ_mask=liver_c, exclude=others)
        except MeasureError:
            try:
                den = relative_density(img_c, m, spacing, exclude=others)
            except MeasureError:
                den = None
        if den is not None:
            f.density, f.density_diff_hu = den.label, den.difference_hu
        if segments is not None:
            vals = segments[box][m]
            vals = vals[vals > 0]
            if vals.size:
                f.segment = SEGMENT_NAMES[int(np.bincount(vals).argmax()) - 1]
        elif liver is not None and midline is not None:
            f.segment = estimate_segment((cr, cc), liver, spacing[1], midline, z_frac, ivc, row_mm=spacing[0])
            f.segment_estimated = f.segment is not None
        if f.segment:
            f.lobe = LOBE_OF_SEGMENT[f.segment]
        f.shape = shape_of(m, meas.long_axis.length_mm, meas.short_axis.length_mm, spacing)
        kn = known.get(lid, {})
        f.boundary = kn.get("boundary") or boundary_of(img_c, m, spacing, within=liver_c)
        f.lesion_type = kn.get("lesion_type")
        f.enhancement = kn.get("enhancement")
        f.calcified = bool(kn.get("calcified", False))
        if z_frac is not None and z_frac < 0.15 and f.segment in ("VII", "VIII", "IV", "II"):
            f.near.append("dome")
        if hilum is not None:
            d = np.min(np.hypot((rr_ - hilum[0]) * spacing[0], (cc_ - hilum[1]) * spacing[1]))
            if d < 15.0:
                f.near.append("hilum")
        if liver is not None:
            ring = ring_mask(m, spacing, 3.0)
            if ring.any() and float((ring & ~liver_c & ~all_lesions[box]).sum() / ring.sum()) > 0.15:
                f.near.append("capsule")
        if liver_rows is not None and liver_rows[1] > liver_rows[0]:
            rf = (cr - liver_rows[0]) / (liver_rows[1] - liver_rows[0])
            f.ap = "anterior" if rf < 0.33 else ("posterior" if rf > 0.67 else None)
        out.append(f)
    return out

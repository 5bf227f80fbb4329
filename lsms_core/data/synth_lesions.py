"""Synthetic CT lesions: their specification, how they are drawn and placed in the liver, and how a slice
paints them (shape, boundary, partial volume, calcifications, the enhancement pattern of each type).

Part of the synthetic CT generator (``lsms_core.data.synth``, whose docstring describes a case).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lsms_core.data.synth_labels import AORTA, LIVER, PORTAL_VEIN
from lsms_core.data.vocabulary import LESION_TYPES

# ---------------------------------------------------------------------------------------------- model

#: where a metastasis's rim begins (lesion units): hyperenhancing in the arterial phase, near-iso later
METASTASIS_RIM = 0.86


#: diameter range (mm) of each lesion kind
DIAMETER_RANGE_MM = {"cyst": (5, 80), "hemangioma": (8, 100), "hcc": (12, 100), "metastasis": (5, 55),
                     "fnh": (12, 60)}


def draw_diameter(rng: np.random.Generator, kind: str) -> float:
    """A lesion diameter (mm): log-uniform over the kind's whole range, tilted towards the small and medium
    lesions radiologists see most. (An earlier tilt drew from 0.75 of the log range only, which capped every
    kind at lo^0.25 hi^0.75 - no HCC above 59 mm, no cyst above 40 mm - and the network fragmented a real
    8 cm tumour it had never seen the like of. The medians are unchanged within 1 mm.)"""
    lo, hi = DIAMETER_RANGE_MM[kind]
    return float(np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * rng.uniform() ** 1.35))


@dataclass
class LesionSpec:
    """One liver lesion: an ellipsoid with a perturbed surface and a type-specific interior."""

    id: str
    kind: str  # one of LESION_TYPES
    center: tuple[float, float, float]  # x, y, z mm
    radii: tuple[float, float, float]  # mm along its own in-plane axes and z
    angle: float  # in-plane rotation, radians
    shape: str  # round | oval | lobulated | irregular (the designed 3D shape)
    boundary: str  # clear | blurred
    harmonics: list[tuple[int, float, float, float]] = field(default_factory=list)  # (k, amp, phase, twist)
    calcifications: list[tuple[float, float, float, float]] = field(default_factory=list)  # x, y, z, r mm
    hu_offset: float = 0.0  # per-lesion variation of its interior HU
    necrotic: bool = False

    @property
    def diameter_mm(self) -> float:
        return 2.0 * max(self.radii[0], self.radii[1])


class _Lesions:
    """The lesion part of ``_CaseModel`` (a mixin: the case's parameters are drawn in its ``__init__``)."""

    def _lesion_from_dict(self, d: dict, i: int, rng) -> LesionSpec:
        spec = self._make_lesion(rng, d.get("kind", "metastasis"), d.get("diameter_mm", 20.0), i)
        if "uvt" in d:
            u, v, t = d["uvt"]
            x, y = self.uv_to_xy(u, v)
            spec.center = (x, y, self.z_dome - t * self.L)
        for key in ("shape", "boundary"):
            if key in d:
                setattr(spec, key, d[key])
        if "shape" in d:
            spec.harmonics = _harmonics(rng, d["shape"])
            if d["shape"] == "round":
                r = spec.radii[0]
                spec.radii = (r, r, r)
        return spec

    def _make_lesion(self, rng, kind: str, diameter: float, i: int) -> LesionSpec:
        shape_p = {"cyst": [0.6, 0.35, 0.05, 0.0], "hemangioma": [0.3, 0.3, 0.35, 0.05],
                   "hcc": [0.3, 0.3, 0.3, 0.1], "metastasis": [0.15, 0.2, 0.35, 0.3], "fnh": [0.35, 0.35, 0.3, 0.0]}
        shape = str(rng.choice(["round", "oval", "lobulated", "irregular"], p=shape_p[kind]))
        r = diameter / 2.0
        if shape == "round":
            radii = (r, r * rng.uniform(0.92, 1.0), r * rng.uniform(0.85, 1.0))
        else:
            radii = (r, r * rng.uniform(0.6, 0.85), r * rng.uniform(0.6, 1.0))
        blurred_p = {"cyst": 0.0, "hemangioma": 0.15, "hcc": 0.45, "metastasis": 0.5, "fnh": 0.3}[kind]
        boundary = "blurred" if rng.uniform() < blurred_p else "clear"
        calc_p = {"cyst": 0.02, "hemangioma": 0.08, "hcc": 0.06, "metastasis": 0.18, "fnh": 0.0}[kind]
        spec = LesionSpec(f"l{i + 1}", kind, (0.0, 0.0, 0.0), radii, rng.uniform(0, np.pi), shape, boundary,
                          _harmonics(rng, shape), [], rng.normal(0, 6), kind == "metastasis" and r > 18)
        if rng.uniform() < calc_p and r > 5:
            for _ in range(int(rng.integers(1, 4))):
                spec.calcifications.append((*rng.uniform(-0.5, 0.5, 3), rng.uniform(1.0, 2.5)))
        return spec

    def _place_lesions(self, rng, n: int) -> None:
        kind = str(rng.choice(LESION_TYPES, p=[0.25, 0.2, 0.15, 0.3, 0.1]))
        z_lo, z_hi = self.origin_z, self.z_top
        for i in range(n):
            # Metastases come in groups; otherwise lesions of mixed kinds.
            if i > 0 and not (kind == "metastasis" and rng.uniform() < 0.8):
                kind = str(rng.choice(LESION_TYPES, p=[0.35, 0.25, 0.1, 0.2, 0.1]))
            diameter = draw_diameter(rng, kind)
            if n > 3:
                diameter = min(diameter, 45.0)
            spec = self._make_lesion(rng, kind, diameter, i)
            placed = False
            for _round in range(3):  # a lesion that fits nowhere in the scanned liver is made smaller
                r = max(spec.radii[0], spec.radii[1])
                for _attempt in range(40):
                    lo = max(z_lo, self.z_dome - 0.95 * self.L) + 0.3 * r
                    hi = min(z_hi, self.z_dome - 0.03 * self.L)
                    z = rng.uniform(lo, hi) if hi > lo else 0.5 * (max(z_lo, hi) + min(z_hi, lo))
                    if self.lesions and hi > lo and rng.uniform() < 0.5:
                        # lesions cluster: often at the level of one already placed, so slices hold several
                        z = float(np.clip(self.lesions[int(rng.integers(len(self.lesions)))].center[2]
                                          + rng.normal(0, 8), lo, hi))
                    t = self.t_of(z)
                    margin = min(0.5, 0.6 * r / (self.ai * 0.5))
                    p = self._liver_point(rng, t, margin)
                    if p is None:
                        continue
                    x, y = self.uv_to_xy(*p)
                    if all(math.dist((x, y, z), o.center) > r + max(o.radii) + 3.0 for o in self.lesions):
                        spec.center = (x, y, z)
                        self.lesions.append(spec)
                        placed = True
                        break
                if placed:
                    break
                spec.radii = tuple(0.7 * q for q in spec.radii)

    def _paint_lesion(self, hu, les, domain, z, spec: LesionSpec, idx: int, texm):
        cx, cy, cz = spec.center
        rx, ry, rz = spec.radii
        dz = (z - cz) / rz
        half = 0.5 * self.th / rz  # the slab the slice integrates over, in lesion units
        amp = sum(abs(h[1]) for h in spec.harmonics)
        if abs(dz) - half >= 1 + amp:
            return
        b = self._box(cx, cy, max(rx, ry) * (1 + amp) + 4)
        if b is None:
            return
        box, xx, yy = b
        dx, dy = xx - cx, yy - cy
        ca, sa = math.cos(spec.angle), math.sin(spec.angle)
        px, py = (ca * dx + sa * dy) / rx, (-sa * dx + ca * dy) / ry
        theta = np.arctan2(py, px)
        p2 = px * px + py * py

        def rho_at(d):
            mod = 1.0
            for kk, a, ph, tw in spec.harmonics:
                mod = mod + a * np.cos(kk * theta + ph + tw * d)
            return np.sqrt(p2 + d * d) / mod

        rho = rho_at(dz)
        dom = domain[box]
        # The mask: the lesion at the slice's centre plane, as far as it differs from the liver (an
        # annotator draws what is seen; a rim painted iso to the liver is not seen).
        inside = (rho <= self._labelled_extent(spec)) & dom
        r_mm = 0.5 * (rx + ry)
        width = (3.0 + 0.08 * r_mm) if spec.boundary == "blurred" else 0.5 * self.sp

        def alpha_at(r):
            return np.clip((1.0 - r) * r_mm / width + 0.5, 0.0, 1.0)

        # Partial volume along z: the image averages the lesion over the slice thickness, so its poles
        # fade on thick slices (and a lesion just outside the centre plane can show faintly, unlabelled).
        alpha = (alpha_at(rho_at(dz - half * 0.67)) + alpha_at(rho) + alpha_at(rho_at(dz + half * 0.67))) / 3
        alpha = alpha * dom
        if not alpha.any():
            return
        val = self._lesion_hu(spec, rho, theta, texm[box], dz)
        sub = hu[box]
        sub[...] = sub * (1 - alpha) + val * alpha
        for ox, oy, oz, cr in spec.calcifications:
            qx, qy, qz = cx + ox * rx, cy + oy * ry, cz + oz * rz
            if abs(z - qz) < cr:
                rr = math.sqrt(cr * cr - (z - qz) ** 2)
                m = ((xx - qx) ** 2 + (yy - qy) ** 2 < rr * rr) & inside
                sub[m] = 250 + 300 * cr  # bigger calcifications are denser after partial-volume blur
        les[box][inside] = idx

    def _labelled_extent(self, spec: LesionSpec) -> float:
        """The radius (in lesion units) that the label covers: the whole lesion, except a metastasis after
        the arterial phase, whose rim is painted within a few HU of the liver (it enhances like the liver)
        and so is part of no visible lesion; at its poles, where the slice cuts only the rim, nothing is."""
        if spec.kind == "metastasis" and self.phase in ("portal venous", "delayed"):
            return METASTASIS_RIM
        return 1.0

    def _lesion_hu(self, spec: LesionSpec, rho, theta, tex, dz) -> np.ndarray:
        """Interior HU of a lesion for this case's phase: the enhancement pattern of its type."""
        ph = self.phase
        liver = float(self.lut[LIVER])
        blood = float(self.lut[PORTAL_VEIN]) if ph != "arterial" else float(self.lut[AORTA]) * 0.8
        off = spec.hu_offset
        kind = spec.kind
        if kind == "cyst":
            return 6.0 + 0.5 * off + 3 * tex
        if kind == "hemangioma":
            base = 38.0 + off
            if ph == "non-contrast":
                return base + 3 * tex
            # peripheral nodular (globular) enhancement, filling in centripetally on later phases
            reach = {"arterial": 0.78, "portal venous": 0.42, "delayed": 0.12}[ph]
            g = 0.5 + 0.25 * np.cos(5 * theta + 2 * dz + spec.angle) + 0.25 * np.cos(9 * theta - 3 * dz + 2 * spec.angle)
            if ph == "arterial":
                enh = (rho > reach) & (g > 0.62)  # discontinuous globules along the rim
            else:
                enh = rho > reach + 0.35 * (1 - g)  # a nodular front filling in towards the centre
            fill = blood * (0.9 if ph != "delayed" else 0.75)
            return np.where(enh, fill, base + (liver - base) * (0.6 if ph == "delayed" else 0.15)) + 4 * tex
        if kind == "hcc":
            if ph == "non-contrast":
                return liver - 14 + off + 5 * tex
            if ph == "arterial":
                return liver + 38 + off + 14 * tex  # mosaic arterial hyperenhancement
            core = liver - 22 + off + 8 * tex  # washout
            capsule = rho > 0.9
            return np.where(capsule, liver + 18, core)
        if kind == "metastasis":
            core = liver - (22 if ph == "non-contrast" else 52) + off + 6 * tex
            if spec.necrotic:
                core = np.where(rho < 0.45, 18.0 + 4 * tex, core)
            if ph == "non-contrast":
                return core
            rim = rho > METASTASIS_RIM
            return np.where(rim, liver + (20 if ph == "arterial" else 2), core)
        # fnh: homogeneous arterial hyperenhancement, near-iso later, a central stellate scar
        scar = (rho < 0.22) | ((rho < 0.55) & (np.abs(np.sin(3 * theta + spec.angle)) < 0.12))
        body_hu = {"non-contrast": liver - 6, "arterial": liver + 50, "portal venous": liver + 6,
                   "delayed": liver + 1}[ph] + 0.4 * off + 3 * tex
        scar_hu = {"non-contrast": liver - 25, "arterial": liver - 35, "portal venous": liver - 35,
                   "delayed": liver + 15}[ph]
        return np.where(scar, scar_hu, body_hu)


def _harmonics(rng, shape: str) -> list[tuple[int, float, float, float]]:
    if shape in ("round", "oval"):
        return [(int(rng.integers(2, 4)), rng.uniform(0.0, 0.03), rng.uniform(0, 2 * np.pi), 0.0)]
    if shape == "lobulated":
        return [(int(rng.integers(3, 6)), rng.uniform(0.09, 0.16), rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1))]
    return [(int(rng.integers(3, 5)), rng.uniform(0.08, 0.14), rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1)),
            (int(rng.integers(6, 10)), rng.uniform(0.06, 0.1), rng.uniform(0, 2 * np.pi), rng.uniform(-2, 2)),
            (int(rng.integers(11, 16)), rng.uniform(0.03, 0.05), rng.uniform(0, 2 * np.pi), rng.uniform(-2, 2))]


"""Synthetic abdominal CT with liver lesions: 3D cases rendered slice by slice, reproducible from a seed.

A case is a small 3D anatomical model (body habitus, fat, muscle, spine and ribs, liver with right/left
lobes, hepatic and portal veins and Couinaud segments, spleen, kidneys, stomach, bowel, pancreas, aorta,
IVC, gallbladder, lung bases) plus a contrast phase and 1-6 liver lesions (cyst, hemangioma, HCC,
metastasis, FNH) with type- and phase-specific enhancement. Every structure is an implicit 3D shape, so
consecutive slices agree and a coronal reformat looks like a body; each slice is rendered independently
(labels -> HU by a per-case lookup table -> textures -> lesions -> partial-volume blur -> correlated noise).

Geometry (the Volume conventions): array [k, j, i] = (slice, row, col); rows run anterior -> posterior,
columns patient right -> left, k increases towards the head; x = patient left, y = posterior (LPS), mm.

Nothing here is a claim about real patients: sizes, HU values and enhancement patterns follow textbook
values (see DATA_CARD in ``write_synth_dataset``), the shapes are simplified and the noise is stationary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lsms_core.data.vocabulary import LESION_TYPES, SEGMENTS  # noqa: F401  (re-exported)
from lsms_core.errors import LSMSError

# ---------------------------------------------------------------------------------------------- labels
AIR, TABLE, TABLE_CORE, SKIN, FAT, MUSCLE, CORTEX, MARROW, LUNG, LIVER, HEPATIC_VEIN, PORTAL_VEIN = range(12)
SPLEEN, KIDNEY_CORTEX, KIDNEY_MEDULLA, STOMACH_WALL, STOMACH_FLUID, GAS, BOWEL_WALL, BOWEL_FLUID = range(12, 20)
STOOL, GALLBLADDER, AORTA, IVC, PANCREAS, CSF, VISCERAL_FAT, CALCIUM = range(20, 28)
N_LABELS = 28
ORGAN_NAMES = {
    LIVER: "liver", HEPATIC_VEIN: "hepatic vein", PORTAL_VEIN: "portal vein", SPLEEN: "spleen",
    KIDNEY_CORTEX: "kidney cortex", KIDNEY_MEDULLA: "kidney medulla", STOMACH_WALL: "stomach wall",
    STOMACH_FLUID: "stomach contents", GAS: "bowel gas", BOWEL_WALL: "bowel wall", BOWEL_FLUID: "bowel contents",
    STOOL: "stool", GALLBLADDER: "gallbladder", AORTA: "aorta", IVC: "inferior vena cava",
    PANCREAS: "pancreas", LUNG: "lung", CORTEX: "cortical bone", MARROW: "cancellous bone",
    MUSCLE: "muscle", FAT: "subcutaneous fat", VISCERAL_FAT: "visceral fat", SKIN: "skin", CSF: "spinal canal",
    TABLE: "table", TABLE_CORE: "table core", CALCIUM: "calcification",
}
#: Couinaud segments as label numbers 1..8 in the segment map (0 = not liver).
PHASES = ("non-contrast", "arterial", "portal venous", "delayed")

# Mean HU of each structure per phase (non-contrast, arterial, portal venous, delayed): textbook values.
_HU = {
    AIR: (-1000,) * 4, TABLE: (120,) * 4, TABLE_CORE: (-760,) * 4, SKIN: (35,) * 4, FAT: (-102,) * 4,
    VISCERAL_FAT: (-95,) * 4, MUSCLE: (48, 55, 60, 56), CORTEX: (720,) * 4, MARROW: (190,) * 4,
    LUNG: (-860,) * 4, LIVER: (58, 76, 110, 92), HEPATIC_VEIN: (40, 55, 165, 125),
    PORTAL_VEIN: (40, 125, 180, 130), SPLEEN: (47, 118, 122, 98), KIDNEY_CORTEX: (32, 185, 170, 135),
    KIDNEY_MEDULLA: (30, 75, 150, 145), STOMACH_WALL: (45, 95, 85, 70), STOMACH_FLUID: (14,) * 4,
    GAS: (-1000,) * 4, BOWEL_WALL: (42, 100, 90, 70), BOWEL_FLUID: (18,) * 4, STOOL: (-120,) * 4,
    GALLBLADDER: (8,) * 4, AORTA: (42, 310, 175, 120), IVC: (40, 85, 145, 118), PANCREAS: (45, 120, 100, 80),
    CSF: (15,) * 4, CALCIUM: (550,) * 4,
}
# Amplitude of the slowly varying texture (HU) per structure: organ heterogeneity, fat strands, stool.
_TEX = {FAT: 9.0, VISCERAL_FAT: 12.0, LIVER: 5.0, SPLEEN: 6.0, MUSCLE: 7.0, MARROW: 45.0, LUNG: 25.0,
        STOOL: 260.0, KIDNEY_CORTEX: 6.0, PANCREAS: 12.0, STOMACH_FLUID: 6.0, BOWEL_FLUID: 6.0, CORTEX: 120.0}


class SynthError(LSMSError):
    """Synthetic data cannot be made with the requested settings."""


# ---------------------------------------------------------------------------------------------- model


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


@dataclass
class SynthCase:
    """A rendered case: int16 HU volume, organ labels, lesion labels (1..n = lesions[i-1]), Couinaud map."""

    case_id: str
    seed: int
    ct: np.ndarray  # (K, N, N) int16 HU
    organs: np.ndarray  # (K, N, N) uint8 organ labels (see ORGAN_NAMES)
    lesions: np.ndarray  # (K, N, N) uint8 lesion labels
    segments: np.ndarray  # (K, N, N) uint8 Couinaud segment 1..8 inside the liver
    spacing: tuple[float, float, float]  # (x, y, z) mm, Volume order
    origin: tuple[float, float, float]
    phase: str
    lesion_specs: list[LesionSpec]
    params: dict
    t_slices: np.ndarray = None  # per slice: 0 at the liver's dome, 1 at its inferior tip
    hilum_rc: tuple[float, float] | None = None  # (row, col) of the portal bifurcation
    t_portal: float = 0.45

    @property
    def liver(self) -> np.ndarray:
        return (self.organs == LIVER) | (self.organs == HEPATIC_VEIN) | (self.lesions > 0) | (
            (self.organs == PORTAL_VEIN) & (self.segments > 0)
        )

    def volume(self):
        from lsms_core.volume import Volume

        return Volume(
            self.ct, self.spacing, self.origin, np.eye(3),
            meta={"modality": "CT", "series_description": f"synthetic abdomen, {self.phase} phase",
                  "synthetic": True, "seed": self.seed},
        )


def _smin(a: np.ndarray, b: np.ndarray, k: float = 10.0) -> np.ndarray:
    """Smooth minimum of two implicit fields (a soft union that gives anatomical, not geometric, joins)."""
    m = np.minimum(a, b)
    return m - np.log1p(np.exp(-k * np.abs(a - b))) / k


class _CaseModel:
    """All random choices of one case, drawn once; ``render(k)`` draws slice k."""

    def __init__(self, rng: np.random.Generator, size: int, n_slices: int, *, phase: str | None = None,
                 spacing_mm: float | None = None, thickness_mm: float | None = None,
                 lesions: list[dict] | None = None, n_lesions: int | None = None, seed: int = 0):
        self.rng = rng
        self.seed_base = int(seed)
        self.n = size
        self.k = n_slices
        # Pixel spacing of a 512 matrix is 0.6-0.9 mm; smaller matrices cover the same field of view.
        sp512 = spacing_mm if spacing_mm else rng.uniform(0.62, 0.9)
        self.fov = sp512 * 512
        self.sp = self.fov / size
        self.th = thickness_mm or float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0], p=[0.1, 0.25, 0.2, 0.15, 0.3]))
        self.phase = phase or str(rng.choice(PHASES, p=[0.15, 0.2, 0.5, 0.15]))
        if self.phase not in PHASES:
            raise SynthError("phase", f"must be one of {', '.join(PHASES)}, got {self.phase!r}")
        self.phase_i = PHASES.index(self.phase)
        # ---- body habitus: half-width a, half-depth b, fat thicknesses (mm)
        half = 0.5 * self.fov
        obese = rng.uniform(0, 1) ** 1.6
        # fat adds to the body around organs of ordinary size: obese bodies are larger, not fuller inside
        self.a = min(rng.uniform(120, 160) + 32 * obese, 0.47 * self.fov)
        self.b = min(self.a * rng.uniform(0.66, 0.82), 0.42 * self.fov)
        self.fat_ant = 8 + 38 * obese + rng.uniform(-3, 3)
        self.fat_lat = 6 + 30 * obese + rng.uniform(-3, 3)
        self.fat_post = 6 + 22 * obese + rng.uniform(-2, 2)
        self.wall = rng.uniform(7, 13)
        self.cx = rng.uniform(-0.04, 0.04) * self.fov
        self.cy = rng.uniform(-0.06, 0.04) * self.fov
        self.tilt = rng.uniform(-0.05, 0.05)
        self.p_ant, self.p_post = rng.uniform(2.0, 2.4), rng.uniform(2.8, 3.8)
        self.ai = self.a - self.fat_lat - self.wall  # inner cavity half-sizes for organ placement
        self.bi = self.b - 0.5 * (self.fat_ant + self.fat_post) - self.wall
        self.y_post = self.cy + self.b
        self.y_vb = self.y_post - self.fat_post - 84 + rng.uniform(-6, 6)  # vertebral body centre
        self.vb_r = (rng.uniform(19, 24), rng.uniform(15, 19))
        # ---- z: liver from its dome (t=0) to its inferior tip (t=1); the scan window covers part or all
        self.L = rng.uniform(145, 190)
        coverage = self.k * self.th
        self.z_dome = 0.0
        if coverage >= self.L * 1.1:
            t_top = rng.uniform(-0.12, 0.0)
        else:
            t_top = rng.uniform(-0.05, max(-0.05, 1.0 - coverage / self.L - 0.05))
        self.t_top = t_top
        self.z_top = self.z_dome - t_top * self.L  # z of slice k = K-1 (k grows towards the head)
        self.origin_z = self.z_top - (self.k - 1) * self.th
        # ---- contrast levels: a per-case lookup table from labels to HU (phase + individual variation)
        self.fatty = rng.uniform() < 0.1
        self.lut = np.zeros(N_LABELS, np.float32)
        for lab, vals in _HU.items():
            jitter = 0.0 if lab in (AIR, GAS, TABLE, TABLE_CORE) else rng.normal(0, 4 + 0.06 * abs(vals[self.phase_i]))
            self.lut[lab] = vals[self.phase_i] + jitter
        if self.fatty:  # steatosis: the liver falls below the spleen on every phase
            self.lut[LIVER] -= rng.uniform(25, 45)
        self.lut[CORTEX] = rng.uniform(500, 900)
        self.lut[MARROW] = rng.uniform(120, 260)
        self.oral_contrast = rng.uniform() < 0.3
        if self.oral_contrast:
            self.lut[BOWEL_FLUID] = rng.uniform(180, 320)
        if rng.uniform() < 0.25:
            self.lut[STOMACH_FLUID] = rng.uniform(150, 300) if self.oral_contrast else rng.uniform(-20, 40)
        self.tex_amp = np.zeros(N_LABELS, np.float32)
        for lab, amp in _TEX.items():
            self.tex_amp[lab] = amp
        if self.phase == "arterial":
            self.tex_amp[SPLEEN] = 30.0  # arciform enhancement of the spleen
        # ---- noise: dose and body size; smaller matrices average more photons per pixel
        self.noise_sd = rng.uniform(9, 18) * (1 + 0.5 * obese) * math.sqrt(size / 512)
        self.noise_corr = rng.uniform(0.6, 1.0)  # px (512 scale): the reconstruction kernel's blur
        self.pv_sigma = rng.uniform(0.45, 0.75) * (size / 512) ** 0.3 + 0.1 * (self.th >= 4)
        # ---- anatomy variation (inner-cavity normalised units, U: patient left +, V: posterior +)
        self.liver_right = (rng.uniform(-0.5, -0.38), rng.uniform(-0.1, 0.05), rng.uniform(0.5, 0.62),
                            rng.uniform(0.78, 0.95))
        self.liver_left = (rng.uniform(0.0, 0.22), rng.uniform(-0.55, -0.4), rng.uniform(0.35, 0.55),
                           rng.uniform(0.24, 0.34), rng.uniform(0.35, 0.6))  # ..., its lower end t
        self.ivc = (self.cx - rng.uniform(18, 26), self.y_vb - self.vb_r[1] - rng.uniform(14, 22))
        self.aorta = (self.cx + rng.uniform(8, 18), self.y_vb - self.vb_r[1] - rng.uniform(6, 14),
                      rng.uniform(10, 14))
        self.aortic_calc = [(rng.uniform(0, 2 * np.pi), rng.uniform(0, 1)) for _ in range(int(rng.integers(0, 5)))]
        deg = np.pi / 180
        self.vein_psi = (rng.uniform(12, 28) * deg, rng.uniform(58, 75) * deg, rng.uniform(108, 128) * deg)
        self.t_portal = rng.uniform(0.38, 0.5)
        self.spleen = (rng.uniform(0.55, 0.7), rng.uniform(0.25, 0.45), rng.uniform(0.16, 0.24),
                       rng.uniform(0.3, 0.42), rng.uniform(0.3, 0.7), rng.uniform(0.02, 0.15),
                       rng.uniform(0.55, 0.75))
        self.stomach = (rng.uniform(0.2, 0.45), rng.uniform(-0.35, -0.1), rng.uniform(0.22, 0.33),
                        rng.uniform(0.2, 0.3), rng.uniform(-0.6, 0.6), rng.uniform(0.0, 0.55),
                        rng.uniform(-0.4, 0.1))
        self.kidneys = []
        for side, t0 in ((-1, rng.uniform(0.52, 0.7)), (1, rng.uniform(0.42, 0.6))):
            self.kidneys.append((side, self.cx + side * rng.uniform(55, 75), self.y_vb + rng.uniform(-8, 12),
                                 rng.uniform(24, 30), rng.uniform(19, 24), side * rng.uniform(0.3, 0.7),
                                 t0, rng.uniform(95, 120) / self.L))
        self.gb = (rng.uniform() < 0.8, rng.uniform(0.5, 0.65), rng.uniform(14, 20), rng.uniform(20, 30))
        self.ribs = self._draw_ribs(rng)
        self.bowel = self._draw_bowel(rng)
        self.vessels = self._draw_liver_vessels(rng)
        self.lesions: list[LesionSpec] = []
        if lesions is not None:
            for i, d in enumerate(lesions):
                self.lesions.append(self._lesion_from_dict(d, i, rng))
        else:
            n_les = n_lesions if n_lesions is not None else int(rng.choice([1, 2, 3, 3, 4, 4, 5, 6]))
            self._place_lesions(rng, n_les)
        # ---- textures: coarse 3D noise upsampled per slice by fixed bilinear-ish weights
        nz = int(self.k * self.th / 24) + 3
        self.tex_low = rng.standard_normal((nz, 10, 10)).astype(np.float32)
        self.tex_mid = rng.standard_normal((nz * 3, 40, 40)).astype(np.float32)
        self.w_low_mid = _upsample_weights(10, 40)
        pos = np.clip((np.arange(size) + 0.5) * 40 / size - 0.5, 0, 39 - 1e-6)
        self._up_i0 = pos.astype(np.intp)
        self._up_f = (pos - self._up_i0).astype(np.float32)
        self.x0 = -0.5 * self.fov + 0.5 * self.sp  # x of column 0, y of row 0
        self._xs = (self.x0 + self.sp * np.arange(size)).astype(np.float32)  # x of columns = y of rows
        del half

    # ------------------------------------------------------------------ geometry helpers
    def z_of(self, k: int) -> float:
        return self.origin_z + k * self.th

    def t_of(self, z: float) -> float:
        return (self.z_dome - z) / self.L

    def uv_to_xy(self, u: float, v: float) -> tuple[float, float]:
        return self.cx + u * self.ai, self.cy + v * self.bi

    def _draw_ribs(self, rng) -> list[tuple]:
        ribs = []
        base = [-55, -25, 5, 35, 62, 88]  # degrees from patient-left lateral, + = posterior
        for side in (-1, 1):
            for j, a0 in enumerate(base):
                ribs.append((side, (a0 + rng.uniform(-8, 8)) * np.pi / 180, rng.uniform(0.25, 0.5),
                             0.55 + 0.12 * j + rng.uniform(-0.1, 0.1), rng.uniform(6, 13), rng.uniform(2.8, 4.2)))
        return ribs

    def _draw_bowel(self, rng) -> list[tuple]:
        """3D tube segments: (A xyz, B xyz, radius, kind) with kind colon | small."""
        tubes = []
        zL = lambda t: self.z_dome - t * self.L  # noqa: E731
        # hepatic flexure (patient right, under the liver tip), splenic flexure (left, high), transverse colon
        for u, v, t0, t1, r in ((-0.55, -0.2, 0.75, 1.25, rng.uniform(18, 25)),
                                (0.62, -0.05, 0.35, 0.95, rng.uniform(16, 22))):
            x, y = self.uv_to_xy(u, v)
            tubes.append(((x, y, zL(t0)), (x + rng.uniform(-15, 15), y + rng.uniform(-15, 15), zL(t1)), r, "colon"))
        xa, ya = self.uv_to_xy(-0.5, -0.55)
        xb, yb = self.uv_to_xy(0.55, -0.5)
        zt = zL(rng.uniform(0.85, 1.05))
        tubes.append(((xa, ya, zt), (xb, yb, zt + rng.uniform(-15, 15)), rng.uniform(17, 24), "colon"))
        # Small bowel and jejunal loops fill the anterior and left abdomen below the stomach; a thin patient
        # has more of them per unit of fat than an obese one (fewer visible fat gaps).
        for _ in range(int(rng.integers(22, 34))):
            u, v = rng.uniform(-0.45, 0.75), rng.uniform(-0.85, 0.35)
            x, y = self.uv_to_xy(u, v)
            t = rng.uniform(0.25, 1.3)
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            ln = rng.uniform(20, 60)
            tubes.append(((x, y, zL(t)), (x + d[0] * ln, y + d[1] * ln, zL(t) + d[2] * ln), rng.uniform(8, 13), "small"))
        return tubes

    def _draw_liver_vessels(self, rng) -> list[tuple]:
        """Intrahepatic vessels as branching trees of 3D tubes: portal branches fanning out from the hilum,
        hepatic veins draining towards the IVC, each tapering and forking towards the periphery."""
        out: list[tuple] = []
        ix, iy = self.ivc
        hilum = (ix - 4, iy - 26, self.z_dome - self.t_portal * self.L)
        confluence = (ix, iy, self.z_dome - 0.12 * self.L)

        def grow(start, target, radius, kind, depth):
            a = np.asarray(start, float)
            b = np.asarray(target, float)
            n_seg = 3
            for j in range(n_seg):
                end = a + (b - a) / (n_seg - j) + rng.normal(0, 5, 3)
                out.append((tuple(a), tuple(end), radius, kind))
                if depth > 0 and rng.uniform() < 0.8:  # a side branch from this node
                    d = rng.normal(size=3)
                    d[2] *= 0.6
                    d /= np.linalg.norm(d)
                    grow(end, end + d * rng.uniform(18, 35), radius * 0.6, kind, depth - 1)
                a = end
                radius = max(1.2, radius * 0.78)

        for i in range(int(rng.integers(8, 13))):
            kind = PORTAL_VEIN if i % 2 == 0 else HEPATIC_VEIN
            t = float(np.clip(self.t_portal + rng.normal(0, 0.18), 0.08, 0.9)) if kind == PORTAL_VEIN \
                else rng.uniform(0.1, 0.75)
            p = self._liver_point(rng, t, 0.15)
            if p is None:
                continue
            x, y = self.uv_to_xy(*p)
            root = hilum if kind == PORTAL_VEIN else confluence
            grow(root, (x, y, self.z_dome - t * self.L), rng.uniform(3.5, 5.0), kind, 2)
        return out

    def _liver_point(self, rng, t: float, margin: float = 0.0) -> tuple[float, float]:
        for _ in range(200):
            u, v = rng.uniform(-1.0, 0.7), rng.uniform(-1.0, 0.9)
            if self._liver_field_uv(np.array([u]), np.array([v]), t)[0] < 1.0 - margin and \
                    self._cavity_depth_uv(u, v) > 0.05:
                return u, v
        return None

    def _cavity_depth_uv(self, u: float, v: float) -> float:
        p = self.p_ant if v < 0 else self.p_post
        return 1.0 - (abs(u) ** p + abs(v) ** p) ** (1 / p)

    def _liver_field_uv(self, U: np.ndarray, V: np.ndarray, t: float) -> np.ndarray:
        """Implicit liver field at depth t (<1 inside), in inner-cavity units."""
        if t < -0.02 or t > 1.02:
            return np.full(np.broadcast(U, V).shape, 9.0, np.float32)
        tc = min(max(t, 0.0), 1.0)
        s = max(1.0 - ((tc - 0.4) / 0.62) ** 2, 0.0) ** 0.6
        s = max(s, 1e-3)
        ur, vr, ar, br = self.liver_right
        # The right lobe shrinks towards its lateral, anterior tip as it goes down.
        cu = ur - 0.12 * max(tc - 0.55, 0)
        cv = vr - 0.25 * max(tc - 0.6, 0)
        q1 = ((U - cu) / (ar * s)) ** 2 + ((V - cv) / (br * s)) ** 2
        ul, vl, al, bl, t_end = self.liver_left
        if tc < t_end:
            sl = max(1.0 - (tc / t_end) ** 2, 0.02) ** 0.5
            q2 = ((U - ul) / (al * sl)) ** 2 + ((V - vl) / (bl * sl)) ** 2
            q1 = _smin(q1, q2, 6.0)
        return q1

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
            lo, hi = {"cyst": (5, 80), "hemangioma": (8, 100), "hcc": (12, 100), "metastasis": (5, 55),
                      "fnh": (12, 60)}[kind]
            # log-uniform sizes, tilted towards the small and medium lesions radiologists see most
            diameter = float(np.exp(rng.uniform(np.log(lo), np.log(hi)) * 0.75 + np.log(lo) * 0.25))
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

    # ------------------------------------------------------------------ rendering
    def texture(self, k: int) -> np.ndarray:
        """Slowly varying texture of slice k (unit variance): coarse 3D noise, interpolated, upsampled once."""
        def plane(src, step):
            zc = (k * self.th) / step
            z0 = min(int(zc), src.shape[0] - 2)
            f = zc - z0
            return (1 - f) * src[z0] + f * src[z0 + 1]

        coarse = 0.55 * (self.w_low_mid @ plane(self.tex_low, 24.0) @ self.w_low_mid.T) + 0.45 * plane(self.tex_mid, 8.0)
        # Bilinear gathers rather than a matrix product: OpenBLAS threads thrash on a busy machine.
        i0, f = self._up_i0, self._up_f
        rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
        return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]

    def _box(self, cx: float, cy: float, R: float):
        """Pixel box around (cx, cy) +- R mm, with the 1D x (1, w) and y (h, 1) coordinates of its pixels."""
        xs = self._xs
        c0, c1 = np.searchsorted(xs, [cx - R, cx + R])
        r0, r1 = np.searchsorted(xs, [cy - R, cy + R])
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1)), xs[c0:c1][None, :], xs[r0:r1][:, None]

    def _ellipse(self, cx, cy, rx, ry, ang=0.0):
        """(box, q) with q < 1 inside the rotated ellipse, evaluated only in its bounding box."""
        b = self._box(cx, cy, max(rx, ry) * 1.25 + 1)
        if b is None:
            return None, None
        box, xx, yy = b
        dx, dy = xx - cx, yy - cy
        if ang:
            ca, sa = math.cos(ang), math.sin(ang)
            dx, dy = ca * dx + sa * dy, -sa * dx + ca * dy
        return box, (dx / rx) ** 2 + (dy / ry) ** 2

    def _fill(self, lab, cx, cy, rx, ry, label, ang=0.0, qmax=1.0, within=None):
        box, q = self._ellipse(cx, cy, rx, ry, ang)
        if box is None:
            return None, None
        m = q < qmax
        if within is not None:
            m &= within[box]
        lab[box][m] = label
        return box, q

    def render(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Slice k -> (HU int16, organ labels uint8, lesion labels uint8, segment labels uint8)."""
        n = self.n
        z = self.z_of(k)
        t = self.t_of(z)
        xs = self._xs
        X, Y = xs[None, :], xs[:, None]
        lab = np.zeros((n, n), np.uint8)
        texm = self.texture(k)
        # ---- table under the patient: a curved shell with a foam core
        b = self._box(self.cx, self.y_post + 40, 260)
        if b is not None:
            box, xx, yy = b
            yt = self.y_post + 1.5 - 0.0005 * (xx - self.cx) ** 2
            tab = (yy >= yt) & (yy < yt + 30) & (np.abs(xx - self.cx) < 230)
            shell = tab & ((yy < yt + 3) | (yy >= yt + 27))
            lab[box][tab] = TABLE_CORE
            lab[box][shell] = TABLE
        # ---- body: superellipse (fuller in front, flatter on the table); layers by depth under the skin
        u = (X - self.cx) / self.a
        v = (Y - self.cy) / self.b
        p = np.where(v < 0, self.p_ant, self.p_post).astype(np.float32)
        S = np.abs(u) ** p + np.abs(v) ** p
        rho = S ** (1.0 / p)
        body = rho <= 1
        r = np.sqrt((X - self.cx) ** 2 + (Y - self.cy) ** 2)
        depth = r * (1 / np.maximum(rho, 1e-6) - 1)
        wv = np.clip(v * 1.4, -1, 1)
        fat_th = np.where(wv < 0, self.fat_lat - (self.fat_ant - self.fat_lat) * wv,
                          self.fat_lat + (self.fat_post - self.fat_lat) * wv)
        lab[body] = SKIN
        lab[body & (depth > 2.0)] = FAT
        muscle = body & (depth > fat_th)
        lab[muscle] = MUSCLE
        # The wall is not a uniform ring: paired recti in front (split by the linea alba), thinner obliques
        # at the flanks, thin posteriorly where the paraspinal muscles take over.
        front = np.clip(-wv, 0, 1) * np.exp(-(((X - self.cx) / 70.0) ** 2))
        wall_th = self.wall * (0.75 + 0.8 * front - 0.2 * np.clip(wv, 0, 1))
        cavity = body & (depth > fat_th + wall_th)
        lab[muscle & ~cavity & (np.abs(X - self.cx) < 3.5) & (Y - self.cy < 0)] = FAT
        lab[cavity] = VISCERAL_FAT
        # ---- paraspinal and psoas muscles
        y_canal = self.y_vb + self.vb_r[1] + 12
        for side in (-1, 1):
            self._fill(lab, self.cx + side * 34, y_canal + 22, 25, 30, MUSCLE, within=muscle)
        if t > 0.55:
            ps = min((t - 0.55) / 0.4, 1.0)
            for side in (-1, 1):
                self._fill(lab, self.cx + side * (28 + 6 * ps), self.y_vb - 4, 8 + 14 * ps, 8 + 12 * ps, MUSCLE)
        # ---- the liver's implicit field (needed by lungs and stomach too), in its bounding box
        liver_q = np.full((n, n), 9.0, np.float32)
        lb = self._box(*self.uv_to_xy(-0.2, -0.1), 1.1 * max(self.ai, self.bi))
        if lb is not None and -0.02 <= t <= 1.02:
            box, xx, yy = lb
            # a gently irregular capsule rather than a perfect implicit surface
            liver_q[box] = self._liver_field_uv((xx - self.cx) / self.ai, (yy - self.cy) / self.bi, t) * (
                1.0 + 0.05 * texm[box])
        # ---- lung bases (posterior costophrenic recesses) in the upper liver
        if t < 0.32:
            lung_s = ((0.32 - t) / 0.42) ** 0.6
            for side in (-1, 1):
                lx, ly = self.uv_to_xy(side * 0.52, 0.45)
                box, q = self._ellipse(lx, ly, (0.42 * lung_s + 0.05) * self.ai, (0.5 * lung_s + 0.05) * self.bi)
                if box is None:
                    continue
                region = (q < 1) & cavity[box]
                lab[box][region] = MUSCLE  # diaphragm and pleura between lung and abdomen
                lab[box][region & (q < 0.85) & (liver_q[box] > 1.12)] = LUNG
        # ---- bowel loops (3D tubes) and colon with gas and stool
        for A, B, rad, kind in self.bowel:
            self._tube(lab, z, A, B, rad, BOWEL_WALL, cavity)
            m = self._tube_mask(z, A, B, rad - 2.0)
            if m is not None:
                box, mk, yy = m
                mk &= cavity[box]
                if kind == "colon":
                    ymid = float(np.broadcast_to(yy, mk.shape)[mk].mean()) if mk.any() else 0.0
                    fill = np.where(yy < ymid - 0.3 * rad, GAS, STOOL).astype(np.uint8)
                    lab[box][mk] = np.broadcast_to(fill, mk.shape)[mk]
                else:
                    lab[box][mk] = BOWEL_FLUID
        # ---- pancreas and splenic vein
        if 0.5 < t < 0.88:
            pts = [(self.cx + 78, self.y_vb - 18), (self.cx + 30, self.y_vb - 50), (self.cx - 20, self.y_vb - 52),
                   (self.cx - 42, self.y_vb - 38)]
            pr = 11 * math.sin(math.pi * (t - 0.5) / 0.38) + 3
            box, xx, yy = self._box(self.cx + 18, self.y_vb - 35, 80)
            d = _polyline_distance(xx, yy, pts)
            lab[box][(d < pr) & cavity[box]] = PANCREAS
            if t < 0.7:
                d2 = _polyline_distance(xx, yy, [(x, y + pr + 2) for x, y in pts[:3]])
                lab[box][(d2 < 4.5) & cavity[box]] = PORTAL_VEIN
        # ---- stomach: wall, contents, gas anteriorly (the patient lies supine)
        su, sv, sa, sb, sang, _t0, tls = self.stomach
        ss = max(0.0, 1 - ((t - 0.25) / 0.4) ** 2) ** 0.5 if t < 0.62 else 0.0
        if ss > 0.05:
            gx, gy = self.uv_to_xy(su + 0.1 * (t - 0.2), sv)
            rxs, rys = sa * ss * self.ai, sb * ss * self.bi
            box, q = self._ellipse(gx, gy, rxs, rys, sang)
            if box is not None:
                st = (q < 1) & cavity[box] & (liver_q[box] > 1.0)
                lab[box][st] = STOMACH_WALL
                inner = st & (q < (1 - 5.0 / min(rxs, rys)) ** 2)
                lab[box][inner] = STOMACH_FLUID
                lab[box][inner & (Y[box[0]] < gy + tls * rys)] = GAS
        # ---- spleen: a crescent, left posterior
        pu, pv, pa, pb, pang, t0p, t1p = self.spleen
        if t0p < t < t1p + 0.05:
            ss = max(0.0, 1 - ((t - (t0p + t1p) / 2) / ((t1p - t0p) / 2 + 0.05)) ** 2) ** 0.5
            if ss > 0.05:
                px, py = self.uv_to_xy(pu, pv)
                box, q = self._ellipse(px, py, pa * ss * self.ai, pb * ss * self.bi, pang)
                if box is not None:
                    ix_, iy_ = self.uv_to_xy(pu - 0.12 * ss, pv - 0.1 * ss)
                    xx, yy = X[:, box[1]], Y[box[0], :]
                    qi = ((xx - ix_) / (pa * ss * 0.7 * self.ai)) ** 2 + ((yy - iy_) / (pb * ss * 0.6 * self.bi)) ** 2
                    lab[box][(q < 1) & (qi > 1) & cavity[box]] = SPLEEN
        # ---- liver and its vessels
        liver = (liver_q < 1.0) & cavity
        lab[liver] = LIVER
        self._liver_big_vessels(lab, t, liver)
        for A, B, rad, kind in self.vessels:
            self._tube(lab, z, A, B, rad, kind, liver)
        # ---- kidneys (after the liver, which they indent), with a rim of perirenal fat
        for side, kx, ky, ka, kb, kang, t0k, lk in self.kidneys:
            if t0k < t < t0k + lk:
                ks = max(0.0, 1 - ((t - t0k - lk / 2) / (lk / 2)) ** 2) ** 0.5
                if ks < 0.15:
                    continue
                box, q = self._ellipse(kx, ky, ka * ks * 1.25, kb * ks * 1.25, kang)
                if box is None:
                    continue
                q = q * 1.5625  # back to the kidney's own radii
                cav = cavity[box]
                lab[box][(q < 1.45) & cav] = VISCERAL_FAT
                kid = (q < 1) & cav
                lab[box][kid] = KIDNEY_CORTEX
                med = kid & (q < (1 - 6.5 / (kb * ks)) ** 2)
                lab[box][med] = KIDNEY_MEDULLA
                hil = med & ((X[:, box[1]] - kx) * -side > 0) & (q < 0.35) & (ks > 0.6)
                lab[box][hil] = VISCERAL_FAT  # renal sinus fat at the medial hilum
        # ---- gallbladder in its fossa under the liver
        has_gb, tgb, rgb, lgb = self.gb
        span = lgb / self.L * 3
        if has_gb and tgb < t < tgb + span:
            gs = max(0.0, 1 - ((t - tgb - span / 2) / (span / 2)) ** 2) ** 0.5
            if gs > 0.1:
                gx, gy = self.ivc[0] - 28, self.ivc[1] - 60
                box, q = self._fill(lab, gx, gy, rgb * gs * 0.8 + 0.5, rgb * gs + 0.5, BOWEL_WALL, within=cavity)
                if box is not None:
                    lab[box][(q < 0.78) & cavity[box]] = GALLBLADDER
        # ---- IVC, aorta (with wall calcifications)
        ivc_r = (12, 9) if t < 0.85 else (11, 8)
        self._fill(lab, self.ivc[0], self.ivc[1], ivc_r[0], ivc_r[1], IVC)
        ax, ay, ar = self.aorta
        self._fill(lab, ax, ay, ar, ar, AORTA)
        for ang, zf in self.aortic_calc:
            if abs((k / max(self.k - 1, 1)) - zf) < 0.12:
                self._fill(lab, ax + (ar - 1) * math.cos(ang), ay + (ar - 1) * math.sin(ang), 2.2, 2.2, CALCIUM)
        # ---- vertebra: body (cortex + cancellous), canal, arch, spinous and transverse processes
        rx, ry = self.vb_r
        box, q = self._fill(lab, self.cx, self.y_vb, rx, ry, CORTEX)
        lab[box][q < (1 - 2.2 / ry) ** 2] = MARROW
        box, q = self._ellipse(self.cx, y_canal, 15.5, 15.5)
        lab[box][(q < 1) & (Y[box[0]] > self.y_vb)] = CORTEX
        lab[box][q < (9.5 / 15.5) ** 2] = CSF
        self._fill(lab, self.cx, y_canal + 30, 5.0, 16.0, CORTEX)
        if t > 0.6:
            for side in (-1, 1):
                self._fill(lab, self.cx + side * 30, y_canal - 2, 16, 5, CORTEX)
        # ---- ribs: oval cross-sections in the body wall, drifting around it along z
        for side, a0, drift, tmax, rl, rs in self.ribs:
            if t > tmax:
                continue
            ang = a0 + drift * t
            dirx, diry = side * math.cos(ang), math.sin(ang)
            pe = self.p_ant if diry < 0 else self.p_post
            ru = (abs(dirx) ** pe + abs(diry * self.a / self.b) ** pe) ** (-1 / pe) * self.a
            fat = self.fat_lat if abs(dirx) > 0.5 else (self.fat_ant if diry < 0 else self.fat_post)
            rr = ru - fat - self.wall * 0.5
            box, q = self._fill(lab, self.cx + rr * dirx, self.cy + rr * diry, rl, rs, CORTEX,
                                ang=math.atan2(dirx, -diry))
            if box is not None:
                lab[box][q < 0.35] = MARROW
        # ---- HU from labels, textures
        hu = self.lut[lab] + self.tex_amp[lab] * texm
        # ---- Couinaud segments and lesions
        seg = self._segments(t, lab)
        les = np.zeros((n, n), np.uint8)
        domain = (lab == LIVER) | (lab == HEPATIC_VEIN) | ((lab == PORTAL_VEIN) & (seg > 0))
        for i, spec in enumerate(self.lesions, start=1):
            self._paint_lesion(hu, les, domain, z, spec, i, texm)
        # ---- partial volume, then CT noise with the reconstruction kernel's correlation
        from scipy import ndimage

        hu = ndimage.gaussian_filter(hu, self.pv_sigma, mode="nearest", truncate=3.0)
        noise = self.rng_slice(k).standard_normal((n, n), dtype=np.float32)
        sig = self.noise_corr * n / 512
        if sig > 0.3:
            noise = ndimage.gaussian_filter(noise, sig, mode="wrap", truncate=2.5)
            noise *= 1.0 / max(float(noise.std()), 1e-6)
        hu += noise * self.noise_sd
        hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
        return hu, lab, les, seg

    def rng_slice(self, k: int) -> np.random.Generator:
        return np.random.default_rng([self.seed_base, 1000 + k])

    def _liver_big_vessels(self, lab, t, liver):
        """Hepatic veins converging on the IVC (upper liver) and the portal bifurcation at the hilum."""
        ix, iy = self.ivc
        if t < 0.42:
            reach = (0.42 - t) / 0.42
            for j, psi in enumerate(self.vein_psi):
                ln = (50 + 45 * reach) * (0.8 if j == 2 else 1.0)
                ex, ey = ix - ln * math.cos(psi), iy - ln * math.sin(psi)
                b = self._box((ix + ex) / 2, (iy + ey) / 2, ln / 2 + 10)
                if b is None:
                    continue
                box, xx, yy = b
                d = _segment_distance(xx, yy, (ix, iy), (ex, ey))
                along = np.clip(((xx - ix) * (ex - ix) + (yy - iy) * (ey - iy)) / (ln * ln), 0, 1)
                width = (3.5 + 3.5 * reach) * (1 - 0.6 * along)
                lab[box][(d < width) & liver[box]] = HEPATIC_VEIN
        else:
            dd = 35 + 60 * (t - 0.42)
            for psi in self.vein_psi:
                self._fill(lab, ix - dd * math.cos(psi), iy - dd * math.sin(psi), 3.2, 3.2, HEPATIC_VEIN,
                           within=liver)
        dt = abs(t - self.t_portal)
        if dt < 0.1:
            w = 6.5 * (1 - dt / 0.1) + 2.5
            hx, hy = ix - 4, iy - 26  # hilum: anterior to the IVC
            rx_, ry_ = self.uv_to_xy(self.liver_right[0] + 0.1, self.liver_right[1])
            lx_, ly_ = self.uv_to_xy(self.liver_left[0], self.liver_left[1] + 0.1)
            for ex, ey, f in ((rx_, ry_, 1.0), (lx_, ly_, 0.8)):
                e2 = (hx + (ex - hx) * 0.7, hy + (ey - hy) * 0.7)
                b = self._box((hx + e2[0]) / 2, (hy + e2[1]) / 2, math.dist((hx, hy), e2) / 2 + 12)
                if b is None:
                    continue
                box, xx, yy = b
                d = _segment_distance(xx, yy, (hx, hy), e2)
                lab[box][(d < w * f) & liver[box]] = PORTAL_VEIN
            if t > self.t_portal:
                box, q = self._ellipse(hx, hy, w + 3, w + 3)
                if box is not None:
                    lab[box][(q < 1) & (lab[box] != AIR)] = PORTAL_VEIN

    def _segments(self, t, lab) -> np.ndarray:
        """Couinaud segment (1..8) of every liver pixel: hepatic-vein planes around the IVC + portal plane."""
        liver = (lab == LIVER) | (lab == HEPATIC_VEIN) | (lab == PORTAL_VEIN)
        seg = np.zeros(lab.shape, np.uint8)
        rows, cols = np.nonzero(liver)
        if rows.size == 0:
            return seg
        xs = self._xs
        X, Y = xs[cols], xs[rows]
        ix, iy = self.ivc
        psi = np.arctan2(-(Y - iy), -(X - ix))  # 0 = patient right, pi/2 = anterior, pi = patient left
        psi = np.where(psi < -np.pi * 0.6, psi + 2 * np.pi, psi)  # the posterior-left liver joins segment II
        r_, m_, l_ = self.vein_psi
        sup = t < self.t_portal
        val = np.where(psi < r_, 7 if sup else 6,
                       np.where(psi < m_, 8 if sup else 5, np.where(psi < l_, 4, 2 if sup else 3)))
        if 0.2 < t < 0.62:
            near = ((X - ix - 14) ** 2 + (Y - iy + 6) ** 2) < 26**2
            val = np.where(near & (psi > 1.35) & (psi < 3.6), 1, val)
        seg[rows, cols] = val
        return seg

    def _tube_mask(self, z, A, B, rad):
        """Cross-section of a 3D capsule with slice z: (box, mask, y of rows) or None."""
        a, b = np.asarray(A, float), np.asarray(B, float)
        zmin, zmax = min(a[2], b[2]) - rad, max(a[2], b[2]) + rad
        if not (zmin <= z <= zmax):
            return None
        # only the part of the axis within rad of this slice can reach it
        ab = b - a
        if abs(ab[2]) > 1e-6:
            s0, s1 = sorted(((z - rad - a[2]) / ab[2], (z + rad - a[2]) / ab[2]))
            s0, s1 = max(s0, 0.0), min(s1, 1.0)
        else:
            s0, s1 = 0.0, 1.0
        p0, p1 = a + s0 * ab, a + s1 * ab
        bx = self._box((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2,
                       max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1])) / 2 + rad + 1)
        if bx is None:
            return None
        box, xx, yy = bx
        denom = float(ab @ ab) or 1e-9
        s = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1] + (z - a[2]) * ab[2]) / denom, 0, 1)
        d2 = (xx - a[0] - s * ab[0]) ** 2 + (yy - a[1] - s * ab[1]) ** 2 + (z - a[2] - s * ab[2]) ** 2
        return box, d2 < rad * rad, yy

    def _tube(self, lab, z, A, B, rad, label, within):
        m = self._tube_mask(z, A, B, rad)
        if m is None:
            return
        box, mk, _ = m
        lab[box][mk & within[box]] = label

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
        inside = (rho <= 1.0) & dom  # the mask: the lesion at the slice's centre plane
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
            rim = rho > 0.86
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


def _upsample_weights(m: int, n: int) -> np.ndarray:
    """(n, m) smooth interpolation weights from an m-point coarse grid to n pixels (Gaussian kernel)."""
    centres = (np.arange(m) + 0.5) / m
    pos = (np.arange(n) + 0.5) / n
    w = np.exp(-0.5 * ((pos[:, None] - centres[None, :]) * m / 0.8) ** 2)
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))  # keeps unit variance for white coarse noise
    return w.astype(np.float32)


def _segment_distance(X, Y, a, b) -> np.ndarray:
    ax, ay = a
    bx, by = b
    vx, vy = bx - ax, by - ay
    L2 = vx * vx + vy * vy or 1e-9
    s = np.clip(((X - ax) * vx + (Y - ay) * vy) / L2, 0, 1)
    return np.sqrt((X - ax - s * vx) ** 2 + (Y - ay - s * vy) ** 2)


def _polyline_distance(X, Y, pts) -> np.ndarray:
    d = None
    for a, b in zip(pts[:-1], pts[1:], strict=False):
        e = _segment_distance(X, Y, a, b)
        d = e if d is None else np.minimum(d, e)
    return d


# ---------------------------------------------------------------------------------------------- API


def synth_case(seed: int, *, size: int = 256, n_slices: int = 32, case_id: str = "case000",
               phase: str | None = None, spacing_mm: float | None = None, thickness_mm: float | None = None,
               lesions: list[dict] | None = None, n_lesions: int | None = None) -> SynthCase:
    """Generate one synthetic abdominal CT case (deterministic for a given seed and settings).

    ``spacing_mm`` is the pixel spacing a 512 matrix would have (0.6-0.9 mm); smaller ``size`` keeps the
    field of view. ``lesions`` (optional) fixes the lesions: dicts with kind, diameter_mm, uvt=(u, v, t)
    position in body/liver units, shape, boundary.
    """
    if not 32 <= size <= 1024:
        raise SynthError("size", f"must be between 32 and 1024 pixels, got {size}")
    if not 1 <= n_slices <= 512:
        raise SynthError("slices", f"must be between 1 and 512, got {n_slices}")
    for attempt in range(4):
        # A case drawn with lesions must show one: redraw (deterministically) when none landed in the scan.
        rng = np.random.default_rng([int(seed), 6, attempt] if attempt else [int(seed), 6])
        model = _CaseModel(rng, size, n_slices, phase=phase, spacing_mm=spacing_mm, thickness_mm=thickness_mm,
                           lesions=lesions, n_lesions=n_lesions, seed=seed)
        ct = np.empty((n_slices, size, size), np.int16)
        organs = np.empty_like(ct, dtype=np.uint8)
        les = np.empty_like(organs)
        seg = np.empty_like(organs)
        for k in range(n_slices):
            ct[k], organs[k], les[k], seg[k] = model.render(k)
        if les.any() or n_lesions == 0 or lesions is not None:
            break
    origin = (model.x0, model.x0, model.origin_z)
    params = {
        "size": size, "slices": n_slices, "pixel_spacing_mm": round(model.sp, 4),
        "slice_thickness_mm": model.th, "phase": model.phase, "fatty_liver": bool(model.fatty),
        "oral_contrast": bool(model.oral_contrast), "noise_sd_hu": round(float(model.noise_sd), 2),
        "body_half_width_mm": round(model.a, 1), "liver_length_mm": round(model.L, 1),
        "liver_hu": round(float(model.lut[LIVER]), 1), "z_dome_mm": model.z_dome,
        "t_top": round(model.t_top, 3), "t_portal": round(model.t_portal, 3),
    }
    t_slices = np.array([model.t_of(model.z_of(k)) for k in range(n_slices)])
    hx, hy = model.ivc[0] - 4, model.ivc[1] - 26
    hilum = ((hy - model.x0) / model.sp, (hx - model.x0) / model.sp)
    return SynthCase(case_id, int(seed), ct, organs, les, seg, (model.sp, model.sp, model.th), origin,
                     model.phase, model.lesions, params, t_slices, hilum, model.t_portal)

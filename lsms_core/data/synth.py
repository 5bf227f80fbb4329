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

from dataclasses import dataclass

import numpy as np

from lsms_core.data.synth_labels import (  # noqa: F401  (re-exported)
    AIR,
    AORTA,
    BOWEL_FLUID,
    BOWEL_WALL,
    CALCIUM,
    CORTEX,
    CSF,
    FAT,
    GALLBLADDER,
    GAS,
    HEPATIC_VEIN,
    IVC,
    KIDNEY_CORTEX,
    KIDNEY_MEDULLA,
    LIVER,
    LUNG,
    MARROW,
    MUSCLE,
    N_LABELS,
    ORGAN_NAMES,
    PANCREAS,
    PHASES,
    PORTAL_VEIN,
    SKIN,
    SPLEEN,
    STOMACH_FLUID,
    STOMACH_WALL,
    STOOL,
    TABLE,
    TABLE_CORE,
    VISCERAL_FAT,
    SynthError,
)
from lsms_core.data.synth_lesions import LesionSpec
from lsms_core.data.synth_render import _CaseModel
from lsms_core.data.vocabulary import LESION_TYPES, SEGMENTS  # noqa: F401  (re-exported)


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
        # the reconstruction kernel's blur of the noise, in pixels of this size (how many independent noise
        # samples a region covers: what the visibility rule of the expression writer needs)
        "noise_corr_px": round(float(model.noise_corr) * size / 512, 3),
        "body_half_width_mm": round(model.a, 1), "liver_length_mm": round(model.L, 1),
        "liver_hu": round(float(model.lut[LIVER]), 1), "z_dome_mm": model.z_dome,
        "t_top": round(model.t_top, 3), "t_portal": round(model.t_portal, 3),
    }
    t_slices = np.array([model.t_of(model.z_of(k)) for k in range(n_slices)])
    hx, hy = model.ivc[0] - 4, model.ivc[1] - 26
    hilum = ((hy - model.x0) / model.sp, (hx - model.x0) / model.sp)
    return SynthCase(case_id, int(seed), ct, organs, les, seg, (model.sp, model.sp, model.th), origin,
                     model.phase, model.lesions, params, t_slices, hilum, model.t_portal)

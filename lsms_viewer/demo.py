"""The demo study: the shipped demo case and weights when installed, a synthetic abdomen otherwise (no Qt).

``--demo`` must work in every copy of the project, including one where the demo case
(``resources/demo/ct.nii.gz`` + ``demo.json``) or the trained demo weights
(``resources/models/lsms-e0-demo``) are not there yet. ``find_demo()`` says exactly what it found, so the
window can tell the user what they are looking at instead of pretending.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.volume import Volume

#: what the synthetic abdomen phantom is shown with: its smaller lesion is the one these words name
PHANTOM_EXPRESSION = "the smaller low-density nodule in the right lobe"


@dataclass
class DemoSetup:
    """What ``--demo`` opens: a volume (or its path), an expression, a checkpoint and notes for the user."""

    ct_path: Path | None  # the installed demo case; None = synthetic volume
    expression: str
    checkpoint: Path | None  # None = no checkpoint anywhere: segmentation is unavailable
    checkpoint_is_demo: bool
    case_notes: list[str] = field(default_factory=list)  # about the CT shown
    reference_mask: Path | None = None  # the demo lesion's reference mask, when the recipe names one
    slice_index: int | None = None  # the slice the recipe shows first
    window: tuple[float, float] | None = None  # (width, level) HU the recipe shows
    model_notes: list[str] = field(default_factory=list)  # about the weights used


def _resources() -> Path:
    from lsms_core.resources import resources_dir

    return resources_dir()


def newest_checkpoint(models_dir: Path) -> Path | None:
    """The most recently written checkpoint folder (model.safetensors + config.json) under ``models_dir``."""
    if not models_dir.is_dir():
        return None
    candidates = [
        d for d in models_dir.iterdir() if (d / "model.safetensors").is_file() and (d / "config.json").is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda d: (d / "model.safetensors").stat().st_mtime)


def find_demo(resources: Path | None = None) -> DemoSetup:
    """Locate the demo case and weights, falling back to what is there (and saying so in the notes).

    The recipe is read by ``lsms_core.data.demo.read_demo_recipe``, as ``lsms segment --demo`` reads it.
    When it cannot be read but the demo CT is there, the CT is shown with the words the demo case was made
    with (``DEMO_EXPRESSION``), never the phantom's.
    """
    from lsms_core.checkpoint import DEMO_NAME
    from lsms_core.data.demo import DEMO_CT, DEMO_EXPRESSION, DEMO_RECIPE, DemoNotInstalled, read_demo_recipe
    from lsms_core.errors import LSMSError

    resources = resources or _resources()
    case_notes: list[str] = []
    model_notes: list[str] = []
    folder = resources / "demo"
    ct_path: Path | None = folder / DEMO_CT
    expression = PHANTOM_EXPRESSION
    reference_mask, slice_index, window = None, None, None
    try:
        recipe = read_demo_recipe(folder)
        ct_path, expression = recipe.ct, recipe.expression
        reference_mask, slice_index, window = recipe.lesion_mask, recipe.slice_index, recipe.window
    except DemoNotInstalled as exc:
        if not (folder / DEMO_RECIPE).is_file() and ct_path.is_file():
            expression = DEMO_EXPRESSION
            case_notes.append(f"{exc.what} is missing: showing the demo CT with the words it was made with.")
        else:
            case_notes.append(f"The demo case is not installed ({exc.what} is missing): showing a synthetic "
                              "abdomen phantom instead.")
            ct_path = None
    except LSMSError as exc:  # demo.json is there but cannot be read
        if ct_path.is_file():
            expression = DEMO_EXPRESSION
            case_notes.append(f"{exc.what}: {exc.why}; showing the demo CT with the words it was made with.")
        else:
            case_notes.append(f"The demo case is not installed ({exc.what}: {exc.why}): showing a synthetic "
                              "abdomen phantom instead.")
            ct_path = None

    models = resources / "models"
    demo_weights = models / DEMO_NAME
    if (demo_weights / "model.safetensors").is_file():
        checkpoint, is_demo = demo_weights, True
    else:
        checkpoint, is_demo = newest_checkpoint(models), False
        if checkpoint is None:
            model_notes.append(
                f"No model weights are installed ({demo_weights} is missing): segmentation is unavailable; "
                "load a checkpoint with Tools ▸ Load checkpoint… or start with --checkpoint DIR."
            )
        else:
            model_notes.append(
                f"The demo weights are not installed: using the newest checkpoint found, {checkpoint.name}."
            )
    return DemoSetup(ct_path, expression, checkpoint, is_demo, case_notes=case_notes, model_notes=model_notes,
                     reference_mask=reference_mask, slice_index=slice_index, window=window)


def synthetic_abdomen(
    shape: tuple[int, int, int] = (48, 384, 384),
    spacing: tuple[float, float, float] = (0.9, 0.9, 2.5),
    seed: int = 0,
) -> tuple[Volume, dict[str, np.ndarray]]:
    """An abdomen-like CT phantom in radiological layout, and the exact masks of its two liver lesions.

    Columns run from the patient's right to left and rows from anterior to posterior (identity LPS
    direction), so the liver appears on the left of the screen as in any radiology viewer. Returns
    ``(volume, {"larger lesion": mask, "smaller lesion": mask})``; the masks are ground truth by
    construction, which is what the screenshots and tests need.
    """
    z, h, w = shape
    rng = np.random.default_rng(seed)
    kk = ((np.arange(z, dtype=np.float32) + 0.5) / z)[:, None, None]
    yy = ((np.arange(h, dtype=np.float32) - h / 2) / (h / 2))[None, :, None]
    xx = ((np.arange(w, dtype=np.float32) - w / 2) / (w / 2))[None, None, :]

    def ellipse(cx, cy, rx, ry):
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0

    array = np.full(shape, -1000.0, np.float32)
    body = np.broadcast_to(ellipse(0, 0.02, 0.86, 0.64), shape)
    array[body] = -95.0
    array[np.broadcast_to(ellipse(0, 0.02, 0.8, 0.57), shape)] = 38.0
    # The liver grows and shrinks along z like a real one cut axially; patient right = screen left.
    liver_r = 0.26 + 0.08 * np.sin(np.pi * kk)
    liver = ((xx + 0.36) / liver_r) ** 2 + ((yy + 0.06) / (liver_r * 0.95)) ** 2 <= 1.0
    array[liver] = 62.0
    spleen = (((xx - 0.5) / 0.13) ** 2 + ((yy - 0.05) / 0.2) ** 2 <= 1.0) & (kk > 0.35)
    array[spleen] = 48.0
    for side in (-1, 1):
        array[np.broadcast_to(ellipse(side * 0.3, 0.24, 0.09, 0.13), shape) & (kk < 0.7)] = 32.0
    array[np.broadcast_to(ellipse(0, 0.4, 0.1, 0.09), shape)] = 650.0
    array[np.broadcast_to(ellipse(0, 0.4, 0.055, 0.05), shape)] = 220.0
    array[np.broadcast_to(ellipse(0.06, 0.14, 0.055, 0.055), shape)] = 170.0  # aorta with contrast
    array[np.broadcast_to(ellipse(-0.08, 0.12, 0.05, 0.06), shape)] = 120.0  # vena cava
    # Air in the colon and stomach gives the lung/bone windows something to show.
    array[np.broadcast_to(ellipse(0.25, -0.3, 0.09, 0.06), shape)] = -850.0

    sx, sy, sz = spacing
    lesions = {}
    # Spheres in millimetres so they stay round whatever the spacing: (centre x, y, z in voxels, radius mm).
    for name, (ci, cj, ck, radius, hu) in {
        "larger lesion": (0.30 * w, 0.40 * h, 0.50 * z, 22.0, 12.0),
        "smaller lesion": (0.18 * w, 0.52 * h, 0.55 * z, 9.0, 18.0),
    }.items():
        kz = np.arange(z)[:, None, None]
        jy = np.arange(h)[None, :, None]
        ix = np.arange(w)[None, None, :]
        inside = ((ix + 0.5 - ci) * sx) ** 2 + ((jy + 0.5 - cj) * sy) ** 2 + ((kz + 0.5 - ck) * sz) ** 2
        mask = inside <= radius**2
        array[mask] = hu
        lesions[name] = mask

    # Filtered white noise: spatially correlated like reconstructed CT noise (std ~12 HU), body only.
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.normal(0.0, 1.0, shape).astype(np.float32), sigma=(0.0, 0.9, 0.9))
    noise *= np.float32(12.0 / max(float(noise.std()), 1e-6))
    array += noise * body
    array = np.round(array).astype(np.int16)
    origin = (-(w * sx) / 2.0, -(h * sy) / 2.0, -(z * sz) / 2.0)
    volume = Volume(
        array,
        spacing,
        origin,
        np.eye(3),
        meta={"modality": "CT", "series_description": "Synthetic abdomen phantom"},
    )
    return volume, lesions

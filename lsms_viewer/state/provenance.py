"""What really made a label's mask (no Qt): a model run, a model run edited by hand, or the hand alone.

A label made by a run keeps the model's own mask on its run (``label.run.mask``, packed). Comparing it with
the label's mask tells the three apart without any bookkeeping in the tools:

- ``model run``: the mask is the model's, voxel for voxel;
- ``edited after a run``: the model's mask was changed by hand (or a run found something and the rest
  was drawn);
- ``drawn by hand``: no run, or a run that found nothing (everything in the mask was drawn);
- ``imported``: read from a mask file (File ▸ Import labels).

The label export and the annotation dataset export write this, and model fields (checkpoint, run time,
the model's words, the model's mask) only when a model produced some of the mask.
"""

from __future__ import annotations

import numpy as np

from lsms_viewer.state.document import Label
from lsms_viewer.state.maskbits import pack_bits

MODEL_RUN = "model run"
EDITED_AFTER_RUN = "edited after a run"
DRAWN_BY_HAND = "drawn by hand"
IMPORTED = "imported"


def model_found_something(label: Label) -> bool:
    """A run made this label and its mask held voxels (unknown masks, from older sessions, count as yes)."""
    run = label.run
    if run is None:
        return False
    if run.mask is None:
        return True
    return any(s is not None for s in run.mask.slices)


def origin(label: Label) -> str:
    """One of MODEL_RUN, EDITED_AFTER_RUN, DRAWN_BY_HAND, IMPORTED (see the module's docstring)."""
    if not model_found_something(label):
        if label.run is None and label.meta.get("imported_from"):
            return IMPORTED
        return DRAWN_BY_HAND
    kept = label.run.mask
    if kept is None or tuple(kept.shape) != tuple(label.mask.shape):
        return MODEL_RUN  # nothing kept to compare with: the run is all that is known
    for z, packed in enumerate(kept.slices):
        if pack_bits(label.mask[z]) != packed:
            return EDITED_AFTER_RUN
    return MODEL_RUN


def slice_origin(label: Label, model_slice: np.ndarray | None, k: int) -> str:
    """The origin of ``label`` on slice ``k`` given the model's mask there (None: no model mask)."""
    if model_slice is None or not model_slice.any():
        return IMPORTED if label.run is None and label.meta.get("imported_from") else DRAWN_BY_HAND
    return MODEL_RUN if np.array_equal(model_slice, label.mask[k]) else EDITED_AFTER_RUN

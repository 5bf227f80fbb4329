"""Turning the network's probabilities into the one lesion an expression refers to.

A referring expression names one lesion, but a per-slice network can light up look-alikes elsewhere in
the volume (the demo weights do: a second hypodense region ten slices away). Keeping the connected region
that holds the most probability mass is the answer to "which one did you mean"; the other candidates are
counted so the caller can say that they were dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class Referred:
    mask: np.ndarray  # bool, the input's shape: the kept region only
    candidates: int  # connected regions the threshold produced
    kept_mass: float  # summed probability of the kept region
    dropped_voxels: int

    def note(self) -> str | None:
        """What the caller should tell the user when other candidates were dropped (None if none were)."""
        if self.candidates <= 1:
            return None
        return (f"kept the most probable of {self.candidates} candidate regions "
                f"({self.dropped_voxels} voxels elsewhere dropped)")


def keep_referred_lesion(probs: np.ndarray, masks: np.ndarray) -> Referred:
    """Keep the connected region of ``masks`` (2-D or 3-D, face connectivity) with the largest summed
    probability; an empty mask stays empty."""
    probs = np.asarray(probs, dtype=np.float32)
    masks = np.asarray(masks, dtype=bool)
    if probs.shape != masks.shape:
        raise ValueError(f"probabilities {probs.shape} and masks {masks.shape} differ in shape")
    labels, count = ndimage.label(masks)
    if count <= 1:
        mass = float(probs[masks].sum()) if count else 0.0
        return Referred(masks.copy(), count, mass, 0)
    mass = ndimage.sum_labels(probs, labels, index=np.arange(1, count + 1))
    best = int(np.argmax(mass)) + 1
    kept = labels == best
    return Referred(kept, count, float(mass[best - 1]), int(masks.sum() - kept.sum()))

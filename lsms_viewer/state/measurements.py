"""The measurements of a Document's labels, shared by the Measurements dock and the annotation form (no Qt).

One place measures a lesion, so the two can never disagree. A slice's axes are those of the label's largest
connected piece there (a label holding two tumours, or a stray brush dot, is not measured across the gap); its density is always taken against a 3D ring
of surrounding tissue with the *other* labels kept out of it, and its long axes per slice are cached
here, for the label they were measured on. The cache follows the Document: a mask edit forgets the
slices it touched, a label added or removed (a deleted label's id may be reused) and a new study forget
everything of it.
"""

from __future__ import annotations

import numpy as np

from lsms_core.measure import (
    Density,
    MeasureError,
    Measurement2D,
    Measurement3D,
    array_spacing,
    measure_slice,
    measure_volume,
)
from lsms_viewer.state.annotation import LesionMeasurement, measure_lesion
from lsms_viewer.state.document import Document, Label


class Measurements:
    """Measurements of every label, the volume part recomputed only after the label's mask changed."""

    def __init__(self, document: Document):
        self.document = document
        self._volume: dict[int, tuple[Measurement3D, Density | None] | None] = {}
        self._long_axes: dict[int, dict[int, float]] = {}  # label -> {slice: long axis mm}
        events = document.events
        events.mask_changed.connect(self._on_mask_changed)
        events.label_removed.connect(self._forget)
        events.label_added.connect(self._forget)
        events.volume_changed.connect(self._clear)

    def _on_mask_changed(self, label: Label, slices: range) -> None:
        self._volume.pop(label.id, None)
        axes = self._long_axes.get(label.id)
        if axes:
            for z in slices:
                axes.pop(z, None)

    def _forget(self, label: Label) -> None:
        self._volume.pop(label.id, None)
        self._long_axes.pop(label.id, None)

    def _clear(self) -> None:
        self._volume.clear()
        self._long_axes.clear()

    def others(self, label: Label) -> np.ndarray | None:
        """Every other label's voxels: kept out of this label's density ring."""
        others = [lab.mask for lab in self.document.labels if lab.id != label.id]
        return np.logical_or.reduce(others) if others else None

    def volume_part(self, label: Label) -> tuple[Measurement3D, Density | None] | None:
        """Volume, extent, HU statistics and density of ``label`` (None when it is empty)."""
        if label.id not in self._volume:
            volume = self.document.volume
            try:
                # largest=False: the dock shows the shown slice's axes, not the largest slice's.
                self._volume[label.id] = measure_volume(volume.array, label.mask, array_spacing(volume.spacing),
                                                        exclude=self.others(label),
                                                        long_axes=self._long_axes.setdefault(label.id, {}),
                                                        largest=False, largest_piece=True)
            except MeasureError:
                self._volume[label.id] = None
        return self._volume[label.id]

    def slice_part(self, label: Label, k: int) -> tuple[Measurement2D, Density | None, str] | None:
        """Axes, area and patient side of ``label`` on slice ``k`` (None when absent there), of its largest
        connected piece there (``m2.pieces`` lists them all when there are several); its density is the
        lesion's, from :meth:`volume_part`."""
        volume = self.document.volume
        return measure_slice(volume.array, label.mask, k, array_spacing(volume.spacing), largest_piece=True)

    def lesion(self, label: Label, slice_index: int | None = None) -> LesionMeasurement:
        """What the annotation form and its checks need (``slice_index=None``: the largest slice)."""
        return measure_lesion(self.document.volume, label.mask, slice_index, exclude=self.others(label),
                              long_axes=self._long_axes.setdefault(label.id, {}))

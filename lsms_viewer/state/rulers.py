"""Rulers: straight-line distances measured on the study, in any plane (no Qt).

A ruler lies on one slice of one plane (axial, coronal or sagittal); its two ends are kept as continuous
voxel coordinates (i, j, k), so its length is the world distance between them, whatever the spacing,
direction cosines or gantry shear. Rulers belong to the study: the session keeps them (in its header's
``view`` part, as ``to_json`` writes them) and ``Rulers`` forgets them when another study is opened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsms_viewer.state.document import Document, Event

_PLANES = ("axial", "coronal", "sagittal")


@dataclass(frozen=True)
class Ruler:
    id: int
    plane: str
    index: int  # the slice of ``plane`` it was drawn on
    start: tuple[float, float, float]  # continuous voxel coordinates (i, j, k)
    end: tuple[float, float, float]

    def length_mm(self, volume) -> float:
        """World distance between the two ends (the direction matrix holds any shear)."""
        delta = (np.asarray(self.end) - np.asarray(self.start)) * np.asarray(volume.spacing)
        return float(np.linalg.norm(volume.direction @ delta))

    def to_json(self) -> dict:
        return {"id": self.id, "plane": self.plane, "index": self.index, "start": list(self.start),
                "end": list(self.end)}


class Rulers:
    """The rulers of the open study. Events: ``added(ruler)``, ``removed(ruler)``, ``reset()`` (all replaced)."""

    def __init__(self, document: Document):
        self.document = document
        self._items: list[Ruler] = []
        self._next_id = 1
        self.added = Event("ruler_added")
        self.removed = Event("ruler_removed")
        self.reset = Event("rulers_reset")
        document.events.volume_changed.connect(lambda: self.load([]))

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def get(self, ruler_id: int) -> Ruler | None:
        return next((r for r in self._items if r.id == ruler_id), None)

    def on(self, plane: str, index: int) -> list[Ruler]:
        """The rulers drawn on slice ``index`` of ``plane``."""
        return [r for r in self._items if r.plane == plane and r.index == index]

    def add(self, plane: str, index: int, start, end) -> Ruler:
        if plane not in _PLANES:
            raise ValueError(f"unknown plane {plane!r}")
        ruler = Ruler(self._next_id, plane, int(index), tuple(float(v) for v in start),
                      tuple(float(v) for v in end))
        self._next_id += 1
        self._items.append(ruler)
        self.added.emit(ruler)
        return ruler

    def remove(self, ruler_id: int) -> None:
        ruler = self.get(ruler_id)
        if ruler is not None:
            self._items.remove(ruler)
            self.removed.emit(ruler)

    def to_json(self) -> list[dict]:
        return [r.to_json() for r in self._items]

    def load(self, items) -> list[str]:
        """Replace the rulers by those stored (``to_json``'s list); entries that do not fit the open study
        are skipped and described in the notes returned."""
        self._items, notes = [], []
        shape = self.document.volume.shape if self.document.volume is not None else None
        for item in items if isinstance(items, list) else []:
            try:
                plane, index = str(item["plane"]), int(item["index"])
                start = tuple(float(v) for v in item["start"])
                end = tuple(float(v) for v in item["end"])
                ruler_id = int(item.get("id", 0)) or self._next_id
            except (KeyError, TypeError, ValueError):
                notes.append("a ruler that could not be read was skipped")
                continue
            inside = shape is not None and all(
                len(p) == 3 and all(np.isfinite(p)) and all(0 <= p[a] <= shape[2 - a] for a in range(3))
                for p in (start, end))
            if plane not in _PLANES or not inside or self.get(ruler_id) is not None:
                notes.append(f"ruler {ruler_id} does not lie in this study: skipped")
                continue
            self._items.append(Ruler(ruler_id, plane, index, start, end))
        self._next_id = max([r.id for r in self._items], default=0) + 1
        self.reset.emit()
        return notes

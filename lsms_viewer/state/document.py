"""The open study: one CT ``Volume`` and its labels, in plain Python and numpy (no Qt).

Views subscribe to ``Document.events``; every change goes through a Document method, which emits one
event per thing it changed. That single path is the seam for the undo history and the session autosave:
they listen to the events (the history keeps a compressed shadow of every mask to know what an edit
overwrote), so no tool or controller records anything itself.

Masks are dense boolean arrays on the CT's grid, shape (Z, Y, X) like ``volume.array``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lsms_core.volume import Volume
from lsms_viewer.state.maskbits import PackedMask

# Distinct, colour-blind-aware hues that stay readable over grey CT (Okabe-Ito, then Tableau extras).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (204, 121, 167),
    (213, 94, 0),
    (0, 114, 178),
    (255, 99, 132),
    (140, 86, 255),
    (23, 190, 207),
)

MAX_LABELS = 127  # ids 1..127: the overlay codes a label's edge as id | 0x80 in one uint8 image


class Event:
    """A minimal synchronous signal: ``connect(callback)``, ``emit(*args)`` (napari-style, Qt-free)."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[..., None]] = []

    def connect(self, callback: Callable[..., None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class DocumentEvents:
    """Every event a Document emits.

    - ``volume_changed()``: a new volume was set (all labels are gone).
    - ``label_added(label)``, ``label_removed(label)``.
    - ``label_changed(label, field_name)``: a display or text property (name, color, visible, opacity,
      expression, run info) changed; the mask did not.
    - ``mask_changed(label, slices)``: voxels changed; ``slices`` is a ``range`` of slice indices that may
      differ, so a view only redraws when its slice is inside it.
    - ``active_label_changed(label_or_None)``.
    """

    def __init__(self) -> None:
        self.volume_changed = Event("volume_changed")
        self.label_added = Event("label_added")
        self.label_removed = Event("label_removed")
        self.label_changed = Event("label_changed")
        self.mask_changed = Event("mask_changed")
        self.active_label_changed = Event("active_label_changed")


@dataclass
class RunInfo:
    """How a label's mask was produced by the model (absent for imported or hand-drawn labels)."""

    expression: str
    seconds: float
    device: str
    checkpoint: str
    trained: bool
    slices: tuple[int, int]  # [start, stop) of the slices the model ran on
    notes: list[str] = field(default_factory=list)
    finished_at: float = field(default_factory=time.time)
    #: the mask as the model gave it (before any hand edit), for the provenance of annotation exports
    mask: PackedMask | None = field(default=None, repr=False)
    #: what made the mask: "lsms" (the network), "candidates" (the words resolved among the lesions it saw),
    #: the refiner's name when it redrew the lesion
    stages: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Label:
    """One segmented structure (usually one lesion) and how it is shown."""

    id: int
    name: str
    expression: str
    color: tuple[int, int, int]
    mask: np.ndarray  # bool, shape == volume.shape
    visible: bool = True
    opacity: float = 0.45
    run: RunInfo | None = None
    # Free-form extras other parts attach (annotation attributes, provenance); kept through the session.
    meta: dict = field(default_factory=dict)

    def slice_extent(self) -> range:
        """Slices holding at least one voxel of this label (empty range if none)."""
        nonzero = np.flatnonzero(self.mask.any(axis=(1, 2)))
        if nonzero.size == 0:
            return range(0)
        return range(int(nonzero[0]), int(nonzero[-1]) + 1)


_LABEL_FIELDS = {"name", "expression", "color", "visible", "opacity", "run", "meta"}


class Document:
    """The study being viewed: a Volume, its labels (ordered), and the active label."""

    def __init__(self, volume: Volume | None = None):
        self.events = DocumentEvents()
        self.volume: Volume | None = None
        self._labels: list[Label] = []
        self._active_id: int | None = None
        if volume is not None:
            self.set_volume(volume)

    # -- volume -------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        """Replace the study; drops all labels (they belong to the previous grid)."""
        if volume.array.ndim != 3:
            raise ValueError(f"expected a 3-D volume, got shape {volume.array.shape}")
        self.volume = volume
        self._labels = []
        self._active_id = None
        self.events.volume_changed.emit()

    def _require_volume(self) -> Volume:
        if self.volume is None:
            raise RuntimeError("no volume is open")
        return self.volume

    # -- labels -------------------------------------------------------------------------------------
    @property
    def labels(self) -> list[Label]:
        return list(self._labels)

    def label(self, label_id: int) -> Label:
        for label in self._labels:
            if label.id == label_id:
                return label
        raise KeyError(f"no label with id {label_id}")

    def has_label(self, label_id: int) -> bool:
        return any(label.id == label_id for label in self._labels)

    def next_label_id(self) -> int:
        used = {label.id for label in self._labels}
        for candidate in range(1, MAX_LABELS + 1):
            if candidate not in used:
                return candidate
        raise RuntimeError(f"a study holds at most {MAX_LABELS} labels")

    def next_color(self) -> tuple[int, int, int]:
        used = {label.color for label in self._labels}
        for color in PALETTE:
            if color not in used:
                return color
        return PALETTE[len(self._labels) % len(PALETTE)]

    def add_label(
        self,
        mask: np.ndarray,
        expression: str = "",
        name: str | None = None,
        color: tuple[int, int, int] | None = None,
        run: RunInfo | None = None,
        meta: dict | None = None,
    ) -> Label:
        """Add a label with a full-volume mask; it becomes the active label."""
        volume = self._require_volume()
        mask = self._checked_mask(mask, volume)
        label_id = self.next_label_id()
        label = Label(
            id=label_id,
            name=name or _default_name(expression, label_id),
            expression=expression,
            color=tuple(int(c) for c in (color or self.next_color())),
            mask=mask,
            run=run,
            meta=dict(meta or {}),
        )
        self._labels.append(label)
        self.events.label_added.emit(label)
        self.set_active(label.id)
        return label

    def insert_label(self, label: Label, index: int | None = None) -> None:
        """Put back a label object (undo of a delete); keeps its id, which must be free."""
        volume = self._require_volume()
        if self.has_label(label.id):
            raise ValueError(f"label id {label.id} is already used")
        label.mask = self._checked_mask(label.mask, volume)
        index = len(self._labels) if index is None else max(0, min(index, len(self._labels)))
        self._labels.insert(index, label)
        self.events.label_added.emit(label)

    def remove_label(self, label_id: int) -> None:
        """Remove a label (the undo history keeps what it needs to put it back)."""
        label = self.label(label_id)
        self._labels.remove(label)
        if self._active_id == label_id:
            self._active_id = None
            self.events.active_label_changed.emit(None)
        self.events.label_removed.emit(label)

    def update_label(self, label_id: int, **changes) -> None:
        """Change display/text fields (name, expression, color, visible, opacity, run, meta); one
        ``label_changed`` event per field."""
        unknown = set(changes) - _LABEL_FIELDS
        if unknown:
            raise TypeError(f"unknown label field(s): {sorted(unknown)}")
        label = self.label(label_id)
        for key, value in changes.items():
            if key == "color":
                value = tuple(int(c) for c in value)
            elif key == "opacity":
                value = float(min(1.0, max(0.0, value)))
            elif key == "name":
                value = str(value).strip() or label.name
            setattr(label, key, value)
            self.events.label_changed.emit(label, key)

    def replace_mask(
        self, label_id: int, mask: np.ndarray, expression: str | None = None, run: RunInfo | None = None
    ) -> np.ndarray:
        """Replace a label's whole mask (a re-run with edited words). Returns the previous mask."""
        volume = self._require_volume()
        label = self.label(label_id)
        mask = self._checked_mask(mask, volume)
        previous = label.mask
        changed = np.flatnonzero((previous != mask).any(axis=(1, 2)))
        label.mask = mask
        if expression is not None and expression != label.expression:
            label.expression = expression
            self.events.label_changed.emit(label, "expression")
        if run is not None:
            label.run = run
            self.events.label_changed.emit(label, "run")
        if changed.size:
            self.events.mask_changed.emit(label, range(int(changed[0]), int(changed[-1]) + 1))
        return previous

    def write_region(self, label_id: int, region: tuple[slice, slice, slice], values: np.ndarray) -> None:
        """Write ``values`` into ``label.mask[region]``.

        This is the one primitive for editing tools: a stroke writes its bounding box; the undo history
        finds what changed by comparing the slices of ``mask_changed`` with its compressed shadow.
        """
        label = self.label(label_id)
        region = tuple(region)
        label.mask[region] = np.asarray(values, dtype=bool)
        k = region[0]
        start, stop, _ = k.indices(label.mask.shape[0]) if isinstance(k, slice) else (int(k), int(k) + 1, 1)
        self.events.mask_changed.emit(label, range(start, stop))

    # -- active label ----------------------------------------------------------------------------
    @property
    def active_label(self) -> Label | None:
        if self._active_id is None:
            return None
        return self.label(self._active_id)

    def set_active(self, label_id: int | None) -> None:
        if label_id is not None:
            self.label(label_id)  # raises if unknown
        if label_id == self._active_id:
            return
        self._active_id = label_id
        self.events.active_label_changed.emit(self.active_label)

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _checked_mask(mask: np.ndarray, volume: Volume) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != volume.array.shape:
            raise ValueError(f"mask shape {mask.shape} differs from the volume's {volume.array.shape}")
        return mask.astype(bool, copy=mask.dtype != bool)


AUTO_NAME_CHARS = 160  # an automatic name is the expression, cut at a word before this many characters


def auto_name(expression: str) -> str:
    """A label's automatic name: its expression (whitespace collapsed), cut at a word boundary when longer
    than ``AUTO_NAME_CHARS``. Never a display ellipsis: views elide what does not fit, files get the name."""
    text = " ".join(expression.split())
    if len(text) <= AUTO_NAME_CHARS:
        return text
    cut = text[:AUTO_NAME_CHARS + 1].rsplit(" ", 1)[0]
    return cut if cut else text[:AUTO_NAME_CHARS]


def _default_name(expression: str, label_id: int) -> str:
    return auto_name(expression) or f"Label {label_id}"

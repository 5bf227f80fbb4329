"""Undo/redo of every change to a Document's labels, stored as compressed bounding-box diffs.

The history listens to ``Document.events`` instead of wrapping each tool, so *every* path that changes a
label is recorded the same way: a brush stroke, a fill, a model run (``add_label``/``replace_mask``), a
rename, a delete. To know what a change overwrote without copying volumes, it keeps a *shadow* of every
label: one zlib-compressed bit-packed image per slice (a 512x512 slice is 32 KB packed, a few hundred bytes
compressed for a lesion). On ``mask_changed(label, slices)`` it compares only those slices with the shadow
and stores, per changed slice, the XOR of before and after inside the changed box, bit-packed and
compressed. Applying that XOR again flips the box back, so one patch serves undo and redo.

Grouping: ``begin_batch``/``end_batch`` (or ``with history.batch(...)``) make one entry of everything in
between (a whole stroke, made of many mouse-move writes); ``with history.model_run(run):`` is the batch of
one model run, named after its words, so one Ctrl+Z undoes the run with its rename and bookkeeping.
Outside a batch, a change of a label's expression or run info is held open and merged with the mask change
that follows it, which is what ``Document.replace_mask`` emits for a re-run.

Visibility and opacity are display settings, not edits: they are tracked but never recorded.

The compressed shadow is also what the session autosave writes (``compressed_slices``), so saving never
re-compresses a volume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from lsms_viewer.state.document import Document, Event, Label, RunInfo
from lsms_viewer.state.maskbits import nbytes_of, pack_bits, pack_volume, unpack_bits, unpack_volume

DEFAULT_BUDGET_BYTES = 256 * 1024 * 1024
_DISPLAY_FIELDS = {"visible", "opacity"}
_MERGING_FIELDS = {"expression", "run"}
_FIELDS = ("name", "expression", "color", "visible", "opacity", "run", "meta")


# -- history parts --------------------------------------------------------------------------------------
class _Part:
    nbytes = 0

    def undo(self, doc: Document) -> None:
        raise NotImplementedError

    def redo(self, doc: Document) -> None:
        raise NotImplementedError


@dataclass
class _MaskFlip(_Part):
    """Voxels of one slice box that changed; XOR-ing them in again restores the other state."""

    label_id: int
    box: tuple[int, int, int, int, int]  # z, y0, y1, x0, x1
    flip: bytes
    nbytes: int = 0

    def __post_init__(self) -> None:
        self.nbytes = len(self.flip) + 64

    def _apply(self, doc: Document) -> None:
        z, y0, y1, x0, x1 = self.box
        region = (slice(z, z + 1), slice(y0, y1), slice(x0, x1))
        flip = unpack_bits(self.flip, (1, y1 - y0, x1 - x0))
        doc.write_region(self.label_id, region, doc.label(self.label_id).mask[region] ^ flip)

    undo = redo = _apply


@dataclass
class _FieldChange(_Part):
    label_id: int
    before: dict
    after: dict
    nbytes: int = 0

    def __post_init__(self) -> None:
        # Count what is really held: free-form meta can be long, and a run carries the model's packed mask
        # (shared with the label, never copied, but held alive by this step).
        self.nbytes = 256 + _held_bytes(self.before) + _held_bytes(self.after)

    def undo(self, doc: Document) -> None:
        doc.update_label(self.label_id, **self.before)

    def redo(self, doc: Document) -> None:
        doc.update_label(self.label_id, **self.after)


@dataclass
class _LabelRecord:
    """Everything needed to rebuild a Label object, with its mask compressed."""

    fields: dict
    label_id: int
    index: int
    shape: tuple[int, int, int]
    slices: list[bytes | None]

    def build(self) -> Label:
        mask = unpack_volume(self.slices, self.shape)
        return Label(id=self.label_id, mask=mask, **_copy_fields(self.fields))


@dataclass
class _LabelPresence(_Part):
    """A label was added (``added=True``) or removed; undo does the opposite."""

    record: _LabelRecord
    added: bool
    was_active: bool = False
    nbytes: int = 0

    def __post_init__(self) -> None:
        self.nbytes = nbytes_of(self.record.slices) + 512

    def _insert(self, doc: Document) -> None:
        doc.insert_label(self.record.build(), self.record.index)
        if self.added or self.was_active:
            doc.set_active(self.record.label_id)

    def _remove(self, doc: Document) -> None:
        doc.remove_label(self.record.label_id)

    def undo(self, doc: Document) -> None:
        (self._remove if self.added else self._insert)(doc)

    def redo(self, doc: Document) -> None:
        (self._insert if self.added else self._remove)(doc)


@dataclass
class UndoEntry:
    """One step of the history: what the Edit menu names, and the parts to reverse."""

    description: str
    parts: list[_Part] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts) + 128


def _merge_flips(parts: list[_Part]) -> list[_Part]:
    """One flip per (label, slice) for each run of consecutive flips: XOR patches compose by XOR, so a
    stroke of 40 mouse moves undoes as one write (one redraw) instead of 40."""
    out: list[_Part] = []
    run: dict[tuple[int, int], list[_MaskFlip]] = {}

    def close_run() -> None:
        for (label_id, z), flips in run.items():
            if len(flips) == 1:
                out.append(flips[0])
                continue
            y0 = min(f.box[1] for f in flips)
            y1 = max(f.box[2] for f in flips)
            x0 = min(f.box[3] for f in flips)
            x1 = max(f.box[4] for f in flips)
            acc = np.zeros((y1 - y0, x1 - x0), dtype=bool)
            for f in flips:
                _, fy0, fy1, fx0, fx1 = f.box
                acc[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] ^= unpack_bits(f.flip, (fy1 - fy0, fx1 - fx0))
            if acc.any():
                rows, cols = np.flatnonzero(acc.any(axis=1)), np.flatnonzero(acc.any(axis=0))
                a, b, c, d = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
                out.append(_MaskFlip(label_id, (z, y0 + a, y0 + b, x0 + c, x0 + d), pack_bits(acc[a:b, c:d])))
        run.clear()

    for part in parts:
        if isinstance(part, _MaskFlip):
            run.setdefault((part.label_id, part.box[0]), []).append(part)
        else:
            close_run()
            out.append(part)
    close_run()
    return out


def _held_bytes(fields: dict) -> int:
    total = 0
    for value in fields.values():
        total += len(repr(value))
        if isinstance(value, RunInfo) and value.mask is not None:
            total += value.mask.nbytes
    return total


def _copy_fields(fields: dict) -> dict:
    out = dict(fields)
    out["meta"] = _deep_copy(out.get("meta", {}))
    return out


def _deep_copy(value):
    import copy

    return copy.deepcopy(value)


def _snapshot(label: Label) -> dict:
    return {name: _deep_copy(getattr(label, name)) for name in _FIELDS}


def describe_run(run: RunInfo | None, expression: str = "") -> str:
    """How the Edit menu names a model run: ``model run “<words>”`` (shortened to 40 characters)."""
    text = (run.expression if run is not None else expression) or ""
    short = text if len(text) <= 40 else text[:39] + "…"
    return f"model run “{short}”"


# -- the history ---------------------------------------------------------------------------------------
class UndoHistory:
    """Undo/redo for one Document, bounded by a memory budget (oldest steps are dropped first)."""

    def __init__(self, document: Document, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.document = document
        self.budget_bytes = int(budget_bytes)
        self._undo: list[UndoEntry] = []
        self._redo: list[UndoEntry] = []
        self._shadow: dict[int, list[bytes | None]] = {}
        self._fields: dict[int, dict] = {}
        self._order: list[int] = []
        self._batch: UndoEntry | None = None
        self._batch_depth = 0
        self._pending: UndoEntry | None = None  # field changes waiting for their mask change
        self._pending_label: int | None = None
        self._applying = False
        self.dropped = 0  # entries dropped to stay within the budget
        #: ``changed(reason)`` after a step is recorded ("edit"), undone ("undo"), redone ("redo") or the
        #: history is cleared ("clear"). The autosave and the Edit menu listen to it.
        self.changed = Event("history_changed")
        events = document.events
        events.volume_changed.connect(self._on_volume_changed)
        events.label_added.connect(self._on_label_added)
        events.label_removed.connect(self._on_label_removed)
        events.label_changed.connect(self._on_label_changed)
        events.mask_changed.connect(self._on_mask_changed)
        events.active_label_changed.connect(self._on_active_changed)
        self._active: int | None = None
        self._previous_active: int | None = None
        self._on_volume_changed(emit=False)

    def close(self) -> None:
        """Stop listening to the document."""
        events = self.document.events
        events.volume_changed.disconnect(self._on_volume_changed)
        events.label_added.disconnect(self._on_label_added)
        events.label_removed.disconnect(self._on_label_removed)
        events.label_changed.disconnect(self._on_label_changed)
        events.mask_changed.disconnect(self._on_mask_changed)
        events.active_label_changed.disconnect(self._on_active_changed)

    # -- queries ------------------------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        self.flush()
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        self.flush()
        return bool(self._redo)

    @property
    def undo_text(self) -> str:
        """What Ctrl+Z will undo, e.g. ``"brush stroke"`` ("" when nothing)."""
        self.flush()
        return self._undo[-1].description if self._undo else ""

    @property
    def redo_text(self) -> str:
        self.flush()
        return self._redo[-1].description if self._redo else ""

    @property
    def nbytes(self) -> int:
        """Memory held by the undo and redo steps (not counting the shadow of the current state)."""
        return sum(e.nbytes for e in self._undo) + sum(e.nbytes for e in self._redo)

    @property
    def shadow_nbytes(self) -> int:
        return sum(nbytes_of(s) for s in self._shadow.values())

    def __len__(self) -> int:
        self.flush()
        return len(self._undo)

    def compressed_slices(self, label_id: int) -> list[bytes | None]:
        """The label's current mask as one :func:`pack_bits` record per slice (what autosave writes)."""
        return list(self._shadow[label_id])

    # -- grouping -----------------------------------------------------------------------------------
    def begin_batch(self, description: str) -> None:
        """Start grouping changes into one step (nested calls join the outer one)."""
        self.flush()
        if self._batch_depth == 0:
            self._batch = UndoEntry(description)
        self._batch_depth += 1

    def end_batch(self) -> UndoEntry | None:
        """Close a batch; returns the recorded step (``None`` if it changed nothing or is still nested)."""
        if self._batch_depth == 0:
            return None
        self._batch_depth -= 1
        if self._batch_depth:
            return None
        entry, self._batch = self._batch, None
        if entry is not None and entry.parts:
            entry.parts = _merge_flips(entry.parts)
            if entry.parts:  # a stroke painted and erased back to the start changes nothing
                self._push(entry)
                return entry
        return None

    @property
    def in_batch(self) -> bool:
        """True while a batch (e.g. a brush stroke) is open."""
        return self._batch_depth > 0

    @contextlib.contextmanager
    def batch(self, description: str) -> Iterator[None]:
        self.begin_batch(description)
        try:
            yield
        finally:
            self.end_batch()

    def model_run(self, run: RunInfo) -> contextlib.AbstractContextManager[None]:
        """Group everything applying a model run changes (the mask, its words and run info, the name that
        follows the words, the kept model mask) into one step named after the run's words."""
        return self.batch(describe_run(run))

    def flush(self) -> None:
        """Record field changes still waiting for a mask change (called before any query)."""
        if self._pending is not None:
            entry, self._pending, self._pending_label = self._pending, None, None
            self._push(entry)

    # -- undo / redo --------------------------------------------------------------------------------
    def undo(self) -> str | None:
        """Undo the last step; returns its description, or ``None`` when there was nothing to undo."""
        self.flush()
        if self._batch_depth or not self._undo:
            return None
        entry = self._undo.pop()
        self._run(entry, undo=True)
        self._redo.append(entry)
        self.changed.emit("undo")
        return entry.description

    def redo(self) -> str | None:
        self.flush()
        if self._batch_depth or not self._redo:
            return None
        entry = self._redo.pop()
        self._run(entry, undo=False)
        self._undo.append(entry)
        self.changed.emit("redo")
        return entry.description

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._pending = None
        self.changed.emit("clear")

    def _run(self, entry: UndoEntry, undo: bool) -> None:
        self._applying = True
        try:
            for part in reversed(entry.parts) if undo else entry.parts:
                part.undo(self.document) if undo else part.redo(self.document)
        finally:
            self._applying = False

    def _push(self, entry: UndoEntry) -> None:
        self._undo.append(entry)
        self._redo.clear()
        # Keep the newest step even when it alone exceeds the budget: losing the step just made is worse.
        while len(self._undo) > 1 and self.nbytes > self.budget_bytes:
            self._undo.pop(0)
            self.dropped += 1
        self.changed.emit("edit")

    def _record(self, part: _Part, description: str, label_id: int | None, merging: bool = False) -> None:
        if self._applying:
            return
        if self._batch is not None:
            self._batch.parts.append(part)
            return
        if self._pending is not None and label_id == self._pending_label:
            self._pending.parts.append(part)
            if not merging:
                self.flush()
            return
        self.flush()
        if merging:
            self._pending, self._pending_label = UndoEntry(description, [part]), label_id
        else:
            self._push(UndoEntry(description, [part]))

    # -- document events ----------------------------------------------------------------------------
    def _on_volume_changed(self, emit: bool = True) -> None:
        self._undo.clear()
        self._redo.clear()
        self._pending = self._batch = None
        self._batch_depth = 0
        self._shadow.clear()
        self._fields.clear()
        self._order = []
        for label in self.document.labels:
            self._track(label)
        if emit:
            self.changed.emit("clear")

    def _track(self, label: Label) -> None:
        self._shadow[label.id] = pack_volume(label.mask)
        self._fields[label.id] = _snapshot(label)
        self._order = [lab.id for lab in self.document.labels]

    def _on_label_added(self, label: Label) -> None:
        self._track(label)
        index = self._order.index(label.id)
        record = _LabelRecord(_copy_fields(self._fields[label.id]), label.id, index, label.mask.shape,
                              list(self._shadow[label.id]))
        if label.run is not None:
            what = describe_run(label.run, label.expression)
        else:
            what = f"new label “{label.name}”"
        self._record(_LabelPresence(record, added=True), what, label.id)

    def _on_label_removed(self, label: Label) -> None:
        slices = self._shadow.pop(label.id, None)
        fields = self._fields.pop(label.id, None)
        index = self._order.index(label.id) if label.id in self._order else 0
        self._order = [lab.id for lab in self.document.labels]
        if slices is None or fields is None:
            return
        # remove_label clears the active label before it says the label is gone: look one step back.
        was_active = self._active is None and self._previous_active == label.id
        record = _LabelRecord(fields, label.id, index, label.mask.shape, slices)
        self._record(_LabelPresence(record, added=False, was_active=was_active), f"delete “{label.name}”", label.id)

    def _on_active_changed(self, label: Label | None) -> None:
        self._previous_active, self._active = self._active, (label.id if label is not None else None)

    def _on_label_changed(self, label: Label, field_name: str) -> None:
        fields = self._fields.get(label.id)
        if fields is None:
            return
        before = fields.get(field_name)
        after = _deep_copy(getattr(label, field_name))
        fields[field_name] = after
        if field_name in _DISPLAY_FIELDS:
            return
        part = _FieldChange(label.id, {field_name: before}, {field_name: _deep_copy(after)})
        if field_name == "run":
            what = describe_run(label.run, label.expression)
            if self._pending is not None and self._pending_label == label.id:
                self._pending.description = what
        elif field_name == "expression":
            what = f"change words of “{label.name}”"
        elif field_name == "meta":
            what = f"edit annotation of “{label.name}”"
        else:
            what = f"change {field_name} of “{label.name}”"
        self._record(part, what, label.id, merging=field_name in _MERGING_FIELDS)

    def _on_mask_changed(self, label: Label, slices: range) -> None:
        shadow = self._shadow.get(label.id)
        if shadow is None:
            return
        shape = label.mask.shape[1:]
        parts: list[_Part] = []
        for z in slices:
            if not 0 <= z < len(shadow):
                continue
            now = label.mask[z]
            before = unpack_bits(shadow[z], shape)
            flip = before ^ now
            if not flip.any():
                continue
            rows, cols = np.flatnonzero(flip.any(axis=1)), np.flatnonzero(flip.any(axis=0))
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            parts.append(_MaskFlip(label.id, (int(z), y0, y1, x0, x1), pack_bits(flip[y0:y1, x0:x1])))
            shadow[z] = pack_bits(now)
        if not parts or self._applying:
            return
        if self._batch is not None:
            self._batch.parts.extend(parts)
            return
        if self._pending is not None and self._pending_label == label.id:
            self._pending.parts.extend(parts)
            self.flush()
            return
        self.flush()
        self._push(UndoEntry(f"edit “{label.name}”", parts))

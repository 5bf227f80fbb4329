"""Autosave and crash recovery of the work on a study: labels, words, attributes (no undo history).

A session file is a zip (stored, not deflated: the masks are already compressed) holding
``session.json`` (format, the study's identity, labels' fields, view state, whether the viewer closed
cleanly) and one ``label_<id>.bin`` per label: the label's slices as the undo history keeps them
(zlib-compressed packed bits, empty slices omitted), so an autosave never re-compresses a volume. A label
made by the model also has ``model_<id>.bin``, the mask the model gave it, in the same encoding.

It lives in the user data folder (``$LSMS_SESSION_DIR``, else ``$XDG_DATA_HOME/lsms-viewer/sessions``,
``~/Library/Application Support/...`` or ``%APPDATA%\\...``), never next to the CT: DICOM folders are
often read-only or shared, and the study is never written to. Its name comes from the study's identity
(source path, grid and a voxel checksum), so reopening a study finds its session.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``): a kill -9 during a save
leaves the previous session intact. A file marked ``clean_exit: false`` whose process is gone is a crash,
and the next start offers to restore it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import LSMSError
from lsms_core.volume import Volume
from lsms_viewer.state.document import Document, Label, RunInfo
from lsms_viewer.state.maskbits import PackedMask, pack_volume, unpack_bits

FORMAT = "lsms-viewer-session"
VERSION = 1
SUFFIX = ".lsms-session"


class SessionError(LSMSError):
    """A session file cannot be read or does not belong to the open study."""


# -- where ------------------------------------------------------------------------------------------------
def session_dir() -> Path:
    """The folder holding session files (created on demand)."""
    env = os.environ.get("LSMS_SESSION_DIR")
    if env:
        return Path(env)
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "lsms-viewer" / "sessions"


def volume_fingerprint(volume: Volume) -> dict:
    """Identity of a study's voxels: grid plus a checksum of a regular subsample (fast on 512x512x300)."""
    arr = np.ascontiguousarray(volume.array[::3, ::7, ::7])
    checksum = zlib.crc32(arr.astype(np.float32).tobytes()) & 0xFFFFFFFF
    return {
        "shape": [int(s) for s in volume.shape],
        "spacing": [round(float(s), 6) for s in volume.spacing],
        "origin": [round(float(o), 4) for o in volume.origin],
        "checksum": f"{checksum:08x}",
    }


def session_key(volume: Volume) -> str:
    fp = volume_fingerprint(volume)
    source = str(Path(volume.source).resolve()) if volume.source else ""
    text = json.dumps({"source": source, **fp}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def session_path(volume: Volume, folder: Path | None = None) -> Path:
    return Path(folder or session_dir()) / f"{session_key(volume)}{SUFFIX}"


# -- data ---------------------------------------------------------------------------------------------------
@dataclass
class SessionLabel:
    id: int
    name: str
    expression: str
    color: tuple[int, int, int]
    visible: bool
    opacity: float
    run: dict | None
    meta: dict
    mask: np.ndarray
    model_mask: PackedMask | None = None  # the mask the model gave the label (its run's)


@dataclass
class SessionData:
    path: Path
    header: dict
    labels: list[SessionLabel] = field(default_factory=list)

    @property
    def source(self) -> Path | None:
        src = self.header.get("source")
        return Path(src) if src else None

    @property
    def clean_exit(self) -> bool:
        return bool(self.header.get("clean_exit", False))

    @property
    def saved_at(self) -> float:
        return float(self.header.get("saved_at", 0.0))

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        name = self.source.name if self.source else self.header.get("title", "a study")
        n = len(self.header.get("labels", []))
        return f"{name}: {n} label{'s' if n != 1 else ''}, saved {when}"


def _json_safe(value):
    """Values JSON can hold; anything else becomes its string form (never lost silently: it is kept)."""
    return json.loads(json.dumps(value, default=str))


def _run_to_dict(run: RunInfo | None) -> dict | None:
    """The run's fields for the JSON header; its mask goes into the zip as a blob of its own."""
    if run is None:
        return None
    return _json_safe({f.name: getattr(run, f.name) for f in dataclasses.fields(RunInfo) if f.name != "mask"})


def _run_from_dict(data: dict | None) -> RunInfo | None:
    if not data:
        return None
    known = {f.name for f in dataclasses.fields(RunInfo)} - {"mask"}
    kwargs = {k: v for k, v in data.items() if k in known}
    kwargs["slices"] = tuple(kwargs.get("slices", (0, 0)))
    kwargs["notes"] = list(kwargs.get("notes", []))
    return RunInfo(**kwargs)


def _blob(slices) -> tuple[bytes, list[list[int]]]:
    """Per-slice records as one blob and its index [[slice, offset, length], ...] (empty slices omitted)."""
    index, chunks, offset = [], [], 0
    for z, data in enumerate(slices):
        if data is None:
            continue
        index.append([z, offset, len(data)])
        chunks.append(data)
        offset += len(data)
    return b"".join(chunks), index


def _slices_of_blob(blob: bytes, index: list, count: int) -> tuple[bytes | None, ...]:
    slices: list[bytes | None] = [None] * count
    for z, offset, length in index:
        slices[z] = blob[offset: offset + length]
    return tuple(slices)


def _legacy_model_mask(meta: dict) -> PackedMask | None:
    """Sessions written before the model's mask was kept on its run held it in ``meta`` as base64 text."""
    data = meta.pop("first_model_mask", None)
    if not data:
        return None
    raw = base64.b64decode(data["bits"]) if data.get("bits") else None
    return PackedMask.of(unpack_bits(raw, tuple(data["shape"])))


# -- writing ------------------------------------------------------------------------------------------------
def write_session(
    path: Path,
    document: Document,
    slices_of=None,
    *,
    clean_exit: bool = False,
    view: dict | None = None,
) -> Path:
    """Write the document's labels to ``path`` atomically.

    ``slices_of(label_id)`` returns the label's packed slices (the undo history's
    ``compressed_slices``); without it the masks are packed here.
    """
    volume = document.volume
    if volume is None:
        raise SessionError(path, "no study is open: nothing to save")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels_json, blobs = [], {}
    for label in document.labels:
        slices = slices_of(label.id) if slices_of is not None else pack_volume(label.mask)
        blobs[f"label_{label.id}.bin"], index = _blob(slices)
        extra = {}
        if label.run is not None and label.run.mask is not None:
            blobs[f"model_{label.id}.bin"], extra["model_slices"] = _blob(label.run.mask.slices)
        labels_json.append({
            "id": label.id,
            "name": label.name,
            "expression": label.expression,
            "color": list(label.color),
            "visible": bool(label.visible),
            "opacity": float(label.opacity),
            "run": _run_to_dict(label.run),
            "meta": _json_safe(label.meta),
            "slices": index,
            **extra,
        })
    active = document.active_label
    header = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": time.time(),
        "pid": os.getpid(),
        "clean_exit": bool(clean_exit),
        "source": str(Path(volume.source).resolve()) if volume.source else None,
        "title": (volume.meta or {}).get("series_description") or (Path(volume.source).name if volume.source else ""),
        "volume": volume_fingerprint(volume),
        "active_label": active.id if active is not None else None,
        "view": _json_safe(view or {}),
        "labels": labels_json,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("session.json", json.dumps(header, indent=1, ensure_ascii=False))
        for name, data in blobs.items():
            zf.writestr(name, data)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(buffer.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


# -- reading ------------------------------------------------------------------------------------------------
def read_session(path: Path, *, masks: bool = True) -> SessionData:
    """Read a session file (``masks=False``: only its header, for listing)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            header = json.loads(zf.read("session.json").decode("utf-8"))
            if header.get("format") != FORMAT:
                raise SessionError(path, f"not a viewer session (format {header.get('format')!r})")
            if int(header.get("version", 0)) > VERSION:
                raise SessionError(path, f"written by a newer viewer (version {header.get('version')})")
            data = SessionData(path, header)
            if not masks:
                return data
            shape = tuple(header["volume"]["shape"])
            for item in header.get("labels", []):
                blob = zf.read(f"label_{item['id']}.bin")
                mask = np.zeros(shape, dtype=bool)
                for z, offset, length in item.get("slices", []):
                    mask[z] = unpack_bits(blob[offset : offset + length], shape[1:])
                meta = dict(item.get("meta") or {})
                model_mask = _legacy_model_mask(meta) if item.get("run") else None
                if "model_slices" in item:
                    model_blob = zf.read(f"model_{item['id']}.bin")
                    model_mask = PackedMask(shape, _slices_of_blob(model_blob, item["model_slices"], shape[0]))
                data.labels.append(SessionLabel(
                    id=int(item["id"]), name=item["name"], expression=item.get("expression", ""),
                    color=tuple(int(c) for c in item["color"]), visible=bool(item.get("visible", True)),
                    opacity=float(item.get("opacity", 0.45)), run=item.get("run"), meta=meta,
                    mask=mask, model_mask=model_mask,
                ))
            return data
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        if isinstance(exc, SessionError):
            raise
        raise SessionError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc


def matches(data: SessionData, volume: Volume) -> bool:
    """Whether a session was saved on this study's voxels."""
    return data.header.get("volume") == volume_fingerprint(volume)


def restore_labels(document: Document, data: SessionData) -> None:
    """Replace the document's labels by the session's, with their ids, order, words and attributes."""
    volume = document.volume
    if volume is None or not matches(data, volume):
        raise SessionError(data.path, "was saved on another study (grid or voxels differ)")
    for label in document.labels:
        document.remove_label(label.id)
    restored = []
    for item in data.labels:
        run = _run_from_dict(item.run)
        if run is not None:
            run.mask = item.model_mask
        label = Label(id=item.id, name=item.name, expression=item.expression, color=item.color,
                      mask=item.mask, visible=item.visible, opacity=item.opacity, run=run, meta=dict(item.meta))
        document.insert_label(label)
        restored.append(label)
    active = data.header.get("active_label")
    if active is not None and document.has_label(active):
        document.set_active(active)
    elif restored:
        document.set_active(restored[-1].id)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return False  # cannot probe cheaply; a crashed session is still offered
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def crashed_sessions(folder: Path | None = None) -> list[SessionData]:
    """Sessions left by a viewer that did not close cleanly and is no longer running, newest first."""
    folder = Path(folder or session_dir())
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            data = read_session(path, masks=False)
        except SessionError:
            continue
        if data.clean_exit or _process_alive(int(data.header.get("pid", -1))):
            continue
        if not data.header.get("labels") or not data.source:
            continue  # nothing to restore, or an in-memory study that cannot be reopened
        found.append(data)
    return sorted(found, key=lambda d: d.saved_at, reverse=True)


def set_aside(path: Path) -> Path:
    """Keep a session the user chose not to restore, under another name (work is never deleted)."""
    path = Path(path)
    target = path.with_name(f"{path.stem}.declined-{time.strftime('%Y%m%d-%H%M%S')}{SUFFIX}.bak")
    os.replace(path, target)
    return target


class Autosaver:
    """Saves the document's session after every recorded edit, undo, redo or model run (Qt-free).

    ``history`` is the :class:`lsms_viewer.state.history.UndoHistory`; its ``changed`` event triggers a save, and
    its compressed shadow provides the masks. Display changes (visibility, opacity) also save.
    """

    def __init__(self, document: Document, history, folder: Path | None = None, view_state=None):
        self.document = document
        self.history = history
        self.folder = Path(folder) if folder else None
        self.view_state = view_state or (lambda: {})
        self.enabled = True
        self.saves = 0
        self.last_error: str | None = None
        self.last_path: Path | None = None
        history.changed.connect(self._on_history)
        document.events.label_changed.connect(self._on_label_changed)

    def path(self) -> Path | None:
        volume = self.document.volume
        return None if volume is None else session_path(volume, self.folder)

    def save(self, clean_exit: bool = False) -> Path | None:
        """Save now; errors are kept in ``last_error`` (an autosave must never break an edit)."""
        if not self.enabled or self.document.volume is None:
            return None
        if not self.document.labels and not clean_exit:
            path = self.path()
            if path is None or not path.exists():
                return None  # nothing worth saving yet
        try:
            self.history.flush()
            path = write_session(self.path(), self.document, self.history.compressed_slices,
                                 clean_exit=clean_exit, view=self.view_state())
        except (OSError, LSMSError) as exc:
            self.last_error = f"autosave failed: {exc}"
            return None
        self.saves += 1
        self.last_error = None
        self.last_path = path
        return path

    def _on_history(self, reason: str) -> None:
        if reason != "clear":
            self.save()

    def _on_label_changed(self, _label, field_name: str) -> None:
        if field_name in ("visible", "opacity"):
            self.save()

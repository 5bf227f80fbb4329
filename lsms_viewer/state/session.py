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

A session on offer is first moved aside (``<key>.offered-<time>.lsms-session``), so nothing the viewer
saves while the question waits can write over it. A viewer holds ``<key>.lock`` (an OS lock, released by
the kernel when the process dies, holding its pid) while a study is open; a second viewer on the same
study saves beside it (``<key>.viewer-<pid>.lsms-session``) and never over the live viewer's session.
Files set aside are ``*.lsms-session.bak``: kept, never offered again, never deleted.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import math
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
from lsms_viewer.state.document import Document, Event, Label, RunInfo
from lsms_viewer.state.maskbits import PackedMask, pack_volume, unpack_bits

FORMAT = "lsms-viewer-session"
VERSION = 1
SUFFIX = ".lsms-session"
LOCK_SUFFIX = ".lock"
MAX_HEADER_BYTES = 32 << 20  # session.json: labels' fields and slice indexes (a few MB for 100 labels)
MAX_PID = 2**31 - 1


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
    notes: list[str] = field(default_factory=list)  # what could not be restored, and why

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

    @property
    def pid(self) -> int:
        return int(self.header.get("pid", -1))

    @property
    def study(self) -> str:
        """The study the labels belong to, as the user knows it: its path, and its series title."""
        title = str(self.header.get("title") or "")
        if self.source is None:
            return title or "an unsaved study"
        return f"{self.source}" + (f" ({title})" if title and title != self.source.name else "")

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        n = len(self.header.get("labels", []))
        return f"{n} label{'s' if n != 1 else ''} of {self.study}, saved {when}"


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
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_header(path: Path, header) -> dict:
    """The header's fields the viewer relies on, with their types; anything else is a SessionError."""
    if not isinstance(header, dict):
        raise SessionError(path, f"its header is a JSON {type(header).__name__}, not an object")
    if header.get("format") != FORMAT:
        raise SessionError(path, f"not a viewer session (format {header.get('format')!r})")
    version = header.get("version", 0)
    if not _is_int(version):
        raise SessionError(path, f"version {version!r} is not a number")
    if version > VERSION:
        raise SessionError(path, f"written by a newer viewer (version {version})")
    pid = header.get("pid", -1)
    if not _is_int(pid) or not (pid == -1 or 0 < pid <= MAX_PID):
        raise SessionError(path, f"pid {pid!r} is not a process id")
    saved_at = header.get("saved_at", 0.0)
    if not isinstance(saved_at, (int, float)) or isinstance(saved_at, bool) or not math.isfinite(saved_at):
        raise SessionError(path, f"saved_at {saved_at!r} is not a time")
    if not isinstance(header.get("clean_exit", False), bool):
        raise SessionError(path, f"clean_exit {header.get('clean_exit')!r} is not true or false")
    for key in ("source", "title"):
        if header.get(key) is not None and not isinstance(header[key], str):
            raise SessionError(path, f"{key} {header[key]!r} is not text")
    volume = header.get("volume")
    shape = volume.get("shape") if isinstance(volume, dict) else None
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(n) and 0 < n <= 1 << 16 for n in shape)):
        raise SessionError(path, f"the study's grid {shape!r} is not three sizes")
    labels = header.get("labels", [])
    if not isinstance(labels, list):
        raise SessionError(path, "labels is not a list")
    for i, item in enumerate(labels):
        if not (isinstance(item, dict) and _is_int(item.get("id")) and isinstance(item.get("name"), str)
                and isinstance(item.get("color"), list) and len(item["color"]) == 3
                and all(_is_int(c) for c in item["color"]) and isinstance(item.get("slices", []), list)):
            raise SessionError(path, f"label {i + 1} has no id, name or colour of the right type")
    if not isinstance(header.get("view", {}), dict):
        raise SessionError(path, "view is not an object")
    return header


def _read_header(path: Path, zf: zipfile.ZipFile) -> dict:
    info = zf.getinfo("session.json")
    if info.file_size > MAX_HEADER_BYTES:
        raise SessionError(path, f"its header claims {info.file_size} bytes, more than the "
                                 f"{MAX_HEADER_BYTES >> 20} MiB a session header can hold")
    with zf.open(info) as fh:
        raw = fh.read(MAX_HEADER_BYTES + 1)  # the zip's claimed size can lie: never read past the cap
    if len(raw) > MAX_HEADER_BYTES:
        raise SessionError(path, f"its header is larger than {MAX_HEADER_BYTES >> 20} MiB")
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise SessionError(path, "its header is nested too deeply to be a session") from None
    return _check_header(path, header)


def _read_member(path: Path, zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise SessionError(path, f"{name} claims {info.file_size} bytes, more than its label can take ({limit})")
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise SessionError(path, f"{name} is larger than its label can take ({limit} bytes)")
    return data


def _slice_mask(blob: bytes, entry, shape: tuple[int, int, int], what: str, notes: list[str]) -> tuple[int, np.ndarray] | None:
    """One ``[slice, offset, length]`` record of a label's blob, or None (with a note) when it is unusable."""
    if not (isinstance(entry, list) and len(entry) == 3 and all(_is_int(v) for v in entry)):
        notes.append(f"{what}: a slice record {entry!r} is malformed and was skipped")
        return None
    z, offset, length = entry
    if not 0 <= z < shape[0]:
        notes.append(f"{what}: slice {z} lies outside the study's slices 0..{shape[0] - 1} and was skipped")
        return None
    if offset < 0 or length <= 0 or offset + length > len(blob):
        notes.append(f"{what}: slice {z} points outside its data and was skipped")
        return None
    try:
        return z, unpack_bits(blob[offset: offset + length], shape[1:])
    except (zlib.error, ValueError) as exc:
        notes.append(f"{what}: slice {z} cannot be decoded ({exc}) and was skipped")
        return None


def read_session(path: Path, *, masks: bool = True, volume: Volume | None = None) -> SessionData:
    """Read a session file (``masks=False``: only its header, for listing).

    With ``volume``, the header must match that study before any mask is decoded. A slice record that
    cannot be used (outside the study, outside its data, undecodable) is skipped and named in ``notes``:
    the rest of the label is restored.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            header = _read_header(path, zf)
            data = SessionData(path, header)
            if not masks:
                return data
            if volume is not None and not matches(data, volume):
                raise SessionError(path, "was saved on another study (grid or voxels differ)")
            shape = tuple(header["volume"]["shape"])
            limit = shape[0] * (shape[1] * shape[2] // 8 + 1024) + 4096  # packed bits, zlib's worst case
            for item in header.get("labels", []):
                what = f"label {item['id']} ({item['name']})"
                blob = _read_member(path, zf, f"label_{item['id']}.bin", limit)
                mask = np.zeros(shape, dtype=bool)
                for entry in item.get("slices", []):
                    got = _slice_mask(blob, entry, shape, what, data.notes)
                    if got is not None:
                        mask[got[0]] = got[1]
                meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
                meta = dict(meta)
                model_mask = _legacy_model_mask(meta) if item.get("run") else None
                if isinstance(item.get("model_slices"), list):
                    model_blob = _read_member(path, zf, f"model_{item['id']}.bin", limit)
                    usable = [entry for entry in item["model_slices"]
                              if _slice_mask(model_blob, entry, shape, f"{what}, the model's mask", data.notes)]
                    model_mask = PackedMask(shape, _slices_of_blob(model_blob, usable, shape[0]))
                data.labels.append(SessionLabel(
                    id=int(item["id"]), name=item["name"], expression=str(item.get("expression", "")),
                    color=tuple(int(c) for c in item["color"]), visible=bool(item.get("visible", True)),
                    opacity=float(item.get("opacity", 0.45)),
                    run=item.get("run") if isinstance(item.get("run"), dict) else None, meta=meta,
                    mask=mask, model_mask=model_mask,
                ))
            return data
    except SessionError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, zipfile.BadZipFile, zlib.error,
            RecursionError, EOFError, NotImplementedError) as exc:
        raise SessionError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc


def matches(data: SessionData, volume: Volume) -> bool:
    """Whether a session was saved on this study's voxels."""
    return data.header.get("volume") == volume_fingerprint(volume)


def restore_labels(document: Document, data: SessionData) -> None:
    """Replace the document's labels by the session's, with their ids, order, words and attributes."""
    volume = document.volume
    if volume is None or not matches(data, volume):
        raise SessionError(data.path, "was saved on another study (grid or voxels differ)")
    runs = {}
    for item in data.labels:
        try:
            runs[item.id] = _run_from_dict(item.run)
        except (TypeError, ValueError) as exc:  # a run record of another shape: the label stays, its run goes
            runs[item.id] = None
            data.notes.append(f"label {item.id} ({item.name}): its model run record cannot be read ({exc})")
    for label in document.labels:
        document.remove_label(label.id)
    restored = []
    for item in data.labels:
        run = runs[item.id]
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
    if not 0 < pid <= MAX_PID:
        return False
    if sys.platform == "win32":
        return False  # cannot probe cheaply; a crashed session is still offered
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def study_key_of(path: Path) -> str:
    """The study key a session or lock file belongs to (its name up to the first dot)."""
    return Path(path).name.split(".", 1)[0]


def is_live(data: SessionData) -> bool:
    """Whether a viewer is still working on this session (not closed cleanly, its process running)."""
    return not data.clean_exit and _process_alive(data.pid)


@dataclass
class SessionScan:
    """The session files of a folder that could be read, and a note for each one that could not."""

    sessions: list[SessionData] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def scan_sessions(folder: Path | None = None, key: str | None = None) -> SessionScan:
    """Read the headers of every session file (of one study with ``key``); unreadable ones become notes.

    One malformed file never hides the others: each is read on its own.
    """
    folder = Path(folder or session_dir())
    scan = SessionScan()
    try:
        if not folder.is_dir():
            return scan
        paths = sorted(folder.glob(f"{key}*{SUFFIX}" if key else f"*{SUFFIX}"))
    except OSError as exc:
        scan.problems.append(f"{folder}: cannot be listed ({exc})")
        return scan
    for path in paths:
        if path.name.startswith("."):
            continue  # a write in progress
        try:
            scan.sessions.append(read_session(path, masks=False))
        except SessionError as exc:
            scan.problems.append(str(exc))
    return scan


def crashed_sessions(folder: Path | None = None, scan: SessionScan | None = None) -> list[SessionData]:
    """Sessions left by a viewer that did not close cleanly and is no longer running, newest first."""
    scan = scan if scan is not None else scan_sessions(folder)
    found = [data for data in scan.sessions
             if not data.clean_exit and not _process_alive(data.pid)
             and data.header.get("labels") and data.source]  # else nothing to restore, or cannot be reopened
    return sorted(found, key=lambda d: d.saved_at, reverse=True)


def saved_sessions(volume: Volume, folder: Path | None = None, exclude: Path | None = None) -> SessionScan:
    """Sessions with labels saved on this study that no live viewer is working on, newest first."""
    scan = scan_sessions(folder, session_key(volume))
    keep = [data for data in scan.sessions
            if data.header.get("labels") and not is_live(data) and matches(data, volume)
            and (exclude is None or data.path != Path(exclude))]
    scan.sessions = sorted(keep, key=lambda d: d.saved_at, reverse=True)
    return scan


def _aside_path(path: Path, tag: str, *, offerable: bool) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ending = SUFFIX if offerable else f"{SUFFIX}.bak"
    target = path.with_name(f"{study_key_of(path)}.{tag}-{stamp}{ending}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{study_key_of(path)}.{tag}-{stamp}-{n}{ending}")
    return target


def move_aside(path: Path, tag: str, *, offerable: bool = False) -> Path:
    """Rename a session file ``<key>.<tag>-<time>.lsms-session[.bak]``; returns the new path.

    ``offerable`` keeps the session suffix (a crash or a reopen still finds it); without it the file ends
    in ``.bak``: kept, never offered again. Nothing is ever deleted.
    """
    path = Path(path)
    target = _aside_path(path, tag, offerable=offerable)
    os.replace(path, target)
    return target


def set_aside(path: Path) -> Path:
    """Keep a session the user chose not to restore, under another name (work is never deleted)."""
    return move_aside(path, "declined")


def probe_writable(folder: Path) -> str | None:
    """None when session files can be written in ``folder`` (created if needed), else why not."""
    folder = Path(folder)
    probe = folder / f".probe-{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"x")
        probe.unlink()
    except OSError as exc:
        return f"the session folder {folder} cannot be written ({exc.strerror or exc})"
    return None


class StudyLock:
    """``<key>.lock`` in the session folder, held with an OS lock while a viewer has the study open.

    The kernel drops the lock when the process ends, kill -9 included, so a lock is never stale; the file
    holds the holder's pid so another viewer can say who has the study. The file is never removed (removing
    it would let two viewers lock two different files of one name).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> int | None:
        """Take the lock: None when taken, else the pid of the viewer holding it (0 when unknown).

        OSError when the folder cannot hold a lock file.
        """
        if self._fd is not None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                return _pid_in(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": time.time()}).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the OS lock


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 1 << 20, os.SEEK_SET)  # a byte past the pid, so the pid stays readable
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _pid_in(fd: int) -> int:
    try:
        pid = json.loads(os.pread(fd, 4096, 0).decode("utf-8")).get("pid", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return pid if _is_int(pid) and 0 < pid <= MAX_PID else 0


class Autosaver:
    """Saves the document's session after every recorded edit, undo, redo or model run (Qt-free).

    ``history`` is the :class:`lsms_viewer.state.history.UndoHistory`; its ``changed`` event triggers a save, and
    its compressed shadow provides the masks. Display changes (visibility, opacity) also save.

    When a study opens it takes the study's lock; if another live viewer holds it, this one saves beside
    (``<key>.viewer-<pid>.lsms-session``) and ``shared_with`` names the other's pid. ``state_changed``
    fires whenever ``last_error`` or ``shared_with`` change, so the window can say it at once.
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
        self.shared_with: int | None = None  # pid of the live viewer that has this study too
        self.lock: StudyLock | None = None
        self._name: str | None = None  # the session file's name for the open study
        self.state_changed = Event("autosave_state_changed")
        history.changed.connect(self._on_history)
        document.events.label_changed.connect(self._on_label_changed)
        document.events.volume_changed.connect(self._attach)

    def session_folder(self) -> Path:
        return Path(self.folder or session_dir())

    def path(self) -> Path | None:
        volume = self.document.volume
        if volume is None:
            return None
        if self._name is None:
            self._attach()
        return self.session_folder() / (self._name or f"{session_key(volume)}{SUFFIX}")

    def _set_state(self, error: str | None, shared_with: int | None) -> None:
        changed = (error, shared_with) != (self.last_error, self.shared_with)
        self.last_error, self.shared_with = error, shared_with
        if changed:
            self.state_changed.emit()

    def check_folder(self) -> str | None:
        """Whether session files can be written now; a problem becomes ``last_error`` at once."""
        problem = probe_writable(self.session_folder())
        if problem is not None:
            self._set_state(f"autosave is off: {problem}", self.shared_with)
        return problem

    def _attach(self) -> None:
        """A study was opened: let go of the previous study's lock, take this one's."""
        self.release()
        volume = self.document.volume
        if volume is None:
            return
        key = session_key(volume)
        self._name = f"{key}{SUFFIX}"
        folder = self.session_folder()
        lock = StudyLock(folder / f"{key}{LOCK_SUFFIX}")
        try:
            holder = lock.acquire()
        except OSError as exc:
            self._set_state(f"autosave is off: the session folder {folder} cannot be written "
                            f"({exc.strerror or exc})", None)
            return
        if holder is None:
            self.lock = lock
            self._set_state(None, None)
            return
        self._name = f"{key}.viewer-{os.getpid()}{SUFFIX}"
        self._set_state(self.last_error, holder or -1)

    def release(self) -> None:
        """Let go of the open study's lock (the study is closed)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self._name = None

    def save(self, clean_exit: bool = False) -> Path | None:
        """Save now; errors are kept in ``last_error`` (an autosave must never break an edit)."""
        if not self.enabled or self.document.volume is None:
            return None
        if self.lock is None and self.shared_with is None:
            self._attach()  # the lock could not be taken before (folder not writable then): try again
        path = self.path()
        if not self.document.labels and not clean_exit and (path is None or not path.exists()):
            return None  # nothing worth saving yet
        try:
            self.history.flush()
            path = write_session(path, self.document, self.history.compressed_slices,
                                 clean_exit=clean_exit, view=self.view_state())
        except (OSError, LSMSError) as exc:
            self._set_state(f"autosave failed: {exc}", self.shared_with)
            return None
        self.saves += 1
        self._set_state(None, self.shared_with)
        self.last_path = path
        return path

    def close_study(self) -> Path | None:
        """The study is closed (quit, or another study opened): save it as closed cleanly, release its lock.

        Returns the path saved, or None when the save failed (``last_error`` says why).
        """
        path = self.save(clean_exit=True)
        if path is not None or self.document.volume is None:
            self.release()
        return path

    def _on_history(self, reason: str) -> None:
        if reason != "clear":
            self.save()

    def _on_label_changed(self, _label, field_name: str) -> None:
        if field_name in ("visible", "opacity"):
            self.save()

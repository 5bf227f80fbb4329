"""Session files: writing a document's labels atomically, reading a file back with every field checked, and
restoring its labels into the document.

Part of the viewer's sessions (``lsms_viewer.state.session``, whose docstring describes the file).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from lsms_core.volume import Volume
from lsms_viewer.state.document import Document, Label
from lsms_viewer.state.maskbits import PackedMask, pack_volume, unpack_bits
from lsms_viewer.state.session_format import (
    FORMAT,
    MAX_HEADER_BYTES,
    MAX_PID,
    VERSION,
    SessionData,
    SessionError,
    SessionLabel,
    _blob,
    _json_safe,
    _legacy_model_mask,
    _run_from_dict,
    _run_to_dict,
    _slices_of_blob,
    process_identity,
    volume_fingerprint,
)


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
        "process": process_identity(os.getpid()),
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


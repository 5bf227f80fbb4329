"""Session files: the format's constants, where a study's session lives (its key from the study's identity),
the records read back, and the encodings of runs and packed slices shared by writing and reading.

Part of the viewer's sessions (``lsms_viewer.state.session``, whose docstring describes the file).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lsms_core.errors import LSMSError
from lsms_core.volume import Volume
from lsms_viewer.state.document import RunInfo
from lsms_viewer.state.maskbits import PackedMask, unpack_bits

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
    def process(self) -> str | None:
        """The saving process's start identity (see ``process_identity``), when the platform gives one."""
        value = self.header.get("process")
        return value if isinstance(value, str) and value else None

    @property
    def rulers(self) -> int:
        view = self.header.get("view")
        rulers = view.get("rulers") if isinstance(view, dict) else None
        return len(rulers) if isinstance(rulers, list) else 0

    @property
    def has_work(self) -> bool:
        """Whether there is anything to restore: labels, or rulers drawn on a study without labels."""
        return bool(self.header.get("labels")) or self.rulers > 0

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
        what = f"{n} label{'s' if n != 1 else ''}"
        if self.rulers:
            what += f" and {self.rulers} ruler{'s' if self.rulers != 1 else ''}"
        return f"{what} of {self.study}, saved {when}"


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


def process_identity(pid: int) -> str | None:
    """What tells the running process ``pid`` from a later one given the same pid: the boot's id and the
    process's start time in clock ticks since boot (Linux ``/proc``); None where the platform has no such
    record. A crashed viewer's pid is reused sooner or later, and a pid alone would keep its session
    looking live (never offered) for as long as the new process runs."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None  # field 22, starttime

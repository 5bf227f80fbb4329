"""Sessions on offer: which viewers are still live, the session files of a folder, the crashed ones to offer
at start, the saved ones of a study, and setting a file aside (renamed, never deleted).

Part of the viewer's sessions (``lsms_viewer.state.session``, whose docstring describes the file).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsms_core.volume import Volume
from lsms_viewer.state.session_format import (
    MAX_PID,
    SUFFIX,
    SessionData,
    SessionError,
    process_identity,
    session_dir,
    session_key,
)
from lsms_viewer.state.session_io import matches, read_session


def _process_alive(pid: int, identity: str | None = None) -> bool:
    """Whether process ``pid`` runs; with the ``identity`` it had when it saved, whether it is still that
    process (not a later one given the same pid)."""
    if pid == os.getpid():
        return identity is None or identity == process_identity(pid)
    if not 0 < pid <= MAX_PID:
        return False
    if sys.platform == "win32":
        return False  # cannot probe cheaply; a crashed session is still offered
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass
    if identity is not None:
        now = process_identity(pid)
        return now is None or now == identity  # unknown now (no /proc): assume it is, as before
    return True


def study_key_of(path: Path) -> str:
    """The study key a session or lock file belongs to (its name up to the first dot)."""
    return Path(path).name.split(".", 1)[0]


def is_live(data: SessionData) -> bool:
    """Whether a viewer is still working on this session (not closed cleanly, its process running)."""
    return not data.clean_exit and _process_alive(data.pid, data.process)


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
             if not data.clean_exit and not _process_alive(data.pid, data.process)
             and data.has_work and data.source]  # else nothing to restore, or cannot be reopened
    return sorted(found, key=lambda d: d.saved_at, reverse=True)


def saved_sessions(volume: Volume, folder: Path | None = None, exclude: Path | None = None) -> SessionScan:
    """Sessions with work (labels or rulers) saved on this study that no live viewer is working on, newest
    first."""
    scan = scan_sessions(folder, session_key(volume))
    keep = [data for data in scan.sessions
            if data.has_work and not is_live(data) and matches(data, volume)
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


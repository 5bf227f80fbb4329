"""Autosave: whether the session folder can be written, the study lock that keeps two viewers from saving
over each other, and the Autosaver that saves after every edit.

Part of the viewer's sessions (``lsms_viewer.state.session``, whose docstring describes the file).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from lsms_core.errors import LSMSError
from lsms_viewer.state.document import Document, Event
from lsms_viewer.state.session_format import LOCK_SUFFIX, MAX_PID, SUFFIX, session_dir, session_key
from lsms_viewer.state.session_io import _is_int, write_session


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

    def __init__(self, document: Document, history, folder: Path | None = None, view_state=None, has_work=None):
        self.document = document
        self.history = history
        self.folder = Path(folder) if folder else None
        self.view_state = view_state or (lambda: {})
        # work kept in the view state (rulers) that makes a study without labels worth saving
        self.has_work = has_work or (lambda: False)
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
        if (not self.document.labels and not self.has_work() and not clean_exit
                and (path is None or not path.exists())):
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

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
and the next start offers to restore it; the process is known by its pid and its start time
(``process_identity``), so a later process given the crashed viewer's pid does not hide the crash.
Rulers live in the view part: a study measured but not labelled is saved and offered as well.

A session on offer is first moved aside (``<key>.offered-<time>.lsms-session``), so nothing the viewer
saves while the question waits can write over it. A viewer holds ``<key>.lock`` (an OS lock, released by
the kernel when the process dies, holding its pid) while a study is open; a second viewer on the same
study saves beside it (``<key>.viewer-<pid>.lsms-session``) and never over the live viewer's session.
Files set aside are ``*.lsms-session.bak``: kept, never offered again, never deleted.
"""

from __future__ import annotations

# The parts, by job; everything is re-exported here, the import path the viewer and the tests use.
from lsms_viewer.state.session_autosave import Autosaver, StudyLock, probe_writable  # noqa: F401
from lsms_viewer.state.session_format import (  # noqa: F401
    FORMAT,
    LOCK_SUFFIX,
    MAX_HEADER_BYTES,
    MAX_PID,
    SUFFIX,
    VERSION,
    SessionData,
    SessionError,
    SessionLabel,
    session_dir,
    session_key,
    session_path,
    volume_fingerprint,
)
from lsms_viewer.state.session_io import matches, read_session, restore_labels, write_session  # noqa: F401
from lsms_viewer.state.session_offers import (  # noqa: F401
    SessionScan,
    crashed_sessions,
    is_live,
    move_aside,
    saved_sessions,
    scan_sessions,
    set_aside,
    study_key_of,
)

"""Nothing lost, nothing silent around sessions, with real viewer processes and real session folders:
editing while a restore is on offer, two viewers on one study, malformed session files, a session folder
that cannot be written, and a clean quit after switching studies."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from qt_helpers import drag

from lsms_core.volume import load_volume, save_volume
from lsms_viewer.state.document import Document
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.state.session import (
    MAX_HEADER_BYTES,
    SessionError,
    crashed_sessions,
    read_session,
    scan_sessions,
    session_path,
    write_session,
)
from lsms_viewer.state.session_format import process_identity

HERE = Path(__file__).parent


def _child(script: str, *args, sessions: Path, tmp_path: Path) -> subprocess.Popen:
    env = dict(os.environ, LSMS_SESSION_DIR=str(sessions), QT_QPA_PLATFORM="offscreen",
               XDG_CONFIG_HOME=str(tmp_path / "child-config"))
    return subprocess.Popen([sys.executable, str(HERE / script), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_line(child: subprocess.Popen, prefix: str, seconds: float = 180) -> str:
    ready, _, _ = select.select([child.stdout], [], [], seconds)  # a hung child fails, never hangs the suite
    line = child.stdout.readline() if ready else f"(no output within {seconds} s)"
    if not line.startswith(prefix):
        child.kill()
        raise AssertionError(f"{line!r}; child stderr: {child.stderr.read()[-3000:]}")
    return line


def _viewer(qtbot):
    from lsms_viewer.app import build_viewer

    viewer = build_viewer()
    qtbot.addWidget(viewer.window)
    viewer.window.resize(900, 700)
    viewer.window.show()
    qtbot.waitExposed(viewer.window)
    return viewer


def _open(qtbot, viewer, path: Path) -> None:
    previous = viewer.document.volume
    assert viewer.opening.open_path(path)
    qtbot.waitUntil(lambda: viewer.document.volume is not previous and not viewer.opening.is_loading(),
                    timeout=60000)


def _expected_labels(out: Path) -> dict[int, np.ndarray]:
    return {e["id"]: np.load(out / f"mask_{e['id']}.npy") for e in json.loads((out / "labels.json").read_text())}


def _killed_child_session(tmp_path: Path, ct: Path, sessions: Path) -> dict[int, np.ndarray]:
    """A real viewer edits ``ct``, autosaves, and is killed with SIGKILL; returns the masks it held."""
    out = tmp_path / "child"
    out.mkdir()
    child = _child("session_child.py", ct, out, sessions=sessions, tmp_path=tmp_path)
    try:
        _wait_line(child, "READY")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    return _expected_labels(out)


@pytest.mark.slow
def test_editing_before_answering_the_crash_offer_never_destroys_the_crashed_work(qtbot, tmp_path, volume):
    sessions = tmp_path / "sessions"
    ct = save_volume(volume, tmp_path / "ct.nii.gz")
    crashed = _killed_child_session(tmp_path, ct, sessions)

    viewer = _viewer(qtbot)
    recovery = viewer.recovery
    qtbot.waitUntil(lambda: recovery.pending_question is not None, timeout=10000)
    text = recovery.pending_question.text()
    assert "did not close properly" in text and str(ct.resolve()) in text  # it names the study
    # The user opens the same study and draws before answering: the autosave runs after the stroke.
    _open(qtbot, viewer, ct)
    viewer.editing.set_tool("brush")
    viewer.editing.panel.radius.setValue(3.0)
    viewer.window.slice_view.set_slice(8)
    saves = viewer.autosaver.saves
    drag(viewer.window, [(50, 60), (52, 66)])
    assert viewer.autosaver.saves > saves and viewer.autosaver.last_error is None
    stroke = viewer.document.labels[0].mask.copy()
    assert stroke[8].any() and not stroke[:8].any()

    recovery.pending_question.yes_button.click()
    qtbot.waitUntil(lambda: recovery.last_restore is not None, timeout=10000)
    labels = {label.id: label.mask for label in viewer.document.labels}
    assert labels.keys() == crashed.keys()
    for key, mask in crashed.items():
        assert np.array_equal(labels[key], mask)  # Yes restored what crashed, bit for bit
    # The stroke drawn while the question waited is kept, and the message says where.
    kept = list(sessions.glob("*.before-restore-*.lsms-session.bak"))
    assert len(kept) == 1 and str(kept[0]) in viewer.window.statusBar().currentMessage()
    assert np.array_equal(read_session(kept[0]).labels[0].mask, stroke)
    # The study's session now holds the restored work; nothing is offered again after a clean close.
    saved = read_session(session_path(viewer.document.volume, sessions))
    assert {lab.id: lab.mask.sum() for lab in saved.labels} == {k: m.sum() for k, m in crashed.items()}
    viewer.window.close()
    assert crashed_sessions(sessions) == []


@pytest.mark.slow
def test_a_second_viewer_on_a_live_viewers_study_is_told_and_never_writes_over_its_session(qtbot, tmp_path,
                                                                                           volume):
    sessions = tmp_path / "sessions"
    ct = save_volume(volume, tmp_path / "ct.nii.gz")
    out = tmp_path / "child"
    out.mkdir()
    first = _child("session_child.py", ct, out, sessions=sessions, tmp_path=tmp_path)
    try:
        _wait_line(first, "READY")
        live = _expected_labels(out)
        own = session_path(load_volume(ct), sessions)
        before = own.read_bytes()

        viewer = _viewer(qtbot)
        _open(qtbot, viewer, ct)
        qtbot.wait(200)  # the offer for the opened study would come now
        assert viewer.recovery.pending_question is None  # a live viewer's session is not offered
        autosaver = viewer.autosaver
        assert autosaver.shared_with == first.pid
        notice = viewer.window.notice
        assert notice.isVisible() and f"pid {first.pid}" in notice.text() and "another viewer" in notice.text()
        viewer.editing.set_tool("brush")
        viewer.editing.panel.radius.setValue(3.0)
        viewer.window.slice_view.set_slice(8)
        drag(viewer.window, [(50, 60), (52, 66)])
        assert autosaver.last_error is None and autosaver.last_path != own
        assert autosaver.last_path.name.endswith(f".viewer-{os.getpid()}.lsms-session")
        assert own.read_bytes() == before  # the live viewer's session is untouched
        mine = read_session(autosaver.last_path)
        assert len(mine.labels) == 1 and mine.labels[0].mask[8].any()
        theirs = read_session(own)
        assert {lab.id: lab.mask.sum() for lab in theirs.labels} == {k: m.sum() for k, m in live.items()}
        viewer.window.close()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    # Both survive: the killed viewer's work is offered as a crash, this one's on reopening the study.
    assert [data.path for data in crashed_sessions(sessions)] == [own]
    assert read_session(session_path(load_volume(ct), sessions).with_name(
        f"{own.name.split('.')[0]}.viewer-{os.getpid()}.lsms-session")).labels


def _rewrite_header(path: Path, target: Path, change) -> Path:
    """Copy a session file with its header changed by ``change(header) -> header``."""
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    header = change(json.loads(members["session.json"]))
    members["session.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return target


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_crashed_viewers_pid_taken_by_another_process_does_not_hide_its_session(tmp_path, volume):
    """A pid alone would keep a crashed session looking live while any later process holds that pid."""
    if process_identity(os.getpid()) is None:
        pytest.skip("this platform has no /proc to tell one process from a later one with the same pid")
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    study = load_volume(save_volume(volume, tmp_path / "ct.nii.gz"))
    doc = Document(study)
    mask = np.zeros(study.shape, bool)
    mask[3, 20:30, 20:30] = True
    doc.add_label(mask, name="A")
    written = write_session(tmp_path / "base.lsms-session", doc, UndoHistory(doc).compressed_slices)
    assert read_session(written, masks=False).process == process_identity(os.getpid())
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        target = session_path(study, sessions)
        _rewrite_header(written, target, lambda h: {**h, "pid": other.pid, "process": process_identity(other.pid)})
        assert crashed_sessions(sessions) == []  # that viewer still runs: its session is not offered
        _rewrite_header(written, target, lambda h: {**h, "pid": other.pid, "process": "an-earlier-boot:4242"})
        assert [d.path for d in crashed_sessions(sessions)] == [target]  # the pid now belongs to someone else
    finally:
        other.kill()
        other.wait(30)


def test_malformed_session_files_are_skipped_with_a_note_and_the_valid_one_is_offered(qtbot, tmp_path, volume):
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    ct = save_volume(volume, tmp_path / "ct.nii.gz")
    study = load_volume(ct)
    doc = Document(study)
    a = np.zeros(study.shape, bool)
    a[3, 20:30, 20:30] = True
    b = np.zeros(study.shape, bool)
    b[5, 30:36, 40:50] = True
    doc.add_label(a, name="A")
    doc.add_label(b, name="B")
    written = write_session(tmp_path / "base.lsms-session", doc, UndoHistory(doc).compressed_slices)
    dead = _dead_pid()

    def crashed(header):
        return {**header, "pid": dead}

    def out_of_range(header):  # label B's slice 5 is recorded as slice 40 of a 12-slice study
        header = crashed(header)
        header["labels"][1]["slices"] = [[40, *header["labels"][1]["slices"][0][1:]]]
        return header

    valid = _rewrite_header(written, session_path(study, sessions), out_of_range)
    bad = {"abc": lambda h: {**h, "pid": "abc"}, "huge": lambda h: {**h, "pid": 10**30},
           "list": lambda h: [h], "when": lambda h: {**h, "pid": dead, "saved_at": "yesterday"}}
    for name, change in bad.items():
        _rewrite_header(written, sessions / f"{name}{'0' * 17}.lsms-session", change)
    scan = scan_sessions(sessions)
    assert len(scan.sessions) == 1 and len(scan.problems) == 4
    assert [d.path for d in crashed_sessions(sessions)] == [valid]

    viewer = _viewer(qtbot)
    recovery = viewer.recovery
    qtbot.waitUntil(lambda: recovery.pending_question is not None, timeout=10000)
    notice = viewer.window.notice.text()
    assert "4 session file(s) could not be read and were skipped" in notice
    assert "pid 'abc' is not a process id" in notice and "is not a process id" in notice
    recovery.pending_question.yes_button.click()
    qtbot.waitUntil(lambda: recovery.last_restore is not None, timeout=30000)
    labels = viewer.document.labels
    assert [lab.name for lab in labels] == ["A", "B"]
    assert np.array_equal(labels[0].mask, a) and not labels[1].mask.any()  # what could be read is restored
    restore_note = viewer.window.notice.text()
    assert "label 2 (B): slice 40 lies outside the study's slices 0..11 and was skipped" in restore_note


def test_an_inflated_session_header_is_refused_before_it_is_read(tmp_path, volume):
    import tracemalloc

    doc = Document(volume)
    doc.add_label(np.ones(volume.shape, bool), name="A")
    path = write_session(tmp_path / "s.lsms-session", doc)
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("session.json"))
    header["title"] = " " * (4 * MAX_HEADER_BYTES)  # 128 MB of JSON, a few hundred KB deflated
    bomb = tmp_path / "bomb.lsms-session"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("session.json", json.dumps(header))
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(SessionError, match="more than the 32 MiB"):
            read_session(bomb, masks=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc as a folder no one can write")
def test_a_session_folder_that_cannot_be_written_is_said_at_once_and_stays_said(qtbot, tmp_path, volume,
                                                                                monkeypatch):
    if os.geteuid() == 0:
        folder = Path("/proc")  # root writes through file modes; /proc refuses every new file
    else:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    monkeypatch.setenv("LSMS_SESSION_DIR", str(folder))
    viewer = _viewer(qtbot)
    notice = viewer.window.notice
    qtbot.waitUntil(lambda: notice.isVisible(), timeout=5000)  # at start, before any study or edit
    assert "Autosave is not working" in notice.text() and str(folder) in notice.text()
    viewer.opening.set_volume(volume)
    viewer.editing.set_tool("brush")
    drag(viewer.window, [(20, 15), (25, 25)])
    assert viewer.document.labels and viewer.autosaver.last_error
    assert notice.isVisible() and str(folder) in notice.text()  # still said after the edit


@pytest.mark.slow
def test_a_clean_quit_after_switching_studies_offers_no_crash_and_reopening_offers_that_studys_labels(
        qtbot, tmp_path, volume):
    from viewer_helpers import phantom_volume

    sessions = tmp_path / "sessions"
    first = save_volume(volume, tmp_path / "first.nii.gz")
    second = save_volume(phantom_volume(shape=(10, 60, 70), seed=3), tmp_path / "second.nii.gz")
    child = _child("switch_child.py", first, second, sessions=sessions, tmp_path=tmp_path)
    _wait_line(child, "CLOSED")
    assert child.wait(60) == 0
    assert crashed_sessions(sessions) == []  # both studies were closed cleanly

    viewer = _viewer(qtbot)
    qtbot.wait(300)
    assert viewer.recovery.pending_question is None  # no "did not close properly"
    _open(qtbot, viewer, first)
    qtbot.waitUntil(lambda: viewer.recovery.pending_question is not None, timeout=5000)
    text = viewer.recovery.pending_question.text()
    assert "1 label of " + str(first.resolve()) in text and str(second.resolve()) not in text

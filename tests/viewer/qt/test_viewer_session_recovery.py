"""Crash recovery in the real viewer: a viewer killed with SIGKILL loses nothing, reopening a study offers its
labels, and switching studies saves them first."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lsms_core.volume import save_volume
from lsms_viewer.state.session import (
    crashed_sessions,
    read_session,
    session_path,
)

HERE = Path(__file__).parent


@pytest.mark.slow
def test_viewer_killed_with_sigkill_restores_identical_labels(qtbot, tmp_path, volume, monkeypatch):
    sessions = tmp_path / "sessions"
    ct = save_volume(volume, tmp_path / "ct.nii.gz")
    out = tmp_path / "child"
    out.mkdir()
    env = dict(os.environ, LSMS_SESSION_DIR=str(sessions), QT_QPA_PLATFORM="offscreen")
    child = subprocess.Popen([sys.executable, str(HERE / "session_child.py"), str(ct), str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # Bounded wait: a hung child must fail the test, not hang the suite.
        ready, _, _ = select.select([child.stdout], [], [], 120)
        line = child.stdout.readline() if ready else "(no output within 120 s)"
        assert line.startswith("READY"), line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    found = crashed_sessions(sessions)
    assert len(found) == 1 and not found[0].clean_exit

    from lsms_viewer.app import build_viewer

    monkeypatch.setenv("LSMS_SESSION_DIR", str(sessions))
    viewer = build_viewer()
    win = viewer.window
    qtbot.addWidget(win)
    recovery = viewer.recovery
    qtbot.waitUntil(lambda: recovery.pending_question is not None, timeout=5000)
    assert "did not close properly" in recovery.pending_question.text()
    assert not recovery.banner_dock.isHidden()
    recovery.pending_question.yes_button.click()
    qtbot.waitUntil(lambda: recovery.last_restore is not None, timeout=10000)

    expected = json.loads((out / "labels.json").read_text())
    labels = win.document.labels
    assert [lab.id for lab in labels] == [e["id"] for e in expected]
    for lab, exp in zip(labels, expected, strict=True):
        assert np.array_equal(lab.mask, np.load(out / f"mask_{lab.id}.npy"))
        assert (lab.name, lab.expression, lab.meta, lab.opacity, list(lab.color)) == (
            exp["name"], exp["expression"], exp["meta"], exp["opacity"], exp["color"])
    assert labels[0].mask.sum() > 0 and labels[1].mask.sum() > 0
    # Restored work is saved again at once; closing cleanly means no crash is offered next time.
    assert session_path(win.document.volume, sessions).exists()
    win.close()
    time.sleep(0.01)
    assert crashed_sessions(sessions) == []


def test_reopening_a_study_offers_its_saved_labels_and_declining_keeps_the_file(qtbot, tmp_path, volume,
                                                                               monkeypatch):
    from lsms_viewer.app import build_viewer

    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    viewer = build_viewer()
    win = viewer.window
    qtbot.addWidget(win)
    viewer.opening.set_volume(volume)
    mask = np.zeros(volume.shape, bool)
    mask[4, 10:20, 10:20] = True
    win.document.add_label(mask, name="kept")
    saved = viewer.autosaver.last_path
    assert saved is not None and saved.exists()
    win.close()  # clean exit: not a crash, but the study's labels are still offered when it is reopened
    assert crashed_sessions(tmp_path / "sessions") == []

    viewer2 = build_viewer()
    win2 = viewer2.window
    qtbot.addWidget(win2)
    viewer2.opening.set_volume(volume)
    recovery2 = viewer2.recovery
    qtbot.waitUntil(lambda: recovery2.pending_question is not None, timeout=5000)
    assert "1 label" in recovery2.pending_question.text()
    recovery2.pending_question.no_button.click()
    assert win2.document.labels == [] and not saved.exists()
    assert len(list((tmp_path / "sessions").glob("*.declined-*"))) == 1


def test_opening_another_study_saves_the_labels_first_and_refuses_when_it_cannot(qtbot, tmp_path, volume,
                                                                                  monkeypatch):
    from lsms_viewer.app import build_viewer
    from lsms_viewer.demo import synthetic_abdomen

    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    viewer = build_viewer()
    win = viewer.window
    qtbot.addWidget(win)
    viewer.opening.set_volume(volume)
    mask = np.zeros(volume.shape, bool)
    mask[4, 10:20, 10:20] = True
    win.document.add_label(mask, name="kept")
    other, _ = synthetic_abdomen(shape=(6, 40, 48), spacing=(3.0, 2.5, 5.0), seed=7)

    # The session folder cannot be written: the switch is refused and the labels stay on screen.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LSMS_SESSION_DIR", str(blocker / "sessions"))
    errors = []
    win.show_error = lambda title, message: errors.append((title, message))
    assert viewer.opening.set_volume(other) is False
    assert win.document.volume is volume and [label.name for label in win.document.labels] == ["kept"]
    assert errors and errors[0][0] == "The open study's labels are not saved" and "Export" in errors[0][1]

    # Writable again: the labels are saved with their study, then the other study opens.
    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    assert viewer.opening.set_volume(other) is True
    assert win.document.volume is other and win.document.labels == []
    assert "1 label(s)" in win.statusBar().currentMessage()
    saved = read_session(session_path(volume, tmp_path / "sessions"))
    assert [label.name for label in saved.labels] == ["kept"] and np.array_equal(saved.labels[0].mask, mask)

"""Test-wide settings: headless Qt, no network, a small CPU thread count, no user state."""

import os
import sys

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Nothing in the project may reach a network; these make any attempt fail fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def isolated_user_state(tmp_path, monkeypatch):
    """No test reads or writes the user's settings, recent files or autosaved sessions (and no test sees
    what an earlier run left there)."""
    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "user-sessions"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))
    if "PySide6.QtCore" in sys.modules:
        from PySide6.QtCore import QSettings

        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "user-config"))
    yield

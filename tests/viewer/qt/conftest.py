"""Qt fixtures: every test here is a ``gui`` test (offscreen), with its own settings and session folders,
and builds whole viewers as ``lsms-viewer`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, qapp, monkeypatch):
    """Every test gets its own settings and session folders: nothing leaks between tests or to the user."""
    folder = tmp_path / "settings"
    folder.mkdir()
    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture
def viewer(qtbot):
    """A whole viewer (window, controllers, docks) as ``lsms-viewer`` builds it, shown offscreen."""
    from lsms_viewer.app import build_viewer

    built = build_viewer()
    qtbot.addWidget(built.window)
    built.window.resize(1100, 760)
    built.window.show()
    qtbot.waitExposed(built.window)
    return built


@pytest.fixture
def window(viewer):
    return viewer.window


@pytest.fixture
def make_viewer(qtbot, volume):
    """The real viewer showing ``volume``, its window ``width`` x ``height`` (offscreen Qt)."""
    from lsms_viewer.app import build_viewer

    def make(width: int, height: int):
        viewer = build_viewer()
        qtbot.addWidget(viewer.window)
        viewer.window.resize(width, height)
        viewer.window.show()
        qtbot.waitExposed(viewer.window)
        viewer.opening.set_volume(volume)
        return viewer

    return make

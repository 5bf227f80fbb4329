"""Viewer test fixtures: isolated QSettings, a synthetic study, and one real (random-weight) engine."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from lsms_viewer.demo import synthetic_abdomen


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, qapp, monkeypatch):
    """Every test gets its own settings and session folders: nothing leaks between tests or to the user."""
    folder = tmp_path / "settings"
    folder.mkdir()
    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(scope="session")
def study():
    """A small abdomen phantom (and its lesion masks) that the model can run on quickly."""
    return synthetic_abdomen(shape=(12, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """A real Segmenter on a random checkpoint (input 64 px); loaded once for the whole session.

    Random weights give probabilities near 0.5, so the threshold is set to the median probability of one
    real run: masks are then about half of each slice, never all or nothing.
    """
    from lsms_core.checkpoint import create_random_checkpoint
    from lsms_viewer.inference import EngineHost

    folder = create_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random", input_size=64, seed=0)
    host = EngineHost(folder, device="cpu", threads=1)
    volume, _ = synthetic_abdomen(shape=(2, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    probs = host.get().predict(volume.array[0], "the low-density nodule in the right lobe").probs
    host.threshold = float(np.median(probs))
    return host


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

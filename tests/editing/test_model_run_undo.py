"""A real model run in the main window is one undo step, keeps its mask for provenance, and is autosaved."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_viewer.editing_ui import attach_editing
from lsms_viewer.session import read_session

pytestmark = [pytest.mark.gui, pytest.mark.slow]

WORDS = "the low-density nodule in the right lobe"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A real Segmenter on a random checkpoint (64 px input), thresholded at its median probability."""
    from lsms_core.checkpoint import create_random_checkpoint
    from lsms_viewer.demo import synthetic_abdomen
    from lsms_viewer.workers import EngineHost

    folder = create_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random", input_size=64, seed=0)
    host = EngineHost(folder, device="cpu", threads=1)
    volume, _ = synthetic_abdomen(shape=(2, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    host.threshold = float(np.median(host.get().predict(volume.array[0], WORDS).probs))
    return host


def test_model_run_and_rerun_are_single_undo_steps(qtbot, engine, tmp_path, monkeypatch):
    from lsms_viewer.demo import synthetic_abdomen
    from lsms_viewer.main_window import MainWindow

    monkeypatch.setenv("LSMS_SESSION_DIR", str(tmp_path / "sessions"))
    win = MainWindow(engine=engine)
    qtbot.addWidget(win)
    win.show()
    editing = attach_editing(win)
    volume, _ = synthetic_abdomen(shape=(6, 96, 112), spacing=(3.0, 2.5, 5.0), seed=1)
    win.set_volume(volume)
    with qtbot.waitSignal(win.segmentation_done, timeout=60000) as done:
        assert win.segment(WORDS, "slice")
    assert done.args[0] == "finished"
    label = win.document.labels[0]
    first = label.mask.copy()
    assert first.any()
    assert editing.undo_action.text() == f"&Undo model run “{WORDS}”"
    assert "first_model_mask" in label.meta
    saved = read_session(editing.autosaver.last_path)
    assert np.array_equal(saved.labels[0].mask, first)

    # Re-run with other words on the same label: replaced mask, new words and new name in one step.
    win.expression_bar.set_rerun(label.id, label.name, label.expression)
    with qtbot.waitSignal(win.segmentation_done, timeout=60000):
        assert win.segment("the larger hypodense lesion", "range")
    second = label.mask.copy()
    assert label.expression == "the larger hypodense lesion"
    assert editing.history.undo_text == "model run “the larger hypodense lesion”"
    editing.undo()
    assert np.array_equal(label.mask, first) and label.expression == WORDS and label.name.startswith("the low")
    editing.undo()
    assert win.document.labels == []
    editing.redo()
    editing.redo()
    restored = win.document.labels[0]
    assert np.array_equal(restored.mask, second) and restored.expression == "the larger hypodense lesion"

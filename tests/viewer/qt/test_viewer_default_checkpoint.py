"""``lsms-viewer PATH`` uses the default checkpoint ('demo'), lazily, and says which (issue 15 item 3)."""

from __future__ import annotations

from lsms_core.volume import save_volume
from lsms_viewer.app import build_parser, create_viewer


def test_opening_a_path_loads_the_default_checkpoint_lazily(qtbot, tmp_path, volume):
    ct = save_volume(volume, tmp_path / "ct.nii.gz")
    viewer = create_viewer(build_parser().parse_args([str(ct)]))
    window = viewer.window
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.document.volume is not None, timeout=20000)
    engine = viewer.segmentation.engine
    assert engine is not None and not engine.loaded  # loaded on the first run, not at start
    assert engine.checkpoint.name == "lsms-e0-demo"
    assert "default checkpoint 'demo'" in window.device_label.text()
    assert "lsms-e0-demo" in window.device_label.text()
    assert window.expression_bar.run_button.isEnabled()
    assert window.last_error is None


def test_without_the_demo_weights_the_status_bar_says_so(qtbot, tmp_path, monkeypatch, volume):
    monkeypatch.setenv("LSMS_RESOURCES", str(tmp_path / "empty"))
    viewer = create_viewer(build_parser().parse_args([]))
    window = viewer.window
    qtbot.addWidget(window)
    assert viewer.segmentation.engine is None and window.last_error is None  # no dialog for a default
    assert "default checkpoint 'demo' cannot be used" in window.statusBar().currentMessage()


def test_a_checkpoint_asked_for_is_not_called_the_default(qtbot, tmp_path):
    from lsms_core.checkpoint import create_random_checkpoint

    folder = create_random_checkpoint(tmp_path / "mine", input_size=64)
    viewer = create_viewer(build_parser().parse_args(["--checkpoint", str(folder)]))
    qtbot.addWidget(viewer.window)
    assert viewer.segmentation.engine.checkpoint == folder
    assert "default" not in viewer.window.device_label.text()

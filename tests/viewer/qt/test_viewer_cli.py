"""The viewer's command-line surface: `lsms view`, `lsms-viewer` arguments, `--demo`, `lsms bench render`."""

from __future__ import annotations

import argparse
import json

import pytest

from lsms_viewer.app import build_parser, create_viewer
from lsms_viewer.bench import render as bench_render
from lsms_viewer.cli import register_view


def test_lsms_view_takes_the_viewer_arguments():
    parser = argparse.ArgumentParser(prog="lsms")
    register_view(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["view", "ct.nii.gz", "--checkpoint", "ckpt", "--device", "cpu"])
    assert (args.path, args.checkpoint, args.device, args.demo) == ("ct.nii.gz", "ckpt", "cpu", False)
    assert callable(args.func)


def test_demo_without_installed_resources_says_so_on_screen(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LSMS_RESOURCES", str(tmp_path / "empty"))
    viewer = create_viewer(build_parser().parse_args(["--demo"]))
    window = viewer.window
    qtbot.addWidget(window)
    assert window.document.volume is not None  # the synthetic phantom stands in for the demo case
    notice = window.notice.text()
    assert window.notice.isVisibleTo(window)
    assert "demo case is not installed" in notice and "No model weights are installed" in notice
    assert window.expression_bar.edit.text() == "the smaller low-density nodule in the right lobe"
    assert viewer.segmentation.engine is None and "no model" in window.device_label.text()


def test_demo_uses_the_newest_checkpoint_when_demo_weights_are_missing(qtbot, tmp_path, monkeypatch):
    from lsms_core.checkpoint import create_random_checkpoint

    models = tmp_path / "res" / "models"
    create_random_checkpoint(models / "my-model", input_size=64)
    monkeypatch.setenv("LSMS_RESOURCES", str(tmp_path / "res"))
    viewer = create_viewer(build_parser().parse_args(["--demo"]))
    window = viewer.window
    qtbot.addWidget(window)
    assert viewer.segmentation.engine is not None and viewer.segmentation.engine.checkpoint == models / "my-model"
    assert "newest checkpoint found, my-model" in window.notice.text()


def test_bench_render_prints_json(capsys):
    parser = argparse.ArgumentParser()
    bench_render.register(parser.add_subparsers())
    args = parser.parse_args(["render", "--size", "96", "--slices", "6", "--passes", "1", "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["shape"] == [6, 96, 96] and result["steps"] == 6
    for key in ("ms_per_slice", "baseline_ms_per_slice", "ratio", "p95_ms"):
        assert result[key] > 0


@pytest.mark.parametrize("argv", [["--threshold", "x"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


def test_a_missing_checkpoint_is_reported_at_start(qtbot, tmp_path):
    viewer = create_viewer(build_parser().parse_args(["--checkpoint", str(tmp_path / "nowhere")]))
    window = viewer.window
    qtbot.addWidget(window)
    assert window.last_error is not None and window.last_error[0] == "Cannot use this checkpoint"
    assert "nowhere" in window.last_error[1]
    assert viewer.segmentation.engine is None


def test_demo_opens_the_installed_case_at_its_recipe_slice_and_window(qtbot, tmp_path, monkeypatch):
    import numpy as np

    from lsms_core.volume import Volume, save_volume

    demo = tmp_path / "res" / "demo"
    demo.mkdir(parents=True)
    save_volume(Volume(np.zeros((6, 16, 16), np.int16), (1, 1, 2), (0, 0, 0)), demo / "ct.nii.gz")
    (demo / "demo.json").write_text(json.dumps({"expression": "the cyst near the dome", "slice": 4,
                                                "window": [350, 50]}))
    monkeypatch.setenv("LSMS_RESOURCES", str(tmp_path / "res"))
    viewer = create_viewer(build_parser().parse_args(["--demo"]))
    window = viewer.window
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.document.volume is not None, timeout=20000)
    qtbot.waitUntil(lambda: not viewer.opening.is_loading())
    from lsms_viewer.display.windowing import Window

    assert window.current_slice() == 4 and window.slice_view.window == Window(350, 50)
    assert window.expression_bar.edit.text() == "the cyst near the dome"
    assert "demo case is not installed" not in window.notice.text()
    assert "No model weights are installed" in window.notice.text()


def test_an_unreadable_demo_recipe_keeps_the_demo_case_s_own_words(qtbot, tmp_path, monkeypatch):
    # Bug: with demo.json unreadable the viewer showed the demo CT with the phantom's expression.
    import numpy as np

    from lsms_core.data.demo import DEMO_EXPRESSION
    from lsms_core.volume import Volume, save_volume

    demo = tmp_path / "res" / "demo"
    demo.mkdir(parents=True)
    save_volume(Volume(np.zeros((6, 16, 16), np.int16), (1, 1, 2), (0, 0, 0)), demo / "ct.nii.gz")
    (demo / "demo.json").write_text("{not json")
    monkeypatch.setenv("LSMS_RESOURCES", str(tmp_path / "res"))
    viewer = create_viewer(build_parser().parse_args(["--demo"]))
    window = viewer.window
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.document.volume is not None, timeout=20000)
    qtbot.waitUntil(lambda: not viewer.opening.is_loading())
    assert window.expression_bar.edit.text() == DEMO_EXPRESSION
    assert "demo.json" in window.notice.text() and "unreadable" in window.notice.text()

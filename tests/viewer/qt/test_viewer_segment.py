"""Segmenting by words in the worker thread, re-running, cancelling, errors, and exporting the result."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest

from lsms_viewer.app import Viewer, build_viewer
from lsms_viewer.inference import EngineHost

WORDS = "the smaller low-density nodule in the right lobe"


def _viewer(qtbot, engine) -> Viewer:
    viewer = build_viewer(engine=engine)
    qtbot.addWidget(viewer.window)
    return viewer


@pytest.fixture
def seg_viewer(qtbot, engine, study):
    viewer = _viewer(qtbot, engine)
    viewer.window.show()
    viewer.opening.set_volume(study[0])
    return viewer


def _run(viewer: Viewer, qtbot, words: str, scope: str, timeout: int = 60000) -> str:
    bar = viewer.window.expression_bar
    with qtbot.waitSignal(viewer.segmentation.done, timeout=timeout) as blocker:
        bar.set_scope(scope)
        bar.edit.setText(words)
        QTest.keyClick(bar.edit, Qt.Key.Key_Return)
    return blocker.args[0]


def _referred(engine, volume, slices: slice, words: str, threshold: float | None = None):
    """What the viewer keeps: the pipeline ``lsms segment`` runs (the candidate the words mean)."""
    from lsms_core.referring.pipeline import refer

    sx, sy, sz = volume.spacing
    return refer(engine.segmenter, volume.array[slices], words, (sz, sy, sx),
                 threshold=engine.threshold if threshold is None else threshold).mask


def test_enter_runs_the_model_in_a_worker_and_adds_a_label(seg_viewer, qtbot, engine):
    viewer = seg_viewer
    win = viewer.window
    volume = win.document.volume
    k = win.current_slice()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(viewer.segmentation.is_segmenting()))
    timer.start(5)
    assert _run(viewer, qtbot, WORDS, "slice") == "finished"
    timer.stop()
    # The event loop ran timers while the worker was busy: the window never froze.
    assert sum(ticks) >= 2

    labels = win.document.labels
    assert len(labels) == 1
    label = labels[0]
    expected = _referred(engine, volume, slice(k, k + 1), WORDS)[0]
    assert np.array_equal(label.mask[k], expected)
    assert expected.any() and not label.mask[np.arange(volume.shape[0]) != k].any()
    assert label.expression == WORDS
    assert label.run.slices == (k, k + 1) and label.run.device == "cpu" and label.run.trained is False
    assert np.array_equal(win.slice_view.overlay_image() > 0, expected)
    table = win.label_panel.table
    assert table.rowCount() == 1 and table.item(0, 2).text() == WORDS
    assert table.item(0, 3).text().endswith("s · cpu")
    assert "untrained" in win.expression_bar.message.text()
    assert "cpu" in win.device_label.text()


def test_rerun_with_edited_words_replaces_the_mask(seg_viewer, qtbot, engine):
    viewer = seg_viewer
    win = viewer.window
    volume = win.document.volume
    win.expression_bar.set_slice_range(3, 6)
    assert _run(viewer, qtbot, WORDS, "range") == "finished"
    label = win.document.labels[0]
    assert label.run.slices == (3, 6)
    assert label.mask[3:6].any() and not label.mask[:3].any() and not label.mask[6:].any()

    applied = []
    viewer.segmentation.applied.connect(lambda label_id, previous: applied.append((label_id, previous)))
    win.label_panel.table.selectRow(0)
    win.label_panel.rerun_button.click()
    assert win.expression_bar.rerun_label_id == label.id
    assert win.expression_bar.current_scope == "range" and win.expression_bar.slice_range() == (3, 6)
    new_words = "the larger hypodense lesion in segment VIII"
    before = label.mask.copy()
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000):
        win.expression_bar.edit.setText(new_words)
        QTest.keyClick(win.expression_bar.edit, Qt.Key.Key_Return)
    assert len(win.document.labels) == 1  # replaced, not added
    assert label.expression == new_words and label.name.startswith("the larger hypodense")
    expected = _referred(engine, volume, slice(3, 6), new_words)
    assert np.array_equal(label.mask[3:6], expected)
    assert applied and applied[0][0] == label.id and np.array_equal(applied[0][1], before)
    assert win.expression_bar.rerun_label_id is None


def test_cancel_a_whole_volume_run_keeps_existing_labels(seg_viewer, qtbot, study):
    viewer = seg_viewer
    win = viewer.window
    existing = win.document.add_label(study[1]["larger lesion"], expression="drawn by hand")

    with qtbot.waitSignal(viewer.segmentation.started):
        win.expression_bar.set_scope("volume")
        win.expression_bar.edit.setText(WORDS)
        win.expression_bar.run_button.click()
    run = viewer.segmentation.current_run
    assert win.expression_bar.cancel_button.isVisible() and win.expression_bar.progress.isVisible()
    # Cancel as soon as the first batch reports progress (12 slices, batches of 4 on the CPU).
    run.worker.progress.connect(lambda done, total: win.expression_bar.cancel_button.click())
    with qtbot.waitSignal(viewer.segmentation.done, timeout=60000) as blocker:
        pass
    assert blocker.args[0] == "cancelled"
    assert win.document.labels == [existing]
    assert "Cancelled" in win.expression_bar.message.text()
    assert not win.expression_bar.cancel_button.isVisible()
    assert win.expression_bar.run_button.isEnabled()  # ready for the next run


def test_a_broken_checkpoint_gives_a_message_not_a_crash(qtbot, study, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    viewer = _viewer(qtbot, EngineHost(folder, device="cpu"))
    win = viewer.window
    viewer.opening.set_volume(study[0])
    win.document.add_label(study[1]["smaller lesion"])
    assert _run(viewer, qtbot, WORDS, "slice") == "failed"
    title, message = win.last_error
    assert title == "Segmentation failed" and "config.json" in message
    assert len(win.document.labels) == 1
    assert win.expression_bar.run_button.isEnabled()


def test_no_checkpoint_says_how_to_get_one(viewer, window, study):
    viewer.opening.set_volume(study[0])
    assert not viewer.segmentation.segment(WORDS, "slice")
    assert window.last_error[0] == "No model loaded" and "--checkpoint" in window.last_error[1]


def test_export_and_reload_labels_on_the_ct_grid(seg_viewer, qtbot, study, tmp_path):
    viewer = seg_viewer
    win = viewer.window
    volume, lesions = study
    win.document.add_label(lesions["larger lesion"], expression="the larger lesion")
    second = win.document.add_label(lesions["smaller lesion"], expression="the smaller lesion")
    target = tmp_path / "labels.nii.gz"
    assert viewer.export.export_labels(target)
    image = nib.load(target)
    data = np.asanyarray(image.dataobj)
    assert image.get_data_dtype() == np.uint8
    # A volume built in memory is written as it is: nibabel's (i, j, k) is our [k, j, i].
    assert np.array_equal(data.transpose(2, 1, 0) == second.id, lesions["smaller lesion"])
    assert np.allclose(image.affine, volume.affine_ras, atol=1e-4)
    sidecar = json.loads((tmp_path / "labels.json").read_text())
    assert [d["expression"] for d in sidecar["labels"]] == ["the larger lesion", "the smaller lesion"]

    assert viewer.export.export_labels_separately(tmp_path, stem="case")
    files = sorted(tmp_path.glob("case-*.nii.gz"))
    assert [f.name for f in files] == ["case-01-the-larger-lesion.nii.gz", "case-02-the-smaller-lesion.nii.gz"]
    one = np.asanyarray(nib.load(files[1]).dataobj).transpose(2, 1, 0)
    assert np.array_equal(one == 1, lesions["smaller lesion"])

    # Export never overwrites silently into a folder that does not exist; the user gets a message.
    assert not viewer.export.export_labels(tmp_path / "missing" / "x.nii.gz")
    assert win.last_error[0] == "Export failed" and "does not exist" in win.last_error[1]


def test_enter_without_a_model_explains_instead_of_doing_nothing(viewer, window, study, qtbot):
    viewer.opening.set_volume(study[0])
    assert not window.expression_bar.run_button.isEnabled()
    assert "Load checkpoint" in window.expression_bar.run_button.toolTip()
    window.expression_bar.edit.setText(WORDS)
    QTest.keyClick(window.expression_bar.edit, Qt.Key.Key_Return)
    assert window.last_error[0] == "No model loaded"


def test_closing_the_window_during_a_run_stops_the_worker_cleanly(qtbot, engine, study):
    viewer = _viewer(qtbot, engine)
    win = viewer.window
    win.show()
    viewer.opening.set_volume(study[0])
    assert viewer.segmentation.segment(WORDS, "volume")
    run = viewer.segmentation.current_run
    win.close()
    assert not run.thread.isRunning()  # closeEvent cancelled the run and waited for its thread
    assert win.document.labels == []


def test_detection_threshold_applies_to_the_next_run(seg_viewer, qtbot, engine):
    viewer = seg_viewer
    win = viewer.window
    k = win.current_slice()
    probs = engine.segmenter.predict(win.document.volume.array[k], WORDS).probs
    high = float(np.quantile(probs, 0.9))
    saved = engine.threshold
    try:
        viewer.segmentation.set_threshold(high)
        assert _run(viewer, qtbot, WORDS, "slice") == "finished"
    finally:
        engine.threshold = saved
    mask = win.document.labels[0].mask[k]
    assert np.array_equal(mask, _referred(engine, win.document.volume, slice(k, k + 1), WORDS, high)[0])
    assert mask.any() and mask.mean() < 0.15  # within the top tenth of the slice
    # The run thresholds its float32 probabilities; those handed back are float16 (within 1e-3 near 0.5)
    assert not (mask & (probs.astype(np.float32) < high - 1e-3)).any()


def test_choosing_a_device_reloads_the_model_there(viewer, window, tmp_path):
    from lsms_core.checkpoint import create_random_checkpoint

    viewer.segmentation.use_checkpoint(create_random_checkpoint(tmp_path / "c", input_size=64))
    first = viewer.segmentation.engine
    viewer.segmentation.set_device("cpu")
    assert viewer.segmentation.engine is not first and viewer.segmentation.engine.device_choice == "cpu"
    assert viewer.segmentation.device_actions["cpu"].isChecked()
    assert "device cpu" in window.device_label.text()


def test_keep_only_the_referred_region_can_be_switched_off_and_is_remembered(seg_viewer, qtbot, engine):
    from lsms_core.postprocess import keep_referred_lesion

    viewer = seg_viewer
    win = viewer.window
    k = win.current_slice()
    prediction = engine.segmenter.predict(win.document.volume.array[k], WORDS, threshold=engine.threshold)
    assert keep_referred_lesion(prediction.probs, prediction.masks).candidates > 1  # the switch matters here
    assert viewer.segmentation.one_region_action.isChecked() and engine.one_region

    viewer.segmentation.one_region_action.trigger()
    assert not engine.one_region
    assert _run(viewer, qtbot, WORDS, "slice") == "finished"
    assert np.array_equal(win.document.labels[0].mask[k], prediction.masks)  # every region kept

    again = _viewer(qtbot, engine)  # a new window (next start) reads the choice back
    assert not again.segmentation.one_region_action.isChecked() and not engine.one_region
    again.segmentation.one_region_action.trigger()
    assert engine.one_region and viewer.segmentation.engine.one_region


@pytest.mark.slow
def test_out_of_memory_in_a_run_is_a_message_and_keeps_the_labels(tmp_path):
    """A real allocation failure (address-space cap in a child process) during a whole-volume run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lsms_core.checkpoint import create_random_checkpoint

    # 256 px input: one slice needs far more than the 56 MB left, so even one slice at a time fails;
    # much tighter caps make oneDNN itself crash inside a convolution, which no caller can catch.
    folder = create_random_checkpoint(tmp_path / "c256", input_size=256)
    child = Path(__file__).with_name("oom_child.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen")
    result = subprocess.run([sys.executable, str(child), str(folder), "56", str(tmp_path / "settings")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["OUTCOME"] == "['failed']"
    assert lines["ERROR"].startswith("('Not enough memory', ")
    assert "not enough memory for one slice on the CPU" in lines["ERROR"]
    assert "Try a smaller slice range" in lines["ERROR"]
    assert lines["LABELS"] == "['drawn by hand']"  # the existing label survived, no half result was added
    assert lines["MESSAGE"] == "Not enough memory." and lines["RUN_ENABLED"] == "True"


def test_a_reclmis_checkpoint_runs_both_stages_in_the_viewer(qtbot, study, tmp_path):
    """The second network of the engine (RecLMIS) drives the same viewer path: worker, candidates from its
    referring map, LiteMedSAM's outline, the label's run info."""
    from lsms_core.checkpoint import create_random_checkpoint
    from lsms_core.refiner.refiner import available

    if not available():
        pytest.skip("the LiteMedSAM weights (resources/models/medsam-lite) are not installed")
    folder = create_random_checkpoint(tmp_path / "r", variant="reclmis-adapted", input_size=64, seed=0)
    host = EngineHost(folder, device="cpu", threads=1, refine="on")
    volume = study[0]
    k = volume.shape[0] // 2
    # Random weights: the threshold sits at the median probability, so the referred region is part of the
    # slice, never all or nothing, as the shared engine fixture does for LSMS.
    probs = host.get().predict(volume.array[k], "the lesion").probs
    host.threshold = float(np.median(probs.astype(np.float32)))
    viewer = _viewer(qtbot, host)
    viewer.window.show()
    viewer.opening.set_volume(volume)
    viewer.window.slice_view.set_slice(k)
    assert _run(viewer, qtbot, "the lesion", "slice", timeout=180000) == "finished"
    labels = viewer.window.document.labels
    assert len(labels) == 1
    run = labels[0].run
    assert run is not None and run.checkpoint == host.get().name and run.slices == (k, k + 1)
    assert run.stages[:2] == ["lsms", "candidates"] and run.stages[-1] == "medsam-lite"
    assert labels[0].mask[k].any() and not labels[0].mask[:k].any() and not labels[0].mask[k + 1:].any()

"""Undo/redo through the real Document: strokes, model-run style replacements, label add/delete."""

from __future__ import annotations

import numpy as np

from lsms_viewer.editing import paint_stroke
from lsms_viewer.state.document import RunInfo
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.state.maskbits import pack_bits, unpack_bits


def _stroke(doc, label, z, points, radius=2.0):
    change = paint_stroke(label.mask, z, points, radius, (0.7, 0.8))
    doc.write_region(label.id, change.bbox, change.after)


def test_pack_bits_roundtrip_and_empty_is_none():
    rng = np.random.default_rng(1)
    m = rng.random((37, 53)) > 0.7
    assert np.array_equal(unpack_bits(pack_bits(m), m.shape), m)
    assert pack_bits(np.zeros((4, 4), bool)) is None


def test_stroke_batches_undo_and_redo_exactly(document):
    history = UndoHistory(document)
    label = document.add_label(np.zeros(document.volume.shape, bool), name="lesion")
    assert history.undo_text == "new label “lesion”"
    start = label.mask.copy()
    history.begin_batch("brush stroke")
    _stroke(document, label, 3, [(20, 20), (20, 30)])
    _stroke(document, label, 3, [(20, 30), (30, 30)])
    history.end_batch()
    painted = label.mask.copy()
    assert painted.sum() > 0 and len(history) == 2
    assert history.undo_text == "brush stroke"
    assert history.undo() == "brush stroke"
    assert np.array_equal(label.mask, start)
    assert history.redo_text == "brush stroke"
    history.redo()
    assert np.array_equal(label.mask, painted)
    # A new edit clears the redo stack.
    history.undo()
    _stroke(document, label, 5, [(10, 10)])
    assert not history.can_redo


def test_model_run_replacement_is_one_step_with_its_words(document):
    history = UndoHistory(document)
    shape = document.volume.shape
    first = np.zeros(shape, bool)
    first[2:6, 20:30, 10:20] = True
    run = RunInfo("the dark lesion", 0.4, "cpu", "demo", True, (0, shape[0]))
    label = document.add_label(first.copy(), expression="the dark lesion", run=run)
    assert history.undo_text == "model run “the dark lesion”"
    second = np.zeros(shape, bool)
    second[4:9, 25:40, 50:60] = True
    run2 = RunInfo("the bright lesion", 0.3, "cpu", "demo", True, (0, shape[0]))
    document.replace_mask(label.id, second.copy(), expression="the bright lesion", run=run2)
    assert len(history) == 2 and history.undo_text == "model run “the bright lesion”"
    history.undo()
    assert np.array_equal(label.mask, first)
    assert label.expression == "the dark lesion" and label.run.expression == "the dark lesion"
    history.undo()
    assert not document.labels
    history.redo()
    history.redo()
    restored = document.label(label.id)
    assert np.array_equal(restored.mask, second) and restored.expression == "the bright lesion"
    assert document.active_label is restored


def test_delete_and_rename_are_undoable_display_changes_are_not(document):
    history = UndoHistory(document)
    mask = np.zeros(document.volume.shape, bool)
    mask[1, 5:9, 5:9] = True
    a = document.add_label(mask.copy(), name="A")
    b = document.add_label(mask.copy(), name="B")
    document.update_label(a.id, name="segment VII lesion")
    assert history.undo_text == "change name of “segment VII lesion”"
    document.update_label(a.id, opacity=0.1)
    assert history.undo_text == "change name of “segment VII lesion”"
    document.set_active(a.id)
    document.remove_label(a.id)
    assert history.undo_text.startswith("delete")
    history.undo()
    assert document.active_label is document.label(a.id)  # it was active: it is again
    assert [lab.name for lab in document.labels] == ["segment VII lesion", "B"]
    assert np.array_equal(document.label(a.id).mask, mask)
    history.undo()
    assert document.label(a.id).name == "A"
    assert b.id in {lab.id for lab in document.labels}


def test_budget_drops_oldest_steps_and_keeps_the_newest(document):
    history = UndoHistory(document, budget_bytes=3000)
    label = document.add_label(np.zeros(document.volume.shape, bool))
    rng = np.random.default_rng(0)
    for z in range(10):
        history.begin_batch("noise")
        noise = rng.random(document.volume.shape[1:]) > 0.5
        document.write_region(label.id, (slice(z, z + 1), slice(None), slice(None)), noise[None])
        history.end_batch()
    assert history.nbytes <= 3000 or len(history) == 1
    assert history.dropped > 0
    kept = len(history)
    for _ in range(kept):
        history.undo()
    # The dropped early steps stay done; the kept ones are all undone.
    assert label.mask[: 10 - kept].any() and not label.mask[10 - kept :].any()


def test_new_volume_clears_history(document, volume):
    history = UndoHistory(document)
    document.add_label(np.zeros(volume.shape, bool))
    document.set_volume(volume)
    assert not history.can_undo and history.shadow_nbytes == 0


def test_a_stroke_of_many_moves_is_one_patch_per_slice_and_painting_back_records_nothing(document):
    history = UndoHistory(document)
    label = document.add_label(np.zeros(document.volume.shape, bool))
    history.begin_batch("brush stroke")
    for x in range(10, 50, 4):
        _stroke(document, label, 4, [(20, x), (22, x + 4)])
    entry = history.end_batch()
    assert len(entry.parts) == 1
    painted = label.mask.copy()
    history.undo()
    assert not label.mask.any()
    history.redo()
    assert np.array_equal(label.mask, painted)
    history.begin_batch("eraser stroke")
    before = len(history)
    region = (slice(4, 5), slice(0, 10), slice(0, 10))
    document.write_region(label.id, region, np.ones((1, 10, 10), bool))
    document.write_region(label.id, region, painted[region])
    assert history.end_batch() is None and len(history) == before

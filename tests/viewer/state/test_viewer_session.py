"""Session files: a round trip restores identical labels, and a session of another study is refused."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_viewer.state.document import Document, RunInfo
from lsms_viewer.state.history import UndoHistory
from lsms_viewer.state.session import SessionError, read_session, restore_labels, write_session


def _labelled_document(volume) -> Document:
    doc = Document(volume)
    a = np.zeros(volume.shape, bool)
    a[2:5, 10:20, 10:25] = True
    b = np.zeros(volume.shape, bool)
    b[7, 40:44, 60:70] = True
    run = RunInfo("the bright lesion", 1.5, "cpu", "lsms-t-demo", True, (0, volume.shape[0]), ["note"])
    doc.add_label(a, name="A", expression="the dark lesion", meta={"annotation": {"segment": "VII"}})
    doc.add_label(b, expression="the bright lesion", run=run, color=(1, 2, 3))
    doc.update_label(1, visible=False, opacity=0.2)
    doc.set_active(1)
    return doc


def test_session_round_trip_restores_identical_labels(tmp_path, volume):
    doc = _labelled_document(volume)
    history = UndoHistory(doc)
    path = write_session(tmp_path / "s.lsms-session", doc, history.compressed_slices, view={"slice": 4})
    assert [p.name for p in tmp_path.iterdir()] == ["s.lsms-session"]  # no temporary file left
    data = read_session(path)
    fresh = Document(volume)
    restore_labels(fresh, data)
    for old, new in zip(doc.labels, fresh.labels, strict=True):
        assert np.array_equal(old.mask, new.mask)
        for name in ("id", "name", "expression", "color", "visible", "opacity", "run", "meta"):
            assert getattr(old, name) == getattr(new, name), name
    assert fresh.active_label.id == 1 and data.header["view"] == {"slice": 4}


def test_session_of_another_study_is_refused(tmp_path, volume):
    from viewer_helpers import phantom_volume

    path = write_session(tmp_path / "s.lsms-session", _labelled_document(volume))
    other = Document(phantom_volume(seed=5))
    with pytest.raises(SessionError, match="another study"):
        restore_labels(other, read_session(path))
    (tmp_path / "bad.lsms-session").write_bytes(b"not a zip")
    with pytest.raises(SessionError, match="bad.lsms-session"):
        read_session(tmp_path / "bad.lsms-session")


def test_the_model_mask_travels_as_a_blob_and_old_sessions_keep_theirs(tmp_path, volume):
    import base64
    import json
    import zipfile

    from lsms_viewer.state.maskbits import PackedMask, pack_bits

    model = np.zeros(volume.shape, bool)
    model[3:6, 10:30, 10:30] = True
    doc = Document(volume)
    run = RunInfo("the dark lesion", 1.0, "cpu", "lsms-t-demo", True, (0, volume.shape[0]), mask=PackedMask.of(model))
    edited = model.copy()
    edited[4, 10:12, 10:12] = False
    doc.add_label(edited, expression="the dark lesion", run=run)
    path = write_session(tmp_path / "s.lsms-session", doc)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["label_1.bin", "model_1.bin", "session.json"]
        header = json.loads(zf.read("session.json"))
    assert "mask" not in header["labels"][0]["run"]
    fresh = Document(volume)
    restore_labels(fresh, read_session(path))
    (label,) = fresh.labels
    assert label.run == run and np.array_equal(label.run.mask.unpack(), model)
    assert np.array_equal(label.mask, edited)

    # A session written when the model's mask was base64 text in meta: it moves onto the run.
    legacy = tmp_path / "old.lsms-session"
    header["labels"][0]["meta"] = {"first_model_mask": {"shape": list(volume.shape),
                                                        "bits": base64.b64encode(pack_bits(model)).decode()}}
    del header["labels"][0]["model_slices"]
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(legacy, "w") as dst:
        dst.writestr("session.json", json.dumps(header))
        dst.writestr("label_1.bin", src.read("label_1.bin"))
    old = Document(volume)
    restore_labels(old, read_session(legacy))
    (label,) = old.labels
    assert label.meta == {} and np.array_equal(label.run.mask.unpack(), model)

"""Dataset format v1: round trip, validation with line numbers, append without clashes, safe loading."""

import json

import numpy as np
import pytest

from lsms_core.data.format import DatasetWriter, Sample, assign_splits, read_dataset
from lsms_core.errors import DatasetError


def _write_small(root, n_cases=2, split="train"):
    rng = np.random.default_rng(0)
    with DatasetWriter(root, name="tiny", description="test") as w:
        for _ in range(n_cases):
            cid = w.new_case_id("case")
            img = w.write_image(cid, "007", rng.integers(-1000, 400, (16, 20)).astype(np.int16))
            m = np.zeros((16, 20), np.uint8)
            m[4:8, 5:9] = 1
            msk = w.write_mask(cid, "007_l1", m)
            w.add(
                Sample(
                    id=f"{cid}_s007_l1",
                    case_id=cid,
                    split=split,
                    image=img,
                    mask=msk,
                    expressions=["the hypodense lesion in the right lobe", "the lesion"],
                    spacing=(0.7, 0.8),
                    slice_index=7,
                    lesion_id="l1",
                    attributes={"diameter_mm": 3.2, "density": "hypo"},
                    extra={"reader_note": "kept"},
                )
            )
    return root


def test_round_trip_keeps_values_and_unknown_keys(tmp_path):
    root = _write_small(tmp_path / "ds")
    info = json.loads((root / "dataset.json").read_text())
    assert info["format"] == "refhl-seg" and info["version"] == 1 and info["name"] == "tiny"
    ds = read_dataset(root)
    assert [s.case_id for s in ds] == ["case000", "case001"]
    s = ds.samples[0]
    assert s.image == "images/case000/007.npy" and s.mask == "masks/case000/007_l1.png"
    assert s.spacing == (0.7, 0.8) and s.slice_index == 7 and s.lesion_id == "l1"
    assert s.extra == {"reader_note": "kept"} and s.line == 1
    image, mask, windowed = ds.load_pair(s)
    assert image.dtype == np.float32 and image.shape == (16, 20) and not windowed
    assert mask.dtype == np.uint8 and int(mask.sum()) == 16 and set(np.unique(mask)) == {0, 1}
    assert ds.verify_files() == []


def test_append_keeps_lines_and_never_reuses_case_ids(tmp_path):
    root = _write_small(tmp_path / "ds")
    # a header key some other tool wrote must survive an append
    info = json.loads((root / "dataset.json").read_text())
    info["site"] = "other-tool"
    (root / "dataset.json").write_text(json.dumps(info))
    before = (root / "manifest.jsonl").read_text().splitlines()
    with DatasetWriter(root, append=True) as w:
        assert w.split_of("case001") == "train"
        cid = w.new_case_id("case")
        assert cid == "case002"
        assert w.unique_case_id("case001") == "case001_2"
        with pytest.raises(DatasetError, match="already belongs"):
            w.add(dict(json.loads(before[0]), id="new_id"))
        with pytest.raises(DatasetError, match="never overwrites"):
            w.write_image("case000", "007", np.zeros((4, 4), np.int16))
        img = w.write_image(cid, "001", np.zeros((16, 20), np.float32))
        msk = w.write_mask(cid, "001_l1", np.ones((16, 20), bool), suffix=".npy")
        w.add(
            Sample(id="x", case_id=cid, split="test", image=img, mask=msk, expressions=["a"], spacing=(1, 1))
        )
    after = (root / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in after[:2]] == [json.loads(x) for x in before]
    ds = read_dataset(root)
    assert ds.info["site"] == "other-tool"
    assert len(ds) == 3 and ds.case_splits()["case002"] == "test"
    assert ds.load_mask(ds.samples[2]).sum() == 16 * 20


def test_new_dataset_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        DatasetWriter(tmp_path / "x")


def test_validation_reports_every_problem_with_its_line_number(tmp_path):
    root = _write_small(tmp_path / "ds")
    good = json.loads((root / "manifest.jsonl").read_text().splitlines()[0])
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({k: v for k, v in good.items() if k != "expressions"} | {"id": "b"}),
        json.dumps(good),  # duplicate id
        json.dumps(good | {"id": "c", "split": "test"}),  # case000 in two splits
        json.dumps(good | {"id": "d", "mask": "masks/case000/missing.png"}),
        json.dumps(good | {"id": "e", "image": "../outside.npy", "spacing": [0.7]}),
    ]
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as exc:
        read_dataset(root)
    why = exc.value.why
    assert "line 2: not valid JSON" in why
    assert 'line 3: "expressions"' in why
    assert "line 4: id 'case000_s007_l1' already used on line 1" in why
    assert "line 5: case 'case000' is in split 'test'" in why
    assert "line 6: mask file 'masks/case000/missing.png' is missing" in why
    assert "line 7:" in why and "stay inside" in why and '"spacing"' in why


def test_bad_header_is_named(tmp_path):
    root = _write_small(tmp_path / "ds")
    (root / "dataset.json").write_text(json.dumps({"format": "refhl-seg", "version": 2}))
    with pytest.raises(DatasetError, match="version 2"):
        read_dataset(root)
    with pytest.raises(DatasetError, match="dataset.json is missing"):
        read_dataset(tmp_path)


def test_unsafe_or_wrong_files_fail_with_the_line_number(tmp_path):
    root = _write_small(tmp_path / "ds")
    ds = read_dataset(root)
    s0, s1 = ds.samples
    # an object array would need unpickling: refused, never executed
    np.save(root / s0.image, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="line 1: image is not a readable .npy"):
        ds.load_image(s0)
    # a mask of the wrong shape never yields a sample
    from PIL import Image

    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / s1.mask)
    with pytest.raises(DatasetError, match=r"line 2: mask shape \(5, 5\) differs"):
        ds.load_pair(s1)
    assert len(ds.verify_files()) == 2


def test_windowed_png_images(tmp_path):
    with DatasetWriter(tmp_path / "p") as w:
        img = w.write_image("c1", "0", np.full((8, 8), 128, np.uint8), suffix=".png")
        msk = w.write_mask("c1", "0_l1", np.eye(8))
        w.add(
            Sample(id="a", case_id="c1", split="val", image=img, mask=msk, expressions=["x"], spacing=(1, 1))
        )
        with pytest.raises(DatasetError, match="uint8"):
            w.write_image("c1", "1", np.zeros((8, 8), np.int16), suffix=".png")
    ds = read_dataset(tmp_path / "p")
    image, mask, windowed = ds.load_pair(ds.samples[0])
    assert windowed and image.dtype == np.uint8 and int(mask.sum()) == 8


def test_assign_splits_is_deterministic_and_by_case():
    ids = [f"c{i}" for i in range(20)]
    a = assign_splits(ids, seed=3)
    assert a == assign_splits(reversed(ids), seed=3)
    assert sorted(a.values()).count("train") == 16 and list(a.values()).count("test") == 2
    small = assign_splits(["a", "b", "c"])
    assert sorted(small.values()) == ["test", "train", "val"]

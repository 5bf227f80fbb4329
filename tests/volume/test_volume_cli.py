"""lsms convert / lsms segment / lsms bench load, run through the real command-line entry point."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from lsms_core.checkpoint import create_random_checkpoint
from lsms_core.cli.main import main
from lsms_core.volume import load_volume, read_label_sidecar
from lsms_core.volume.synthetic_dicom import write_ct_series

OBLIQUE_RAS = np.array([[-2.9, 0.5, 0.3, 70.0], [0.4, -2.8, 0.9, 40.0], [0.0, 0.8, 4.9, -30.0], [0, 0, 0, 1]])


def write_ct_nifti(path, shape=(48, 40, 5), affine=OBLIQUE_RAS):
    rng = np.random.default_rng(0)
    data = rng.normal(40, 80, shape).astype(np.int16)
    data[10:20, 12:22, 1:4] = -20  # a low-density block
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_convert_dicom_to_nifti_and_back(tmp_path, capsys):
    write_ct_series(tmp_path / "dicom", slices=4, rows=16, cols=20, orientation=(0, 1, 0, 0, 0, -1))
    assert main(["convert", str(tmp_path / "dicom"), str(tmp_path / "ct.nii.gz")]) == 0
    assert "wrote" in capsys.readouterr().out
    a, b = load_volume(tmp_path / "dicom"), load_volume(tmp_path / "ct.nii.gz")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine_lps, b.affine_lps, atol=1e-4)
    assert main(["convert", str(tmp_path / "ct.nii.gz"), str(tmp_path / "ct.nrrd"), "--layout", "lps"]) == 0
    np.testing.assert_array_equal(load_volume(tmp_path / "ct.nrrd").array, a.array)
    assert main(["convert", str(tmp_path / "dicom"), "--list"]) == 0
    assert "1 series" in capsys.readouterr().out


def test_convert_refusals_are_one_line_with_status_2(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"\0" * 200)
    for argv in (["convert", str(tmp_path / "missing"), str(tmp_path / "o.nii.gz")],
                 ["convert", str(tmp_path / "junk"), str(tmp_path / "o.nii.gz")],
                 ["convert", str(tmp_path / "junk"), str(tmp_path / "o.txt")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    write_ct_nifti(tmp_path / "ct.nii.gz")
    (tmp_path / "exists.nii.gz").write_bytes(b"keep me")
    assert main(["convert", str(tmp_path / "ct.nii.gz"), str(tmp_path / "exists.nii.gz")]) == 2
    assert (tmp_path / "exists.nii.gz").read_bytes() == b"keep me"
    assert main(["convert", str(tmp_path / "ct.nii.gz"), str(tmp_path / "ct.nii.gz"), "--overwrite"]) == 2
    assert "overwrite an input" in capsys.readouterr().err


def test_segment_refuses_to_overwrite_its_input(tmp_path, capsys):
    ct = write_ct_nifti(tmp_path / "ct.nii.gz")
    before = ct.read_bytes()
    assert main(["segment", str(ct), "-e", "the nodule", "--out", str(ct), "--overwrite",
                 "--checkpoint", str(tmp_path / "no-model")]) == 2
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert ct.read_bytes() == before
    assert main(["segment", str(ct), "--out", str(tmp_path / "m.nii.gz")]) == 2  # no expression
    assert main(["segment", str(ct), "-e", "x", "--slices", "7:9"]) == 2
    assert "selects no slice" in capsys.readouterr().err


def test_demo_names_the_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSMS_RESOURCES", str(tmp_path / "resources"))
    assert main(["segment", "--demo"]) == 2
    assert "demo.json" in capsys.readouterr().err
    demo = tmp_path / "resources" / "demo"
    demo.mkdir(parents=True)
    (demo / "demo.json").write_text(json.dumps({"ct": "ct.nii.gz", "expression": "the lesion",
                                                "lesion_mask": "lesion.nii.gz"}))
    assert main(["segment", "--demo"]) == 2
    assert "ct.nii.gz" in capsys.readouterr().err
    write_ct_nifti(demo / "ct.nii.gz")
    assert main(["segment", "--demo"]) == 2
    assert "lsms-e0-demo/model.safetensors" in capsys.readouterr().err


@pytest.mark.slow
def test_segment_writes_mask_on_the_input_grid(tmp_path, capsys):
    ckpt = create_random_checkpoint(tmp_path / "ckpt", variant="lsms-t", input_size=64, seed=0)
    ct = write_ct_nifti(tmp_path / "ct.nii.gz")
    out = tmp_path / "mask.nii.gz"
    assert main(["segment", str(ct), "--expression", "the low-density lesion", "--out", str(out),
                 "--checkpoint", str(ckpt), "--device", "cpu", "--slices", "1:4", "--threshold", "0.5",
                 "--batch", "2", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert f"mask written to {out.resolve()}" in text and "not trained" in captured.err
    img, src = nib.load(str(out)), nib.load(str(ct))
    assert img.shape == src.shape
    np.testing.assert_allclose(img.affine, src.affine, atol=1e-4)
    data = np.asanyarray(img.dataobj)
    assert data.dtype == np.uint8 and set(np.unique(data)) <= {0, 1}
    assert not data[:, :, [0, 4]].any()  # slices outside --slices stay empty
    labels = read_label_sidecar(out)
    assert labels[0].expression == "the low-density lesion" and labels[0].extra["slices"] == [1, 4]
    if data.any():
        assert "lesion:" in text and "mL" in text


@pytest.mark.slow
def test_demo_case_end_to_end(tmp_path, monkeypatch, capsys):
    """The --demo contract of the data and training helpers, with a real (random) checkpoint."""
    res = tmp_path / "resources"
    (res / "demo").mkdir(parents=True)
    create_random_checkpoint(res / "models" / "lsms-e0-demo", input_size=64)
    write_ct_nifti(res / "demo" / "ct.nii.gz", shape=(32, 32, 3))
    lesion = np.zeros((32, 32, 3), np.uint8)
    lesion[10:20, 12:22, 1] = 1
    nib.save(nib.Nifti1Image(lesion, OBLIQUE_RAS), str(res / "demo" / "lesion.nii.gz"))
    (res / "demo" / "demo.json").write_text(json.dumps(
        {"ct": "ct.nii.gz", "expression": "the low-density lesion", "lesion_mask": "lesion.nii.gz"}))
    monkeypatch.setenv("LSMS_RESOURCES", str(res))
    monkeypatch.chdir(tmp_path)
    assert main(["segment", "--demo", "--device", "cpu", "--threshold", "0.5"]) == 0
    text = capsys.readouterr()
    assert "Dice" in text.out and "not trained" in text.err
    out = tmp_path / "lsms-demo-mask.nii.gz"
    np.testing.assert_allclose(nib.load(str(out)).affine, OBLIQUE_RAS, atol=1e-4)


@pytest.mark.slow
def test_bench_load_reports_ratio(capsys):
    assert main(["bench", "load", "--slices", "3", "--size", "64", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("ours_s", "simpleitk_s", "ratio", "peak_mem_ratio", "shape"):
        assert key in result
    assert result["shape"] == [3, 64, 64] and result["same_voxels"] is True
    assert result["ratio"] == pytest.approx(result["ours_s"] / result["simpleitk_s"], rel=0.01, abs=1e-3)

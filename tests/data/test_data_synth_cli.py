"""`lsms data synth/check/preview/demo` end to end on small cases, through the real CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from lsms_core.cli.main import main
from lsms_core.data.format import read_dataset


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    assert main(["data", "synth", "--out", str(out), "--cases", "3", "--seed", "5", "--size", "96",
                 "--slices-per-case", "12", "--json"]) == 0
    return out


def test_synth_writes_a_valid_dataset_with_volumes_and_a_card(synth_dir):
    ds = read_dataset(synth_dir)
    assert len(ds) > 0 and len(ds.case_ids) == 3
    assert (synth_dir / "DATA_CARD.md").read_text().count("cannot stand in for") == 1
    for s in ds.samples:
        image, mask, windowed = ds.load_pair(s)
        assert not windowed and image.shape == (96, 96) and mask.any()
        assert len(s.extra["expression_fractions"]) == len(s.expressions)
        assert s.attributes["synthetic"] is True and s.attributes["diameter_mm"] > 0
    for cid in ds.case_ids:
        assert (synth_dir / "volumes" / cid / "ct.nii.gz").is_file()
    # one case never spans two splits (read_dataset would raise), and the same seed gives the same data
    info = json.loads((synth_dir / "dataset.json").read_text())
    assert info["format"] == "refhl-seg" and info["synthetic"] is True


def test_same_seed_same_dataset(synth_dir, tmp_path):
    again = tmp_path / "again"
    assert main(["data", "synth", "--out", str(again), "--cases", "3", "--seed", "5", "--size", "96",
                 "--slices-per-case", "12", "--no-volumes", "--json"]) == 0
    assert (again / "manifest.jsonl").read_text() == (synth_dir / "manifest.jsonl").read_text()
    s = read_dataset(again).samples[0]
    a = np.load(again / s.image)
    b = np.load(synth_dir / s.image)
    # bit-identical on one machine; another CPU's float rounding may move a rare voxel by 1 HU
    assert a.shape == b.shape and np.mean(a != b) < 1e-3 and np.abs(a.astype(int) - b).max() <= 2


def test_synth_refuses_a_non_empty_folder_and_bad_settings(synth_dir, tmp_path, capsys):
    assert main(["data", "synth", "--out", str(synth_dir), "--cases", "1", "--size", "64"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "bad"), "--cases", "1", "--size", "20"]) == 2
    assert "size" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_check_reports_counts_and_line_numbered_problems(synth_dir, tmp_path, capsys):
    assert main(["data", "check", str(synth_dir), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["valid"] and rep["samples"] == sum(v["samples"] for v in rep["splits"].values())
    assert rep["vocabulary_size"] > 10 and rep["lesion_diameter_mm"]["min"] > 0
    # break one mask: check names the manifest line
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("dataset.json", "manifest.jsonl"):
        (broken / name).write_text((synth_dir / name).read_text())
    lines = (broken / "manifest.jsonl").read_text().splitlines()
    # the CLI's convention: status 2, the summary on stdout, one "error:" line per problem on stderr
    assert main(["data", "check", str(broken)]) == 2
    captured = capsys.readouterr()
    assert "INVALID" in captured.out and "line 1" not in captured.out and len(lines) > 0
    errors = captured.err.splitlines()
    assert errors and all(e.startswith("error: ") for e in errors) and "line 1" in captured.err


def test_preview_renders_a_contact_sheet(synth_dir, tmp_path):
    png = tmp_path / "sheet.png"
    assert main(["data", "preview", str(synth_dir), "--out", str(png), "--n", "4"]) == 0
    with Image.open(png) as im:
        assert im.size[0] > 300 and im.size[1] > 300


def test_demo_is_reproducible_and_true(tmp_path):
    import nibabel as nib

    from lsms_core.data.demo import DEMO_EXPRESSION

    assert main(["data", "demo", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "demo.json").read_text())
    assert info["expression"] == DEMO_EXPRESSION
    ct, les = nib.load(tmp_path / info["ct"]), nib.load(tmp_path / info["lesion_mask"])
    assert np.allclose(ct.affine, les.affine) and ct.get_data_dtype() == np.int16
    mask = np.asarray(les.dataobj)
    assert mask[:, :, info["slice"]].any()
    assert main(["data", "demo", "--out", str(tmp_path)]) == 2  # never overwrites without --force


def test_shipped_demo_matches_its_recipe(tmp_path):
    from lsms_core.data.demo import write_demo
    from lsms_core.resources import resources_dir

    shipped = resources_dir() / "demo"
    info = write_demo(tmp_path)
    assert json.loads((shipped / "demo.json").read_text()) == info
    import nibabel as nib

    a = np.asarray(nib.load(shipped / "ct.nii.gz").dataobj)
    b = np.asarray(nib.load(tmp_path / "ct.nii.gz").dataobj)
    # bit-identical on one machine; another CPU's float rounding may move a rare voxel by 1 HU
    assert a.shape == b.shape and np.mean(a != b) < 1e-3 and np.abs(a.astype(int) - b).max() <= 2


def test_bench_synth_reports_slices_per_core(capsys):
    assert main(["bench", "synth", "--size", "64", "--cases", "1", "--slices", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["benchmark"] == "synth" and r["slices"] == 4
    assert r["render_slices_per_cpu_s"] > 0 and r["baseline_phantom_slices_per_cpu_s"] > 0
    assert isinstance(r["meets_target"], bool)

"""`lsms data from-masks` (NIfTI and DICOM inputs) and `lsms data import-lvit` on real files."""

import csv

import numpy as np
import pytest
from PIL import Image

from lsms_core.cli.main import main
from lsms_core.data.facts import LOBE_OF_SEGMENT, SEGMENT_NAMES
from lsms_core.data.format import read_dataset
from lsms_core.data.lvit import case_of, clean_description
from lsms_core.data.synth import synth_case
from lsms_core.data.synth_dataset import write_case_volumes
from lsms_core.measure import measure_2d


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    out = []
    for seed in (20, 21, 22, 23):
        folder = tmp_path_factory.mktemp(f"case{seed}")
        case = synth_case(seed, size=96, n_slices=16, phase="portal venous", n_lesions=3)
        write_case_volumes(case, folder)
        out.append((case, folder))
    return out


@pytest.fixture(scope="module")
def case_files(cases):
    return cases[0]


def test_from_masks_measures_what_the_masks_show(cases, tmp_path):
    out = tmp_path / "ds"
    for i, (_case, folder) in enumerate(cases):
        assert main(["data", "from-masks", "--ct", str(folder / "ct.nii.gz"), "--lesions",
                     str(folder / "lesions.nii.gz"), "--organ", str(folder / "liver.nii.gz"), "--out", str(out),
                     "--case-id", f"p{i}", "--json"] + (["--append"] if i else [])) == 0
    ds = read_dataset(out)
    # a case whose lesions are a few voxels at this size yields no line (too small to refer to)
    assert len(ds.case_ids) >= 3 and ds.case_ids <= {f"p{i}" for i in range(len(cases))}
    lobes_right = 0
    for s in ds.samples:
        case = cases[int(s.case_id[1:])][0]
        k, lid = s.slice_index, int(s.lesion_id[1:])
        truth = case.lesions[k] == lid
        assert np.array_equal(ds.load_mask(s).astype(bool), truth)  # the right lesion, on the right voxels
        image, _ = ds.load_image(s)
        assert np.array_equal(image, case.ct[k])
        assert s.attributes["diameter_mm"] == pytest.approx(
            measure_2d(truth, (case.spacing[1], case.spacing[0])).long_axis.length_mm, abs=0.06)
        assert s.attributes["segment_estimated"] is True and "lesion_type" not in s.attributes
        seg = case.segments[k][truth]
        true_lobe = LOBE_OF_SEGMENT[SEGMENT_NAMES[np.bincount(seg[seg > 0]).argmax() - 1]]
        lobes_right += s.attributes["lobe"] == true_lobe
    assert len(ds) > 10 and lobes_right >= 0.75 * len(ds)  # an estimate from position alone, usually right


def test_from_masks_binary_mask_and_dicom_series(tmp_path):
    from lsms_core.volume import load_volume, save_mask
    from lsms_core.volume.synthetic_dicom import write_ct_series

    write_ct_series(tmp_path / "dcm", slices=8, rows=64, cols=64, spacing=(0.8, 0.8, 3.0), seed=1)
    vol = load_volume(tmp_path / "dcm")
    mask = np.zeros(vol.shape, np.uint8)
    mask[2:6, 20:30, 15:25] = 1  # one lesion ...
    mask[3:5, 40:44, 40:46] = 1  # ... and another one: two connected components of a binary mask
    save_mask(mask, vol, tmp_path / "les.nii.gz")
    out = tmp_path / "ds"
    assert main(["data", "from-masks", "--ct", str(tmp_path / "dcm"), "--lesions", str(tmp_path / "les.nii.gz"),
                 "--out", str(out)]) == 0
    ds = read_dataset(out)
    assert {s.lesion_id for s in ds} == {"l1", "l2"}
    two = [s for s in ds if s.attributes["lesions_on_slice"] == 2]
    assert two and all(s.attributes["size_rank"] in (1, 2) for s in two)
    assert ds.samples[0].spacing == pytest.approx((0.8, 0.8))
    # comparatives appear where the attributes alone would fit both lesions
    big = [s for s in two if s.attributes["size_rank"] == 1]
    assert any("larg" in e or "more" in e or "most" in e or "mm" in e for s in big for e in s.expressions)


def test_from_masks_rejects_a_mask_on_another_grid(case_files, tmp_path, capsys):
    from lsms_core.volume import Volume, save_mask

    case, folder = case_files
    other = Volume(np.zeros((4, 32, 32), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    save_mask(np.ones((4, 32, 32), np.uint8), other, tmp_path / "wrong.nii.gz")
    assert main(["data", "from-masks", "--ct", str(folder / "ct.nii.gz"), "--lesions",
                 str(tmp_path / "wrong.nii.gz"), "--out", str(tmp_path / "ds")]) == 2
    assert "wrong.nii.gz" in capsys.readouterr().err


def test_lvit_text_cleaning_and_case_ids():
    assert clean_description("Bilateral infection, two areas. EOF XXX XXX XXX") == "Bilateral infection, two areas."
    assert case_of("study_0255_18") == "study_0255" and case_of("covid_1") == "covid_1"


@pytest.mark.parametrize("sheet", ["csv", "xlsx"])
def test_import_lvit(tmp_path, sheet):
    img_dir, msk_dir = tmp_path / "img", tmp_path / "labelcol"
    img_dir.mkdir()
    msk_dir.mkdir()
    rng = np.random.default_rng(0)
    rows = [("Image", "Description")]
    for p in range(3):
        for s in range(2):
            name = f"study_{p:04d}_{s}.png"
            Image.fromarray(rng.integers(0, 255, (40, 50), dtype=np.uint8)).save(img_dir / name)
            m = np.zeros((40, 50), np.uint8)
            m[10:20, 10 + s: 25] = 255
            Image.fromarray(m).save(msk_dir / f"mask_{name}")
            rows.append((name, f"Lesion in the left lower lung, patient {p}. EOF XXX XXX"))
    rows.append(("missing.png", "nothing here EOF XXX"))
    text = tmp_path / f"Train_text.{sheet}"
    if sheet == "csv":
        with open(text, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    else:
        from openpyxl import Workbook

        wb = Workbook()
        for r in rows:
            wb.active.append(list(r))
        wb.save(text)
    out = tmp_path / "ds"
    assert main(["data", "import-lvit", "--images", str(img_dir), "--masks", str(msk_dir), "--text", str(text),
                 "--out", str(out), "--json"]) == 0
    ds = read_dataset(out)
    assert len(ds) == 6 and len(ds.case_ids) == 3
    s = ds.samples[0]
    image, mask, windowed = ds.load_pair(s)
    assert windowed and image.dtype == np.uint8 and mask.sum() == 10 * 15
    assert s.expressions == ["Lesion in the left lower lung, patient 0."]
    assert s.attributes["spacing_known"] is False
    assert len({s.split for s in ds if s.case_id == "study_0000"}) == 1
    assert main(["data", "preview", str(out), "--out", str(tmp_path / "sheet.png"), "--n", "3"]) == 0
    assert main(["data", "check", str(out), "--json"]) == 0


def test_from_masks_on_a_real_ct_dicom_file(tmp_path):
    from pydicom.data import get_testdata_file

    from lsms_core.volume import load_volume, save_mask

    path = get_testdata_file("CT_small.dcm", download=False)
    vol = load_volume(path)
    mask = np.zeros(vol.shape, np.uint8)
    mask[0, 60:75, 50:70] = 1
    save_mask(mask, vol, tmp_path / "les.nii.gz")
    out = tmp_path / "ds"
    assert main(["data", "from-masks", "--ct", path, "--lesions", str(tmp_path / "les.nii.gz"),
                 "--out", str(out), "--case-id", "ct_small"]) == 0
    (s,) = read_dataset(out).samples
    assert s.spacing == pytest.approx((0.661468, 0.661468))
    assert s.attributes["diameter_mm"] == pytest.approx(np.hypot(15, 20) * 0.661468, abs=0.051)  # 0.1 mm rounding
    image = np.load(out / s.image)
    assert image.dtype == np.int16 and np.array_equal(image, vol.array[0])

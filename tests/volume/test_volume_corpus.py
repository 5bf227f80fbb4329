"""Every file of the pydicom and pydicom-data test corpora is either loaded or refused with a reason.

About 250 odd files: big-endian, truncated, missing meta, bad VR, palette colour, 1-bit, multi-frame,
JPEG/JPEG-LS/JPEG 2000/RLE/deflate, RT objects, SR, SEG, DICOMDIRs, pixel-less files.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom.data
import pytest

from lsms_core.errors import VolumeError
from lsms_core.volume import list_series, load_volume


def corpus_files() -> list[Path]:
    files = [p for p in (Path(pydicom.data.__file__).parent / "test_files").rglob("*") if p.is_file()]
    try:
        from data_store.utils import DataStore

        files += [p for p in Path(DataStore().data_path).iterdir() if p.is_file()]
    except ImportError:  # pydicom-data is a test dependency; without it only pydicom's files are checked
        pass
    return sorted(files)


def test_every_corpus_file_is_loaded_or_refused_clearly():
    files = corpus_files()
    assert len(files) > 150
    loaded, refused = [], []
    for path in files:
        try:
            vol = load_volume(path)
        except VolumeError as exc:
            # one line naming the file and saying why
            assert path.name in exc.what and exc.why and "\n" not in str(exc), str(exc)
            assert "Traceback" not in exc.why
            refused.append(path.name)
            continue
        assert vol.array.ndim == 3 and vol.array.size > 0
        assert vol.array.dtype in (np.int16, np.float32)
        assert np.all(np.isfinite(vol.affine_lps))
        loaded.append(path.name)
    # the images a CT tool must read do load, whatever their encoding
    for name in ("CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",
                 "MR_small_jp2klossless.dcm", "MR_small_implicit.dcm", "image_dfl.dcm", "emri_small.dcm",
                 "JPEG-LL.dcm", "rtdose.dcm", "explicit_VR-UN.dcm"):
        if any(p.name == name for p in files):
            assert name in loaded, name
    for name in ("rtstruct.dcm", "test-SR.dcm", "examples_palette.dcm", "MR_truncated.dcm", "liver.dcm"):
        if any(p.name == name for p in files):
            assert name in refused, name


@pytest.mark.parametrize("name,reason", [
    ("rtstruct.dcm", "no image in this file (RT Structure Set Storage)"),
    ("examples_palette.dcm", "colour image (PALETTE COLOR"),
    ("MR_truncated.dcm", "truncated"),
])
def test_refusal_reasons(name, reason):
    path = pydicom.data.get_testdata_file(name, download=False)
    with pytest.raises(VolumeError, match=re.escape(reason)):
        load_volume(path)


def test_dicomdir_folders_scan_their_images():
    folder = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "77654033"
    series = list_series(folder)
    assert sorted((s.modality, s.slices) for s in series) == [("CR", 1), ("CR", 1), ("CR", 1), ("CT", 4)]
    # 3 CR images and a 4-slice CT: the CT is the default pick. Its slices form two blocks 200 mm
    # apart (1 + 3 slices): the larger block is kept, nothing is invented to fill the hole.
    vol = load_volume(folder)
    assert vol.shape == (3, 16, 16) and vol.meta["modality"] == "CT"
    assert any("2 separate blocks" in w for w in vol.warnings)
    assert vol.spacing[2] == pytest.approx(1.25)


def test_a_dicomdir_opens_the_folder_it_indexes():
    dicomdir = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "DICOMDIR"
    vol = load_volume(dicomdir)
    assert vol.meta["modality"] == "CT" and vol.shape == (5, 16, 16)
    assert "is an index" in vol.warnings[0]

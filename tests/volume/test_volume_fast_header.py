"""The loader's fast path (header parsed up to group 0x0028, PixelData found at the end of the file, 16-bit
pixels read straight into the volume) gives exactly what a full parse gives, and steps aside when a file
is not what it assumes."""

from __future__ import annotations

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

import lsms_core.volume.dicom as dicom
from lsms_core.volume import load_volume
from lsms_core.volume.synthetic_dicom import write_ct_series


def _sitk(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def _scanner_like(files, *, unsigned=False):
    """Private groups before and after 0x0028 and sequences, as scanners write them."""
    rng = np.random.default_rng(0)
    for path in files:
        ds = pydicom.dcmread(path)
        blk = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
        for i in range(20):
            blk.add_new(0x10 + i, "DS", f"{rng.normal():.5f}")
        ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", rng.bytes(3001))
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = pydicom.uid.generate_uid()
        ds.ReferencedImageSequence = Sequence([item])
        if unsigned:
            ds.PixelRepresentation = 0  # the stored values are 0..4095: same bytes, unsigned
        ds.save_as(path)


def test_fast_path_matches_simpleitk_on_scanner_like_headers(tmp_path):
    files = write_ct_series(tmp_path / "s", slices=5, rows=32, cols=24, shuffle_names=True)
    _scanner_like(files)
    ds = dicom._read_header(files[0])
    assert getattr(ds, "_lsms_pixel", None) is not None  # the fast path was taken
    assert 0x00290010 not in ds  # nothing after group 0x0028 was parsed
    vol = load_volume(tmp_path / "s")
    assert np.array_equal(dicom_source(vol), _sitk(tmp_path / "s"))


def dicom_source(vol):
    from lsms_core.volume import to_source_array

    return to_source_array(vol.array, vol.source_grid)


def test_unsigned_pixels_with_an_intercept_read_straight_match_simpleitk(tmp_path):
    files = write_ct_series(tmp_path / "u", slices=4, rows=16, cols=20)
    _scanner_like(files, unsigned=True)
    vol = load_volume(tmp_path / "u")
    assert vol.array.dtype == np.int16 and vol.array.min() < -900
    assert np.array_equal(dicom_source(vol), _sitk(tmp_path / "u"))


def test_data_after_the_pixels_falls_back_to_a_full_parse(tmp_path):
    files = write_ct_series(tmp_path / "t", slices=3, rows=16, cols=16)
    expected = load_volume(tmp_path / "t").array.copy()
    for path in files:
        with open(path, "ab") as fp:  # DataSetTrailingPadding (FFFC,FFFC) OB, 8 bytes
            fp.write(b"\xfc\xff\xfc\xffOB\x00\x00\x08\x00\x00\x00" + bytes(8))
    assert getattr(dicom._read_header(files[0]), "_lsms_pixel", None) is None
    assert np.array_equal(load_volume(tmp_path / "t").array, expected)

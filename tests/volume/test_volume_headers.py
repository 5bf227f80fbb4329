"""Headers that lie or say nothing useful: sizes the file cannot hold (refused before allocating), zero
voxel sizes and rescale slopes (warned), an empty orientation (refused); and a volume whose file is cut
short while it is in use stays intact (no memory-mapped SIGBUS)."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import textwrap
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest

from lsms_core.cli.main import main
from lsms_core.errors import VolumeError
from lsms_core.volume import load_volume
from lsms_core.volume.synthetic_dicom import write_ct_series


def _claiming_nifti(shape=(2000, 2000, 2000)) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    header["vox_offset"] = 352
    return header.binaryblock + b"\0" * 4 + b"\0" * 124  # 480 bytes in all


_CAPPED = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a forged size must not be allocated
    from lsms_core.cli.main import main
    sys.exit(main(["convert", sys.argv[1], sys.argv[2]]))
""")


@pytest.mark.parametrize("name", ["claims.nii", "claims.nii.gz", "claims.mha", "claimsz.mha"])
def test_a_header_claiming_more_than_the_file_holds_is_refused_before_allocating(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".nii"):
        path.write_bytes(_claiming_nifti())
    elif name.endswith(".nii.gz"):
        path.write_bytes(gzip.compress(_claiming_nifti()))
    else:
        compressed = "z" in name
        path.write_bytes(("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
                          f"CompressedData = {compressed}\n" + ("CompressedDataSize = 20\n" if compressed else "")
                          + "DimSize = 2000 2000 2000\nElementType = MET_SHORT\nElementDataFile = LOCAL\n").encode()
                         + b"x" * 32)
    proc = subprocess.run([sys.executable, "-c", _CAPPED, str(path), str(tmp_path / "out.nii.gz")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {path}: the header claims 16,000,000,000 bytes"), proc.stderr
    assert not (tmp_path / "out.nii.gz").exists()


def test_a_plausible_compressed_volume_still_loads(tmp_path):
    data = np.zeros((256, 256, 64), np.int16)  # 8 MB of zeros: a few KB compressed, well inside the bound
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "zeros.nii.gz"))
    assert load_volume(tmp_path / "zeros.nii.gz").shape == (64, 256, 256)


def test_a_truncated_uncompressed_nifti_is_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.int16), np.eye(4)), str(tmp_path / "ct.nii"))
    raw = (tmp_path / "ct.nii").read_bytes()
    (tmp_path / "ct.nii").write_bytes(raw[:-10])
    with pytest.raises(VolumeError, match="claims 2,048 bytes"):
        load_volume(tmp_path / "ct.nii")


_TRUNCATED_DURING_RUN = textwrap.dedent("""
    import os, sys
    import numpy as np
    from lsms_core.volume import load_volume
    vol = load_volume(sys.argv[1])
    os.truncate(sys.argv[1], 400)  # the file is cut short while the volume is in use
    print("SUM", int(vol.array.astype(np.int64).sum()), flush=True)
""")


def test_a_volume_survives_its_file_being_truncated(tmp_path):
    data = np.arange(64 * 64 * 8, dtype=np.int16).reshape(64, 64, 8)
    nib.save(nib.Nifti1Image(data, np.diag([-0.7, -0.7, 2.5, 1.0])), str(tmp_path / "ct.nii"))
    proc = subprocess.run([sys.executable, "-c", _TRUNCATED_DURING_RUN, str(tmp_path / "ct.nii")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # was -7: SIGBUS, no message
    assert proc.stdout.strip() == f"SUM {int(data.astype(np.int64).sum())}"


def _zero_pixdim_nifti(path, code):
    img = nib.Nifti1Image(np.zeros((8, 6, 3), np.int16), np.diag([0.7, 0.8, 2.0, 1.0]))
    img.set_sform(img.affine, code=1 if code == "sform" else 0)
    img.set_qform(img.affine, code=1 if code in ("sform", "qform") else 0)
    nib.save(img, str(path))
    f = io.BytesIO(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(f, check=False)
    header["pixdim"][1] = 0.0
    path.write_bytes(header.binaryblock + path.read_bytes()[348:])


@pytest.mark.parametrize("code", ["qform", "none"])
def test_a_zero_voxel_size_is_warned_about(tmp_path, code):
    path = tmp_path / "z.nii"
    _zero_pixdim_nifti(path, code)
    vol = load_volume(path)
    assert vol.spacing[0] == 1.0
    assert any("voxel size is 0 along x" in w for w in vol.warnings), vol.warnings


def test_a_zero_pixdim_under_a_valid_sform_is_harmless(tmp_path):
    path = tmp_path / "s.nii"
    _zero_pixdim_nifti(path, "sform")
    vol = load_volume(path)
    assert vol.spacing[0] == pytest.approx(0.7) and not any("voxel size" in w for w in vol.warnings)


def _edit_series(folder, change):
    for i, f in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(f)
        with warnings.catch_warnings():  # pydicom warns that "NaN" is no valid DS: that is the point
            warnings.simplefilter("ignore")
            change(ds, i)
        ds.save_as(f)


def test_rescale_slope_zero_or_nan_is_warned_about(tmp_path, capsys):
    folder = tmp_path / "dcm"
    write_ct_series(folder, slices=4, rows=16, cols=16)
    reference = load_volume(folder).array.copy()

    def slope(ds, i):
        if i < 2:
            ds.RescaleSlope = "0" if i == 0 else "NaN"
    _edit_series(folder, slope)
    vol = load_volume(folder)
    warning = [w for w in vol.warnings if "RescaleSlope" in w]
    assert warning and "in 2 image(s)" in warning[0] and "replaced by 1" in warning[0]
    np.testing.assert_array_equal(vol.array, reference)  # the synthetic series' slope is 1
    assert main(["convert", str(folder), str(tmp_path / "o.nii.gz")]) == 0
    assert "warning: RescaleSlope" in capsys.readouterr().err


def test_an_all_zero_orientation_is_refused_naming_the_series(tmp_path, capsys):
    folder = tmp_path / "dcm"
    write_ct_series(folder, slices=4, rows=16, cols=16)
    _edit_series(folder, lambda ds, i: setattr(ds, "ImageOrientationPatient", [0, 0, 0, 0, 0, 0]))
    assert main(["convert", str(folder), str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder}") and "zero direction" in err and "internal" not in err



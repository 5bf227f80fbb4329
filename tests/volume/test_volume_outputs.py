"""Outputs never replace what they did not write: a MetaImage input's data file, a BIDS sidecar, another
image's labels; a mask and its sidecar are committed together; a killed writer's leftovers are removed."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import SimpleITK as sitk

from lsms_core.cli.main import main
from lsms_core.errors import VolumeError
from lsms_core.volume import LabelInfo, Volume, load_volume, read_label_sidecar, save_mask


def _ct(shape=(4, 24, 20)):
    rng = np.random.default_rng(0)
    return rng.normal(40, 80, shape).astype(np.int16)


def _mhd_pair(folder, header="a.mhd", data="b.zraw"):
    """``a.mhd`` whose pixels live in ``b.zraw`` (a header may name any data file)."""
    img = sitk.GetImageFromArray(_ct())
    sitk.WriteImage(img, str(folder / "tmp.mhd"), True)
    (folder / "tmp.zraw").rename(folder / data)
    text = (folder / "tmp.mhd").read_text().replace("ElementDataFile = tmp.zraw", f"ElementDataFile = {data}")
    (folder / header).write_text(text)
    (folder / "tmp.mhd").unlink()
    return folder / header, folder / data


def test_a_metaimage_output_never_replaces_the_inputs_data_file(tmp_path, capsys):
    header, data = _mhd_pair(tmp_path)
    before = data.read_bytes()
    expected = load_volume(header).array.copy()
    for argv in (["segment", str(header), "-e", "the lesion", "--out", str(tmp_path / "b.mhd"),
                  "--checkpoint", str(tmp_path / "no-model")],
                 ["convert", str(header), str(tmp_path / "b.mhd"), "--overwrite"],
                 ["convert", str(header), str(tmp_path / "b.mhd"), "--mask", "--overwrite"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "refusing to overwrite an input file" in err and "b.zraw" in err, err
    assert data.read_bytes() == before and not (tmp_path / "b.mhd").exists()
    np.testing.assert_array_equal(load_volume(header).array, expected)  # the input still reads


def test_a_data_file_the_writer_did_not_create_needs_overwrite(tmp_path, capsys):
    header, _ = _mhd_pair(tmp_path)
    stranger = tmp_path / "c.zraw"
    stranger.write_bytes(b"someone else's pixels")
    assert main(["convert", str(header), str(tmp_path / "c.mhd")]) == 2
    assert "c.zraw" in capsys.readouterr().err and stranger.read_bytes() == b"someone else's pixels"
    assert main(["convert", str(header), str(tmp_path / "c.mhd"), "--overwrite"]) == 0
    np.testing.assert_array_equal(load_volume(tmp_path / "c.mhd").array, load_volume(header).array)


def test_detached_headers_name_every_data_file(tmp_path):
    from lsms_core.volume.load import _detached_data_files

    (tmp_path / "list.mhd").write_text("NDims = 3\nElementDataFile = LIST\ns1.raw\ns2.raw\n")
    (tmp_path / "pat.nhdr").write_text("NRRD0004\ndata file: sl%02d.raw 1 3 1\n")
    assert [p.name for p in _detached_data_files(tmp_path / "list.mhd")] == ["s1.raw", "s2.raw"]
    assert [p.name for p in _detached_data_files(tmp_path / "pat.nhdr")] == ["sl01.raw", "sl02.raw", "sl03.raw"]


def test_the_sidecar_never_replaces_a_bids_sidecar_or_another_images_labels(tmp_path, capsys):
    import nibabel as nib

    bids = tmp_path / "sub-01_ct.json"
    bids.write_text(json.dumps({"Modality": "CT", "ConvolutionKernel": "B30f"}))
    nib.save(nib.Nifti1Image(_ct().T.copy(), np.diag([-0.8, -0.8, 2.0, 1.0])), str(tmp_path / "sub-01_ct.nii.gz"))
    for extra in ([], ["--overwrite"]):
        assert main(["segment", str(tmp_path / "sub-01_ct.nii.gz"), "-e", "the lesion", "--out",
                     str(tmp_path / "sub-01_ct.nrrd"), "--checkpoint", str(tmp_path / "no-model")] + extra) == 2
        err = capsys.readouterr().err
        assert "sub-01_ct.json" in err and ("input file" in err or "not the LSMS label sidecar" in err), err
    assert json.loads(bids.read_text())["ConvolutionKernel"] == "B30f"

    vol = load_volume(tmp_path / "sub-01_ct.nii.gz")
    mask = np.zeros(vol.shape, np.uint8)
    mask[1, 3:6, 4:8] = 1
    save_mask(mask, vol, tmp_path / "m.nii.gz", labels=[LabelInfo(1, "lesion", expression="the first one")])
    # m.nrrd would share m.json with m.nii.gz: refused, with or without overwrite, m.json untouched
    for overwrite in (False, True):
        with pytest.raises(VolumeError, match="m.json exists and is not the LSMS label sidecar of m.nrrd"):
            save_mask(mask, vol, tmp_path / "m.nrrd", labels=[LabelInfo(1, "other")], overwrite=overwrite)
    assert read_label_sidecar(tmp_path / "m.nii.gz")[0].expression == "the first one"
    # the image's own sidecar: replaced only with overwrite
    (tmp_path / "m.nii.gz").unlink()
    with pytest.raises(VolumeError, match="exists already.*m.json"):
        save_mask(mask, vol, tmp_path / "m.nii.gz", labels=[LabelInfo(1, "again")], overwrite=False)
    save_mask(mask, vol, tmp_path / "m.nii.gz", labels=[LabelInfo(1, "again")], overwrite=True)
    assert read_label_sidecar(tmp_path / "m.nii.gz")[0].name == "again"


_FULL_DISK_CHILD = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    from lsms_core.errors import VolumeError
    from lsms_core.volume import LabelInfo, Volume, save_mask
    vol = Volume(np.zeros((3, 16, 16), np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    mask = np.zeros(vol.shape, np.uint8)
    mask[1, 4:9, 4:9] = 1
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full file system answers EFBIG/ENOSPC, not a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))
    try:
        save_mask(mask, vol, sys.argv[1], labels=[LabelInfo(1, "lesion", expression="x" * 200000)])
    except VolumeError as exc:
        print("REFUSED", exc)
        sys.exit(3)
    print("WROTE")
""")


def test_a_write_that_runs_out_of_space_leaves_neither_mask_nor_sidecar(tmp_path):
    out = tmp_path / "mask.nii.gz"
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK_CHILD, str(out)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "mask.json" in proc.stdout and "File too large" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no mask alone, no temporary file


_KILLED_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from lsms_core.volume import LabelInfo, Volume, save_mask
    rng = np.random.default_rng(0)
    vol = Volume(np.zeros((160, 512, 512), np.int16), (0.7, 0.7, 1.0), (0.0, 0.0, 0.0))
    mask = (rng.random(vol.shape) < 0.5).astype(np.uint8)  # noise compresses slowly: a long write
    print("WRITING", flush=True)
    save_mask(mask, vol, sys.argv[1], labels=[LabelInfo(1, "lesion")])
    print("DONE", flush=True)
""")


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_nothing_the_next_write_keeps(tmp_path):
    out = tmp_path / "big.nii.gz"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)
        assert ready and child.stdout.readline().startswith("WRITING")
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".big") and ".partial" in p.name and p.name.endswith(".nii.gz")
                      for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and child.poll() is None, "the write ended before it was seen"
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left and all(".partial" in n for n in left) and not out.exists() and not (tmp_path / "big.json").exists()
    # the next write into the folder removes what the killed writer left, and only that
    vol = Volume(np.zeros((2, 8, 8), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    save_mask(np.ones(vol.shape, np.uint8), vol, tmp_path / "small.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.nii.gz"]


def test_partials_of_a_live_writer_are_kept(tmp_path):
    from lsms_core.volume.write import _partial_name, remove_stale_partials

    mine = tmp_path / _partial_name("x", ".nii.gz")
    mine.write_bytes(b"in progress")
    other_host = tmp_path / ".x.some-other-host-1-0123abcd.partial.nii.gz"
    other_host.write_bytes(b"another machine")
    assert remove_stale_partials(tmp_path) == [] and mine.exists() and other_host.exists()
    os.utime(other_host, (0, 0))  # old, but a writer on another host is not ours to judge
    assert remove_stale_partials(tmp_path) == [] and other_host.exists()

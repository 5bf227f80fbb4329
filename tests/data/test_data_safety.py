"""Datasets: bad files are refused with the file named (NaN images, size bombs, links out of the folder,
unreadable attributes and expressions), `lsms data check` follows the CLI's error convention, and
`lsms data from-masks` never copies a file or folder name into the dataset."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from lsms_core.cli.main import main
from lsms_core.data.format import DatasetWriter, Sample, read_dataset
from lsms_core.errors import DatasetError


def _write(root, n=2, image_dtype=np.int16):
    rng = np.random.default_rng(0)
    with DatasetWriter(root, name="t") as w:
        cid = w.new_case_id("case")
        for k in range(n):
            image = (rng.normal(40, 50, (32, 32))).astype(image_dtype)
            mask = np.zeros((32, 32), bool)
            mask[10:16, 8 + k: 15 + k] = True
            img = w.write_image(cid, f"{k:03d}", image)
            msk = w.write_mask(cid, f"{k:03d}_l1", mask)
            w.add(Sample(id=f"{cid}_s{k:03d}_l1", case_id=cid, split="test", image=img, mask=msk,
                         expressions=["the low-density lesion"], spacing=(0.8, 0.8), slice_index=k,
                         lesion_id="l1", attributes={"diameter_mm": 5.0}))
    return root


def _check(root, capsys):
    status = main(["data", "check", str(root)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_nan_or_inf_images_are_refused_naming_the_file(tmp_path, capsys):
    root = _write(tmp_path / "ds", image_dtype=np.float32)
    s = read_dataset(root).samples[1]
    image = np.load(root / s.image)
    image[3, 4], image[5, 6] = np.nan, np.inf
    np.save(root / s.image, image)
    status, out, err = _check(root, capsys)
    assert status == 2 and "INVALID" in out
    assert f"error: {root / s.image}" in err and "2 NaN or infinite value(s)" in err and "line 2" in err
    # training reads through the same loader: it stops at this file, not at a NaN loss later
    from lsms_core.data.torch_dataset import RefSegDataset

    ds = RefSegDataset(root, mode="eval", size=32)
    ds[0]
    with pytest.raises(DatasetError, match="NaN") as info:
        ds[1]
    assert s.image in str(info.value)


@pytest.mark.slow
def test_eval_stops_at_a_nan_image_with_status_2(tmp_path, capsys):
    from lsms_core.checkpoint import create_random_checkpoint

    root = _write(tmp_path / "ds", image_dtype=np.float32)
    s = read_dataset(root).samples[0]
    image = np.load(root / s.image)
    image[0, 0] = np.nan
    np.save(root / s.image, image)
    ckpt = create_random_checkpoint(tmp_path / "ckpt", input_size=64)
    assert main(["eval", "--data", str(root), "--checkpoint", str(ckpt), "--split", "all", "--device", "cpu",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert s.image in err and "NaN" in err and "internal" not in err


def _png_header(width, height, rows=None):
    """A real 8-bit grayscale PNG of width x height; ``rows`` black rows are encoded (streamed, so the
    test never holds the image), the rest of the IDAT is left out when ``rows`` is 0."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if rows:
        comp = zlib.compressobj(1)
        row = b"\x00" * (width + 1)
        body = b"".join(comp.compress(row) for _ in range(rows)) + comp.flush()
        out += chunk(b"IDAT", body)
    return out + chunk(b"IEND", b"")


def test_size_bombs_are_refused_before_anything_is_decoded(tmp_path, capsys):
    root = _write(tmp_path / "ds", n=3)
    a, b, c = read_dataset(root).samples
    (root / a.mask).write_bytes(_png_header(12000, 12000, rows=12000))  # 144 Mpx of zeros, 150 KB on disk
    (root / b.mask).write_bytes(_png_header(20000, 20000, rows=0))  # PIL's own bomb error
    npy = root / c.image
    with open(npy, "wb") as f:  # a header claiming 10^5 x 10^5 float64 (80 GB), then 16 bytes
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)})
        f.write(b"\0" * 16)
    status, _, err = _check(root, capsys)
    assert status == 2 and "internal" not in err
    assert "12000x12000: more than 8192 pixels a side" in err
    assert "too large to be a CT slice" in err and "400000000 pixels" in err
    assert "(100000, 100000)" in err
    small = tmp_path / "small.npy"
    np.save(small, np.zeros((16, 16), np.float32))
    small.write_bytes(small.read_bytes()[:-100])  # a header that claims more than the file holds
    from lsms_core.data.format import read_image_file

    with pytest.raises(DatasetError, match="truncated"):
        read_image_file(small)


def test_unreadable_attributes_and_expressions_are_line_numbered_problems(tmp_path, capsys):
    root = _write(tmp_path / "ds")
    lines = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    lines[0]["attributes"]["diameter_mm"] = "12 mm"
    (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    status, _, err = _check(root, capsys)
    assert status == 2 and "line 1: attributes.diameter_mm must be a positive number" in err
    for bad, shown in (("the \ud800 lesion", "U+D800"), ("the \x07 lesion", "U+0007")):
        lines[0]["attributes"]["diameter_mm"] = 12.0
        lines[1]["expressions"] = [bad]
        (root / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        status, _, err = _check(root, capsys)
        assert status == 2 and "line 2" in err and shown in err, err
        # eval and train read the manifest the same way: refused before any model is loaded
        assert main(["eval", "--data", str(root), "--checkpoint", str(tmp_path / "none"), "--split", "all"]) == 2
        assert shown in capsys.readouterr().err


def test_text_encoder_refuses_unpaired_surrogates_and_control_characters():
    from lsms_core.errors import TextEncoderError
    from lsms_core.text import TextEncoder

    for bad in ("the \udc80 lesion", "the lesion\x00", "\x1b[31mred"):
        with pytest.raises(TextEncoderError, match="U\\+"):
            TextEncoder.clean(bad)
    assert TextEncoder.clean("the  lesion\tin segment VII\n") == "the lesion in segment VII"


def test_links_that_leave_the_dataset_folder_are_refused(tmp_path, capsys):
    root = _write(tmp_path / "ds")
    a, b = read_dataset(root).samples
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.npy"
    np.save(secret, np.full((32, 32), 7, np.int16))
    (root / a.image).unlink()
    os.symlink(secret, root / a.image)
    with pytest.raises(DatasetError, match="leads out of the dataset folder") as info:
        read_dataset(root)
    assert "line 1" in str(info.value) and "line 2" not in str(info.value)
    ds = read_dataset(root, check_files=False)
    with pytest.raises(DatasetError, match="leads out of the dataset folder"):
        ds.load_image(a)
    # a folder linked out of the root: the same; a link that stays inside is fine
    (root / a.image).unlink()
    os.symlink(root / b.image, root / a.image)
    read_dataset(root).load_pair(a)
    status, _, err = _check(root, capsys)
    assert status == 0, err
    masks = root / "masks"
    os.rename(masks, outside / "masks")
    os.symlink(outside / "masks", masks)
    status, _, err = _check(root, capsys)
    assert status == 2 and "leads out of the dataset folder" in err
    # the writer never writes through such a link either
    with DatasetWriter(root, append=True) as w, pytest.raises(DatasetError, match="leads out"):
        w.write_mask("case000", "099_l1", np.ones((4, 4), bool))
    assert not (outside / "masks" / "case000" / "099_l1.png").exists()


def test_from_masks_never_puts_the_input_name_into_the_dataset(tmp_path):
    from lsms_core.volume import Volume, save_mask, save_volume

    patient = tmp_path / "DOE^JOHN_19560312"
    patient.mkdir()
    rng = np.random.default_rng(1)
    ct = rng.normal(60, 10, (4, 64, 64)).astype(np.int16)
    vol = Volume(ct, (0.8, 0.8, 3.0), (0.0, 0.0, 0.0))
    ct_path = save_volume(vol, patient / "DOE_JOHN_CT.nii.gz")
    lesions = np.zeros(ct.shape, np.uint8)
    lesions[1:3, 20:32, 20:34] = 1
    save_mask(lesions, vol, patient / "DOE_JOHN_lesions.nii.gz")
    out = tmp_path / "ds"
    assert main(["data", "from-masks", "--ct", str(ct_path), "--lesions", str(patient / "DOE_JOHN_lesions.nii.gz"),
                 "--out", str(out)]) == 0
    ds = read_dataset(out)
    text = (out / "manifest.jsonl").read_text() + (out / "dataset.json").read_text()
    names = [str(p.relative_to(out)) for p in out.rglob("*")]
    assert len(ds) > 0 and ds.case_ids == {"case000"}
    assert "DOE" not in text and "JOHN" not in text and not any("DOE" in n for n in names)
    assert len(ds.samples[0].extra["provenance"]["series_uid_sha256"]) == 64
    assert main(["data", "from-masks", "--ct", str(ct_path), "--lesions", str(patient / "DOE_JOHN_lesions.nii.gz"),
                 "--out", str(out), "--append", "--case-id", "p7"]) == 0
    assert read_dataset(out).case_ids == {"case000", "p7"}


def test_a_closed_pipe_ends_quietly(tmp_path):
    root = _write(tmp_path / "ds")
    proc = subprocess.Popen([sys.executable, "-m", "lsms_core.cli.main", "data", "check", str(root), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head` that has read enough
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 141 and err == "", err


def test_lvit_import_refuses_an_oversized_image_before_decoding(tmp_path, capsys):
    from PIL import Image

    images, masks = tmp_path / "img", tmp_path / "labelcol"
    images.mkdir()
    masks.mkdir()
    (images / "study_0001_0.png").write_bytes(_png_header(12000, 12000, rows=12000))
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(masks / "mask_study_0001_0.png")
    (tmp_path / "text.csv").write_text("Image,Description\nstudy_0001_0.png,the lesion EOF\n")
    assert main(["data", "import-lvit", "--images", str(images), "--masks", str(masks), "--text",
                 str(tmp_path / "text.csv"), "--out", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out  # the importer lists what it skipped, and why
    assert "imported 0 samples" in out and "skipped:" in out and "study_0001_0.png: is 12000x12000" in out

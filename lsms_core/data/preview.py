"""Contact sheet of dataset samples: windowed slice, the referred lesion's outline, its expressions."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from lsms_core.data.format import _atomic_write_bytes, read_dataset
from lsms_core.errors import DatasetError


def _windowed(image: np.ndarray, windowed: bool, window) -> np.ndarray:
    if windowed:
        return image.astype(np.float32) / 255.0
    w, lvl = window
    return np.clip((image.astype(np.float32) - (lvl - w / 2)) / w, 0, 1)


def contact_sheet(root: str | os.PathLike, out: str | os.PathLike, *, n: int = 12, seed: int = 0,
                  split: str | None = None, window=(400.0, 40.0), cols: int = 4) -> Path:
    """Render ``n`` samples (reproducibly chosen, spread over cases) to a PNG; returns its path."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    ds = read_dataset(root)
    samples = ds.split(split) if split else ds.samples
    if not samples:
        raise DatasetError(root, f"has no samples{' in split ' + split if split else ''} to preview")
    rng = np.random.default_rng(seed)
    pick = [samples[i] for i in sorted(rng.choice(len(samples), size=min(n, len(samples)), replace=False))]
    rows = (len(pick) + cols - 1) // cols
    fig = Figure(figsize=(cols * 3.6, rows * 4.6), facecolor="black")
    for i, s in enumerate(pick):
        image, mask, windowed = ds.load_pair(s)
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(_windowed(image, windowed, window), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=["#ff3030"], linewidths=0.8)
        ax.set_axis_off()
        text = "\n".join(textwrap.fill(f"- {e}", 52) for e in s.expressions[:3])
        ax.set_title(f"{s.id} [{s.split}]", color="#9fd0ff", fontsize=7, loc="left")
        ax.text(0.0, -0.02, text, transform=ax.transAxes, va="top", ha="left", color="white", fontsize=6.2,
                family="DejaVu Sans")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.03, wspace=0.04, hspace=0.42)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, facecolor="black")
    out = Path(out)
    _atomic_write_bytes(out, buf.getvalue())
    return out

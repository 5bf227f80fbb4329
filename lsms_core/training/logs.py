"""Per-epoch logs (log.csv, log.jsonl) and learning curves (curves.png) of a run folder."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from lsms_core.training.state import _atomic_text

LOG_CSV = "log.csv"
LOG_JSONL = "log.jsonl"
CURVES = "curves.png"

LOG_FIELDS = ["epoch", "step", "lr", "loss", "seg", "con", "val_mDice", "val_mIoU", "val_oIoU",
              "val_prec@0.5", "val_prec@0.7", "val_prec@0.9", "epoch_s", "samples_per_s", "elapsed_s",
              "ranks_max_param_diff"]


def write_logs(run_dir: Path, history: list[dict]) -> None:
    lines = "".join(json.dumps(row) + "\n" for row in history)
    _atomic_text(run_dir / LOG_JSONL, lines)
    tmp = run_dir / f".{LOG_CSV}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_FIELDS})
    os.replace(tmp, run_dir / LOG_CSV)


def plot_curves(run_dir: Path, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    for key, style in (("loss", "-"), ("seg", "--"), ("con", ":")):
        ax1.plot(epochs, [r[key] for r in history], style, marker=".", label=f"train {key}")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.set_title("training loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    val = [r for r in history if r.get("val_mDice") is not None]
    for key in ("val_mDice", "val_mIoU", "val_oIoU"):
        ax2.plot([r["epoch"] for r in val], [r[key] for r in val], marker=".", label=key)
    ax2.set_xlabel("epoch")
    ax2.set_ylim(0, 1)
    ax2.set_title("validation")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    tmp = run_dir / f".{CURVES}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, run_dir / CURVES)

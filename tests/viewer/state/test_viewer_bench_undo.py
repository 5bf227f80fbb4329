"""`lsms bench undo` runs end to end through the real CLI on a small volume and prints its JSON keys."""

from __future__ import annotations

import json

from lsms_core.cli.main import main


def test_bench_undo_json_small(capsys):
    status = main(["bench", "undo", "--json", "--strokes", "12", "--shape", "20x96x96", "--points", "6"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    assert out["strokes"] == 12 and out["steps_recorded"] == 13  # the new label + 12 strokes
    assert out["undo_restores_exactly"] is True
    assert 0 < out["undo_mb"] < out["baseline_full_copy_mb"]


def test_bench_undo_rejects_bad_shape(capsys):
    assert main(["bench", "undo", "--shape", "512x512"]) == 2
    assert "--shape" in capsys.readouterr().err

"""The `lsms` command: sub-commands listed, `bench model --json`, one-line errors with exit status 2."""

import json
import subprocess
import sys


def _lsms(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "lsms_core.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_commands():
    result = _lsms("--help")
    assert result.returncode == 0
    assert "bench" in result.stdout
    bench = _lsms("bench", "--help")
    assert "model" in bench.stdout


def test_bench_model_json_has_the_documented_fields(random_checkpoint):
    result = _lsms("bench", "model", "--size", "64", "--batch", "2", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"params", "macs", "size", "device", "latency_ms", "slices_per_s", "paper"} <= set(data)
    assert 7.0e6 <= data["params"] <= 9.0e6 and isinstance(data["params"], int)
    assert data["size"] == 64 and data["device"] == "cpu"
    assert data["latency_ms"] > 0 and data["slices_per_s"] > 0
    # MACs scale with the pixel count: 480 px costs about (480/64)^2 times more.
    assert 1e8 < data["macs"] < 1e9


def test_bench_model_reads_a_checkpoint(random_checkpoint):
    result = _lsms("bench", "model", "--checkpoint", str(random_checkpoint), "--size", "64", "--batch", "1",
                   "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["size"] == 64


def test_errors_are_one_line_with_status_2(tmp_path):
    result = _lsms("bench", "model", "--checkpoint", str(tmp_path / "missing"), "--json")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ") and "missing" in result.stderr
    assert "Traceback" not in result.stderr
    bad = _lsms("bench", "model", "--size", "abc")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    debug = _lsms("--debug", "bench", "model", "--checkpoint", str(tmp_path / "missing"))
    assert "Traceback" in debug.stderr

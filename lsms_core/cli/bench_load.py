"""``lsms bench load``: our DICOM loader against SimpleITK's ImageSeriesReader on the same series.

Each measurement runs in a fresh Python process, so the peak resident memory it reports belongs to
that one load (ru_maxrss after the load minus ru_maxrss once the libraries are imported). The process
loads twice: ``*_cold_s`` is the first load (lazy imports and caches included, what opening the first
series costs), ``*_s`` the second (steady state, what ``ratio`` and ``peak_mem_ratio`` describe; the
first load's peaks are reported as ``*_cold``). Both readers
scan the folder and sort the slices themselves (SimpleITK through GetGDCMSeriesFileNames), so the
times compare the same job. Readers alternate and the median of ``--repeats`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lsms_core.cli.bench import add_json_flag, emit

_WORKER = "from lsms_core.cli.bench_load import worker; worker()"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("load", help="DICOM loading: ours vs SimpleITK's ImageSeriesReader (time, memory)")
    parser.add_argument("path", nargs="?", help="a DICOM series folder (default: a synthetic 512x512 CT series)")
    parser.add_argument("--slices", type=int, default=120, help="slices of the synthetic series (default 120)")
    parser.add_argument("--size", type=int, default=512, help="rows and columns of the synthetic series")
    parser.add_argument("--compression", choices=["none", "rle", "jpeg2000"], default="none",
                        help="transfer syntax of the synthetic series")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each reader (median reported)")
    add_json_flag(parser)
    parser.set_defaults(func=run)


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fp:
            for line in fp:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _reset_peak() -> float:
    """Reset the kernel's peak-RSS counter (Linux: clear_refs 5) and return the current RSS in MB.

    Without the reset, ru_maxrss would still hold the import-time peak and hide the load's own peak.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fp:
            fp.write("5")
    except OSError:
        pass
    current = _status_mb("VmRSS")
    return current if current is not None else _peak_mb()


def _peak_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / 1024.0 if sys.platform != "darwin" else value / 2**20


def worker() -> None:
    """Runs in a child process: load argv[1] with reader argv[2], print time and memory as JSON."""
    import time

    import numpy as np
    import SimpleITK as sitk

    import lsms_core.volume.load as load_module
    from lsms_core.volume import load_volume

    folder, reader = sys.argv[1], sys.argv[2]

    keep = []

    def load():
        keep.clear()
        if reader == "ours":
            load_module._last_scan = None  # no reuse of an earlier header scan: time the whole job
            return load_volume(folder).array
        names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder)
        series = sitk.ImageSeriesReader()
        series.SetFileNames(names)
        image = series.Execute()
        keep.append(image)  # the view below borrows the image's buffer (no copy: fair on memory)
        return sitk.GetArrayViewFromImage(image)

    base = _reset_peak()
    start = time.perf_counter()
    arr = load()
    cold = time.perf_counter() - start
    peak = _peak_mb() - base
    shape, nbytes, dtype = arr.shape, arr.nbytes, str(arr.dtype)
    checksum = float(np.sum(arr, dtype=np.float64))
    del arr
    keep.clear()
    base = _reset_peak()
    start = time.perf_counter()
    load()
    warm = time.perf_counter() - start
    warm_peak = _peak_mb() - base
    print(json.dumps({"cold": cold, "seconds": warm, "cold_peak_mb": peak, "peak_mb": warm_peak,
                      "shape": list(shape),
                      "nbytes": nbytes, "dtype": dtype, "checksum": checksum}))


def _measure(folder: Path, reader: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, "-c", _WORKER, str(folder), reader], capture_output=True,
                          text=True, env=env, timeout=600)
    if proc.returncode != 0:
        from lsms_core.errors import LSMSError

        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise LSMSError(folder, f"the {reader} reader failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args) -> int:
    from lsms_core.errors import LSMSError
    from lsms_core.volume.synthetic_dicom import write_ct_series

    with tempfile.TemporaryDirectory(prefix="lsms-bench-load-") as tmp:
        if args.path:
            folder = Path(args.path)
            if not folder.is_dir():
                raise LSMSError(folder, "is not a folder of DICOM files")
            source = str(folder)
        else:
            folder = Path(tmp) / "series"
            write_ct_series(folder, slices=args.slices, rows=args.size, cols=args.size, shuffle_names=True,
                            compression=None if args.compression == "none" else args.compression)
            source = f"synthetic CT {args.size}x{args.size}x{args.slices} ({args.compression})"
        runs: dict[str, list[dict]] = {"ours": [], "simpleitk": []}
        for n in range(max(1, args.repeats)):
            order = ("ours", "simpleitk") if n % 2 == 0 else ("simpleitk", "ours")
            for reader in order:
                runs[reader].append(_measure(folder, reader))
    ours, ref = runs["ours"], runs["simpleitk"]
    if ours[0]["checksum"] != ref[0]["checksum"] or sorted(ours[0]["shape"]) != sorted(ref[0]["shape"]):
        raise LSMSError(source, "the two readers disagree on the voxel values; timing them is meaningless")
    ours_s = statistics.median(r["seconds"] for r in ours)
    ref_s = statistics.median(r["seconds"] for r in ref)
    ours_cold = statistics.median(r["cold"] for r in ours)
    ref_cold = statistics.median(r["cold"] for r in ref)
    volume_mb = ours[0]["nbytes"] / 2**20
    ours_peak = statistics.median(r["peak_mb"] for r in ours)
    ref_peak = statistics.median(r["peak_mb"] for r in ref)
    ours_cold_peak = statistics.median(r["cold_peak_mb"] for r in ours)
    ref_cold_peak = statistics.median(r["cold_peak_mb"] for r in ref)
    result = {
        "bench": "load",
        "source": source,
        "shape": ours[0]["shape"],
        "dtype": ours[0]["dtype"],
        "volume_mb": round(volume_mb, 2),
        "ours_s": round(ours_s, 6),
        "simpleitk_s": round(ref_s, 6),
        "ratio": round(ours_s / ref_s, 3),
        "ours_cold_s": round(ours_cold, 6),
        "simpleitk_cold_s": round(ref_cold, 6),
        "ratio_cold": round(ours_cold / ref_cold, 3),
        "ours_peak_mb": round(ours_peak, 1),
        "simpleitk_peak_mb": round(ref_peak, 1),
        "peak_mem_ratio": round(ours_peak / volume_mb, 3),
        "simpleitk_peak_mem_ratio": round(ref_peak / volume_mb, 3),
        "peak_mem_ratio_cold": round(ours_cold_peak / volume_mb, 3),
        "simpleitk_peak_mem_ratio_cold": round(ref_cold_peak / volume_mb, 3),
        "repeats": len(ours),
        "same_voxels": True,
    }
    lines = [
        f"load benchmark on {source}: shape {tuple(result['shape'])} {result['dtype']} ({volume_mb:.1f} MB)",
        f"  ours       {ours_s:8.3f} s (first load in a fresh process {ours_cold:.3f} s)   "
        f"peak +{ours_peak:7.1f} MB ({result['peak_mem_ratio']:.2f}x the volume)",
        f"  SimpleITK  {ref_s:8.3f} s (first load in a fresh process {ref_cold:.3f} s)   "
        f"peak +{ref_peak:7.1f} MB ({result['simpleitk_peak_mem_ratio']:.2f}x)",
        f"  first load peaks (lazy imports included): ours {result['peak_mem_ratio_cold']:.2f}x, "
        f"SimpleITK {result['simpleitk_peak_mem_ratio_cold']:.2f}x the volume",
        f"  ratio ours/SimpleITK = {result['ratio']:.3f} (first load: {result['ratio_cold']:.3f}; <= 1.0 means "
        "ours is at least as fast); voxel values identical",
    ]
    emit(result, args.json, lines)
    return 0

"""What the CPU can do, stated from the machine itself: native bfloat16 support, and its sgemm rate.

``bf16_support()`` reads the CPU's feature flags (``/proc/cpuinfo`` on Linux). bfloat16 matrix arithmetic
is native with AVX512-BF16 or AMX-BF16 on x86 (and the BF16 extension on Arm); without them PyTorch
emulates it, measured 15x slower than float32 on this project's AVX2 AMD EPYC machines (8.9 s per 480 px
slice), so the engine refuses ``precision="bfloat16"`` on such CPUs and the viewer's Device menu says why.

``sgemm_gflops()`` times float32 matrix products on the threads torch uses: the floor under which no
network of a given size can run on this machine. ``lsms bench model`` reports latency as a ratio to it.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
_X86_BF16 = ("avx512_bf16", "amx_bf16")
_ARM_BF16 = ("bf16",)


@dataclass(frozen=True)
class Bf16Support:
    native: bool | None  # None: the flags could not be read
    reason: str


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The feature flags of the first processor in ``/proc/cpuinfo`` (x86 'flags', Arm 'Features')."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="ascii", errors="replace")
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def bf16_support(cpuinfo: str | None = None, machine: str | None = None) -> Bf16Support:
    """Whether this CPU computes bfloat16 natively, and a sentence saying why (or why not)."""
    flags = cpu_flags(cpuinfo)
    machine = (machine or platform.machine()).lower()
    if machine == "arm64" and platform.system() == "Darwin" and cpuinfo is None:
        return Bf16Support(None, "the CPU's bfloat16 support cannot be read on macOS; bfloat16 may be emulated")
    if not flags:
        return Bf16Support(None, "the CPU's feature flags cannot be read; bfloat16 may be emulated (slow)")
    wanted = _ARM_BF16 if machine.startswith(("aarch64", "arm")) else _X86_BF16
    found = [f for f in wanted if f in flags]
    if found:
        return Bf16Support(True, f"this CPU computes bfloat16 natively ({', '.join(found)})")
    have = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    needs = "the Arm BF16 extension" if wanted is _ARM_BF16 else "AVX512-BF16 or AMX"
    return Bf16Support(False, f"this CPU has no native bfloat16 ({have}, without {needs}): PyTorch emulates "
                              "it, about 15x slower than float32 (8.9 s per 480 px slice measured on an "
                              "AVX2 CPU); use float32")


def sgemm_gflops(n: int = 1024, repeats: int = 9) -> tuple[float, float]:
    """float32 matrix-product rate on torch's CPU threads, GFLOP/s: (best, median) of ``repeats`` n x n
    products. The best gives the floor (the least time this machine needs for a given number of
    operations; a busy machine only lowers the rate)."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        times.append(time.perf_counter() - start)
    flops = 2.0 * n ** 3 / 1e9
    return flops / min(times), flops / statistics.median(times)


__all__ = ["Bf16Support", "bf16_support", "cpu_flags", "sgemm_gflops"]

"""bfloat16 on the CPU only where the CPU computes it natively (AVX512-BF16, AMX, Arm BF16): read from
/proc/cpuinfo-format text, refused by the engine with the reason elsewhere; the sgemm floor is a rate."""

from __future__ import annotations

import pytest

import lsms_core.cpu as cpu
from lsms_core.errors import LSMSError

EPYC_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    avx2 = cpu.bf16_support(EPYC_AVX2, "x86_64")
    assert avx2.native is False and "AVX2" in avx2.reason and "AVX512-BF16 or AMX" in avx2.reason
    native = cpu.bf16_support(SAPPHIRE, "x86_64")
    assert native.native is True and "avx512_bf16" in native.reason
    assert cpu.bf16_support(GRAVITON3, "aarch64").native is True
    assert cpu.bf16_support("", "x86_64").native is None  # unreadable: said, not guessed


def test_this_machine_is_judged_by_its_own_flags():
    if not cpu.CPUINFO.exists() or cpu.platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("reads /proc/cpuinfo of an x86 Linux machine")
    flags = cpu.cpu_flags()
    assert flags  # the real file parses
    assert cpu.bf16_support().native is ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_sgemm_rate_is_positive_and_best_not_below_median():
    best, median = cpu.sgemm_gflops(n=256, repeats=3)
    assert best >= median > 0


@pytest.mark.parametrize("flags, refused", [(EPYC_AVX2, True), (SAPPHIRE, False)])
def test_engine_refuses_emulated_bf16_with_the_reason(tmp_path, monkeypatch, random_checkpoint, flags, refused):
    from lsms_core.engine import Segmenter

    fake = tmp_path / "cpuinfo"
    fake.write_text(flags)
    monkeypatch.setattr(cpu, "CPUINFO", fake)
    monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    if refused:
        with pytest.raises(LSMSError, match="no native bfloat16.*AVX512-BF16 or AMX"):
            Segmenter.from_checkpoint(random_checkpoint, device="cpu", precision="bfloat16")
    else:
        assert Segmenter.from_checkpoint(random_checkpoint, device="cpu", precision="bfloat16").precision == "bfloat16"
    # float32 is never refused
    assert Segmenter.from_checkpoint(random_checkpoint, device="cpu").precision == "float32"

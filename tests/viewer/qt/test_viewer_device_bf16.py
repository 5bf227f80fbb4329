"""Tools ▸ Device ▸ bfloat16 on the CPU: offered only where the CPU computes bfloat16 natively; elsewhere
disabled, with the reason in its text and tip (emulated bfloat16 is about 15x slower than float32)."""

from __future__ import annotations

import pytest

import lsms_core.cpu as cpu

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n"


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    def use(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        monkeypatch.setattr(cpu, "CPUINFO", path)
        monkeypatch.setattr(cpu.platform, "machine", lambda: "x86_64")
    return use


def _viewer(qtbot, checkpoint):
    from lsms_viewer.app import build_viewer

    built = build_viewer(checkpoint=str(checkpoint))
    qtbot.addWidget(built.window)
    return built


def test_bf16_is_disabled_with_the_reason_on_an_avx2_cpu(qtbot, cpuinfo, tmp_path):
    from lsms_core.checkpoint import create_random_checkpoint

    cpuinfo(AVX2)
    viewer = _viewer(qtbot, create_random_checkpoint(tmp_path / "ckpt", input_size=64, seed=0))
    action = viewer.segmentation.bf16_action
    assert action in viewer.segmentation.device_menu.actions()
    assert not action.isEnabled() and not action.isChecked()
    assert "not on this CPU" in action.text()
    assert "no native bfloat16" in action.toolTip() and "AVX512-BF16 or AMX" in action.toolTip()
    viewer.segmentation.set_bf16(True)  # asked anyway (a shortcut, a script): refused, said why
    assert viewer.segmentation.engine.precision == "auto"
    assert viewer.window.last_error[0] == "bfloat16 is not offered"


def test_bf16_is_offered_and_used_where_native(qtbot, cpuinfo, tmp_path):
    from lsms_core.checkpoint import create_random_checkpoint

    cpuinfo(AMX)
    viewer = _viewer(qtbot, create_random_checkpoint(tmp_path / "ckpt", input_size=64, seed=0))
    action = viewer.segmentation.bf16_action
    assert action.isEnabled() and "avx512_bf16" in action.toolTip()
    action.trigger()
    assert action.isChecked() and viewer.segmentation.engine.precision == "bfloat16"
    viewer.segmentation.set_device("cpu")  # another device keeps the choice
    assert viewer.segmentation.engine.precision == "bfloat16"
    action.trigger()
    assert not action.isChecked() and viewer.segmentation.engine.precision == "auto"

"""Display windows and the slice renderer (no Qt): every stored type shows the grey the window gives."""

from __future__ import annotations

import numpy as np
import pytest

from lsms_viewer.display.windowing import PRESETS, SliceRenderer, Window, matching_preset, preset


def _grey(hu: np.ndarray, window: Window) -> np.ndarray:
    """The window's linear ramp, computed independently: rounded, clipped to 0..255."""
    lo, hi = window.levels
    return np.clip((hu.astype(np.float64) - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint32)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8, np.float32, np.float64])
def test_renderer_gives_opaque_grey_rgb32_of_the_window(dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    lo, hi = (info.min, info.max) if info else (-1100, 1500)
    hu = rng.integers(max(lo, -1100), min(hi, 1500) + 1, size=(32, 40)).astype(dtype)
    renderer = SliceRenderer()
    window = Window(400, 40) if info is None or info.bits > 8 else Window(100, 20)
    renderer.set_window(window)
    pixels = renderer.render(hu)
    assert pixels.dtype == np.uint32 and pixels.shape == hu.shape
    grey = _grey(hu, window)
    assert np.array_equal(pixels, np.uint32(0xFF000000) | grey * np.uint32(0x010101))


def test_renderer_fills_the_given_buffer_and_follows_a_new_window():
    hu = np.array([[-1000, 0, 40, 240, 3000]], np.int16)
    out = np.zeros(hu.shape, np.uint32)
    renderer = SliceRenderer()
    renderer.set_window(Window(400, 40))
    assert renderer.render(hu, out=out) is out
    assert list(out[0] & 0xFF) == [0, 102, 128, 255, 255]
    renderer.set_window(Window(80, 40))  # the brain window: the cached table must not be reused
    assert list(renderer.render(hu)[0] & 0xFF) == [0, 0, 128, 255, 255]
    with pytest.raises(RuntimeError, match="no window"):
        SliceRenderer().render(hu)


def test_dragging_widens_and_raises_and_presets_are_found_again():
    w = Window(400, 40)
    dragged = w.dragged(10, -5)
    assert dragged.width > w.width and dragged.level < w.level
    assert w.dragged(-10_000, 0).width == 1.0  # never a zero-width window
    assert w.levels == (-160.0, 240.0)
    for p in PRESETS:
        assert matching_preset(p.window) == p and preset(p.key) is p
    assert matching_preset(Window(401, 40)) is None
    with pytest.raises(KeyError):
        preset("kidney")

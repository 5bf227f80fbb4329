"""Display windows (width/level in Hounsfield units) and the standard CT presets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_WIDTH = 1.0


@dataclass(frozen=True)
class Window:
    width: float
    level: float

    @property
    def levels(self) -> tuple[float, float]:
        """(black, white) HU, what an image item's ``levels`` wants."""
        return self.level - self.width / 2.0, self.level + self.width / 2.0

    def dragged(self, dx_pixels: float, dy_pixels: float, sensitivity: float = 2.0) -> Window:
        """The window after a right-button drag: right widens, down raises the level.

        Sensitivity grows with the width so that a narrow brain window and a wide lung window both take
        about the same hand movement to change noticeably.
        """
        scale = sensitivity * max(self.width, 50.0) / 400.0
        width = max(MIN_WIDTH, self.width + dx_pixels * scale)
        level = self.level + dy_pixels * scale
        return Window(width, level)


@dataclass(frozen=True)
class Preset:
    key: str  # stable id stored in settings
    title: str
    window: Window
    shortcut: str


PRESETS: tuple[Preset, ...] = (
    Preset("abdomen", "Abdomen", Window(400, 40), "1"),
    # A portal-venous liver window: enhanced parenchyma sits near 100-120 HU, which W150/L30 (a non-contrast
    # liver window, white from 105 HU) saturated; W150/L90 spans 15-165 HU and keeps it grey.
    Preset("liver", "Liver", Window(150, 90), "2"),
    Preset("lung", "Lung", Window(1500, -600), "3"),
    Preset("bone", "Bone", Window(1800, 400), "4"),
    Preset("brain", "Brain", Window(80, 40), "5"),
)

DEFAULT_PRESET = "abdomen"


def preset(key: str) -> Preset:
    for candidate in PRESETS:
        if candidate.key == key:
            return candidate
    raise KeyError(key)


USER_PRESET_KEYS = ("6", "7", "8", "9")  # number keys for the first user presets, after the built-in 1-5
MAX_USER_PRESETS = 12


def user_preset(name: str, window: Window, index: int) -> Preset:
    """A preset the user saved (key ``user:<name>``; keys 6-9 for the first four)."""
    name = " ".join(str(name).split())
    if not name:
        raise ValueError("a preset needs a name")
    shortcut = USER_PRESET_KEYS[index] if index < len(USER_PRESET_KEYS) else ""
    return Preset(f"user:{name}", name, Window(float(window.width), float(window.level)), shortcut)


def parse_user_presets(stored) -> list[Preset]:
    """User presets from their stored form, a list of ``{"name", "width", "level"}``; entries that are
    not well-formed (hand-edited settings) are skipped, never an error at start-up."""
    out: list[Preset] = []
    names: set[str] = set()
    for item in stored if isinstance(stored, list) else []:
        try:
            name = " ".join(str(item["name"]).split())
            width, level = float(item["width"]), float(item["level"])
        except (KeyError, TypeError, ValueError):
            continue
        if not name or name in names or not np.isfinite(width) or not np.isfinite(level) or width < MIN_WIDTH:
            continue
        names.add(name)
        out.append(user_preset(name, Window(width, level), len(out)))
        if len(out) == MAX_USER_PRESETS:
            break
    return out


def matching_preset(window: Window, extra: tuple[Preset, ...] | list[Preset] = ()) -> Preset | None:
    for candidate in (*PRESETS, *extra):
        if abs(candidate.window.width - window.width) < 0.5 and abs(candidate.window.level - window.level) < 0.5:
            return candidate
    return None


class SliceRenderer:
    """HU slice -> 32-bit grey pixels (0xFFgggggg, Qt's RGB32) for a window, as cheaply as numpy allows.

    RGB32 is the format Qt's raster painter draws fastest when scaling; 8-bit grey or indexed images are
    converted on every paint (measured: 4-8 ms per repaint of a 512x512 slice instead of under 1 ms).
    Integer volumes go through a 65,536-entry table (one gather per pixel); float volumes are scaled.
    """

    def __init__(self) -> None:
        self._window: Window | None = None
        self._table: np.ndarray | None = None
        self._dtype: np.dtype | None = None

    def set_window(self, window: Window) -> None:
        if window != self._window:
            self._window = window
            self._table = None

    def render(self, hu: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if self._window is None:
            raise RuntimeError("no window set")
        hu = np.asarray(hu)
        if hu.dtype in (np.int16, np.uint16, np.uint8, np.int8):
            table = self._lookup(hu.dtype)
            index = hu.view(np.uint16) if hu.dtype == np.int16 else (
                hu.view(np.uint8) if hu.dtype == np.int8 else hu)
            return np.take(table, index, out=out)
        lo, hi = self._window.levels
        scaled = (hu.astype(np.float32, copy=False) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
        np.clip(scaled + np.float32(0.5), 0, 255, out=scaled)
        grey = scaled.astype(np.uint32)
        grey *= 0x010101
        grey |= 0xFF000000
        if out is None:
            return grey
        out[...] = grey
        return out

    def _lookup(self, dtype: np.dtype) -> np.ndarray:
        if self._table is None or self._dtype != dtype:
            bits = 8 if np.dtype(dtype).itemsize == 1 else 16
            codes = np.arange(2**bits, dtype=np.uint16 if bits == 16 else np.uint8)
            values = codes.view(dtype).astype(np.float32)  # the HU each stored code stands for
            lo, hi = self._window.levels
            grey = np.clip((values - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint32)
            self._table = (grey * 0x010101) | np.uint32(0xFF000000)
            self._dtype = dtype
        return self._table

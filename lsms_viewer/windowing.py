"""Display windows (width/level in Hounsfield units) and the standard CT presets."""

from __future__ import annotations

from dataclasses import dataclass

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
    Preset("liver", "Liver", Window(150, 30), "2"),
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


def matching_preset(window: Window) -> Preset | None:
    for candidate in PRESETS:
        if abs(candidate.window.width - window.width) < 0.5 and abs(candidate.window.level - window.level) < 0.5:
            return candidate
    return None

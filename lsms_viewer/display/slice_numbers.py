"""How slices are numbered on screen (no Qt): in the volume's array order (slice 1 = the first stored), or
head first, as many PACS show it (slice 1 = the most superior slice, numbers growing towards the feet).

Only the numbers shown change; every index inside the viewer and in files stays the array's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def head_is_last(volume) -> bool:
    """True when the volume's last slice is its most superior one (LPS: +z is superior)."""
    if volume is None or volume.shape[0] < 2:
        return False
    z0 = float(np.asarray(volume.index_to_world((0, 0, 0)))[2])
    z1 = float(np.asarray(volume.index_to_world((0, 0, volume.shape[0] - 1)))[2])
    return z1 > z0


@dataclass
class SliceNumbering:
    """Slice index (0-based, array order) <-> the number shown (1-based)."""

    count: int = 1
    reverse: bool = False  # numbers run against the array order

    def number(self, k: int) -> int:
        return self.count - int(k) if self.reverse else int(k) + 1

    def index(self, n: int) -> int:
        return self.count - int(n) if self.reverse else int(n) - 1

    def span(self, start: int, stop: int) -> tuple[int, int]:
        """The numbers (low, high) of the slices [start, stop)."""
        a, b = self.number(start), self.number(stop - 1)
        return min(a, b), max(a, b)

    def span_text(self, start: int, stop: int) -> str:
        lo, hi = self.span(start, stop)
        return f"{lo}" if lo == hi else f"{lo}–{hi}"

    def indices(self, lo: int, hi: int) -> tuple[int, int]:
        """[start, stop) of the slices numbered lo..hi (either order)."""
        a, b = self.index(lo), self.index(hi)
        return min(a, b), max(a, b) + 1

"""What a session keeps of the view: the slice shown and the display window, as stored in its header."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewState:
    slice_index: int | None = None
    window: tuple[float, float] | None = None  # (width, level) in HU

    def to_json(self) -> dict:
        out: dict = {}
        if self.slice_index is not None:
            out["slice"] = int(self.slice_index)
        if self.window is not None:
            out["window"] = [float(self.window[0]), float(self.window[1])]
        return out

    @classmethod
    def from_json(cls, data: dict | None) -> ViewState:
        """The state in a session header; a part that cannot be read is left out (the view keeps its own)."""
        data = data if isinstance(data, dict) else {}
        slice_index, window = data.get("slice"), data.get("window")
        if not isinstance(slice_index, int) or isinstance(slice_index, bool):
            slice_index = None
        try:
            window = (float(window[0]), float(window[1])) if len(window) == 2 else None
        except (TypeError, ValueError):
            window = None
        return cls(slice_index, window)

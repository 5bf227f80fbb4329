"""Checks of the values that decide what a mask looks like: threshold, CT window, normalisation, words.

Each returns the value as a clean float (or tuple) or raises with the field named. A NaN threshold, a
window of width 0 or a zero standard deviation do not fail anywhere downstream: they silently give empty
or garbage masks, so they are refused where they enter (checkpoint configs, the command line, the engine).
"""

from __future__ import annotations

import math

from lsms_core.errors import ConfigError, LSMSError


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def check_threshold(value: object, what: object = "threshold", error: type[LSMSError] = ConfigError) -> float:
    """A probability threshold strictly between 0 and 1 (0 labels every voxel, 1 none)."""
    number = _number(value)
    if number is None or not 0.0 < number < 1.0:
        raise error(what, f"the probability threshold must be a number strictly between 0 and 1, got {value!r}")
    return number


def check_window(value: object, what: object = "window", error: type[LSMSError] = ConfigError) -> tuple[float, float]:
    """A CT window [width, level] in HU: finite, width positive."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise error(what, f"must be [width, level] in HU, got {value!r}")
    width, level = _number(value[0]), _number(value[1])
    if width is None or level is None or width <= 0:
        raise error(what, f"must be [width, level] in HU with a positive finite width and a finite level, "
                          f"got {list(value)!r}")
    return width, level


def check_channel_windows(value: object, what: object = "channel_windows", error: type[LSMSError] = ConfigError,
                          window: object = None) -> list[tuple[float, float]]:
    """One CT window per input channel: [] (every channel sees the main window) or three [width, level];
    with ``window`` (the main one), the first must be it."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return []
    if not isinstance(value, (list, tuple)):
        raise error(what, f"must be three [width, level] pairs in HU, got {value!r}")
    flat = list(value)
    if len(flat) == 6 and all(not isinstance(v, (list, tuple)) for v in flat):
        flat = [flat[0:2], flat[2:4], flat[4:6]]  # a command line's six numbers
    if len(flat) != 3:
        raise error(what, f"must be three [width, level] pairs in HU (one per input channel), got {value!r}")
    pairs = [check_window(v, f"{what}[{i}]", error) for i, v in enumerate(flat)]
    if window is not None and pairs[0] != check_window(window, "window", error):
        raise error(what, f"its first window {list(pairs[0])} must be the main window {list(window)}")
    return pairs


def check_normalization(value: object, what: object = "normalization",
                        error: type[LSMSError] = ConfigError) -> dict:
    """``{"mean": [3 numbers], "std": [3 positive numbers]}``: the network's per-channel normalisation."""
    if not isinstance(value, dict):
        raise error(what, f"must be an object with 'mean' and 'std', got {type(value).__name__}")
    out = {}
    for key in ("mean", "std"):
        entry = value.get(key)
        numbers = [_number(v) for v in entry] if isinstance(entry, (list, tuple)) else []
        if len(numbers) != 3 or any(v is None for v in numbers):
            raise error(f"{what}.{key}", f"must be three finite numbers, got {entry!r}")
        if key == "std" and any(v <= 0 for v in numbers):
            raise error(f"{what}.std", f"must be positive (a zero divides by zero), got {entry!r}")
        out[key] = numbers
    return out


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be an expression (a lone surrogate, a control character), or None."""
    for ch in text:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return f"holds an unpaired surrogate U+{code:04X} (not valid Unicode text)"
        if (code < 0x20 and ch not in "\t\n\r") or 0x7F <= code < 0xA0:
            return f"holds the control character U+{code:04X}"
    return None

"""Persistent user settings (QSettings, INI format so tests can point them at a temporary folder)."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings

from lsms_viewer.display.windowing import (
    DEFAULT_PRESET,
    MAX_USER_PRESETS,
    PRESETS,
    Preset,
    Window,
    parse_user_presets,
)

ORGANIZATION = "LSMS"
APPLICATION = "LSMS Viewer"
MAX_RECENT = 10


def settings() -> QSettings:
    # INI everywhere (not the Windows registry / macOS plist) so QSettings.setPath redirects it in tests.
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def default_preset() -> str:
    key = str(settings().value("display/default_preset", DEFAULT_PRESET))
    return key if any(p.key == key for p in (*PRESETS, *user_presets())) else DEFAULT_PRESET


def set_default_preset(key: str) -> None:
    s = settings()
    s.setValue("display/default_preset", key)
    s.sync()


def user_presets() -> list[Preset]:
    """The window presets the user saved (View ▸ Window preset ▸ Save current window as preset…)."""
    raw = settings().value("display/user_presets", "[]")
    try:
        stored = json.loads(raw if isinstance(raw, str) else "[]")
    except ValueError:
        stored = []
    return parse_user_presets(stored)


def save_user_preset(name: str, window: Window) -> list[Preset]:
    """Add (or replace, by name) a user preset; the first ones saved keep their keys. Raises ValueError
    for an empty name or when ``MAX_USER_PRESETS`` are saved already."""
    name = " ".join(str(name).split())
    if not name:
        raise ValueError("a preset needs a name")
    if any(p.title.lower() == name.lower() for p in PRESETS):
        raise ValueError(f"“{name}” is a built-in preset")
    items = [{"name": p.title, "width": p.window.width, "level": p.window.level} for p in user_presets()]
    for item in items:
        if item["name"] == name:
            item["width"], item["level"] = float(window.width), float(window.level)
            break
    else:
        if len(items) >= MAX_USER_PRESETS:
            raise ValueError(f"at most {MAX_USER_PRESETS} presets can be saved; remove one first")
        items.append({"name": name, "width": float(window.width), "level": float(window.level)})
    s = settings()
    s.setValue("display/user_presets", json.dumps(items))
    s.sync()
    return user_presets()


def remove_user_presets() -> None:
    s = settings()
    s.remove("display/user_presets")
    s.sync()


def head_first_numbering() -> bool:
    value = settings().value("display/head_first", False)
    return value if isinstance(value, bool) else str(value).lower() == "true"


def set_head_first_numbering(on: bool) -> None:
    s = settings()
    s.setValue("display/head_first", bool(on))
    s.sync()


def overlay_mode() -> str:
    mode = str(settings().value("display/overlay_mode", "fill"))
    return mode if mode in ("fill", "outline") else "fill"


def set_overlay_mode(mode: str) -> None:
    settings().setValue("display/overlay_mode", mode)


def keep_one_region() -> bool:
    value = settings().value("model/one_region", True)
    return value if isinstance(value, bool) else str(value).lower() != "false"


def set_keep_one_region(on: bool) -> None:
    s = settings()
    s.setValue("model/one_region", bool(on))
    s.sync()


def refine_with_refiner() -> bool:
    """Tools > Refine with LiteMedSAM (on by default: it draws the lesion's edge far better than the
    network's coarse map)."""
    value = settings().value("model/refine", True)
    return value if isinstance(value, bool) else str(value).lower() != "false"


def set_refine_with_refiner(on: bool) -> None:
    s = settings()
    s.setValue("model/refine", bool(on))
    s.sync()


def recent_files() -> list[str]:
    value = settings().value("recent/files", [])
    if isinstance(value, str):  # QSettings returns a bare string for a one-element list in INI files
        value = [value]
    return [str(v) for v in (value or []) if v]


def add_recent_file(path: str | Path) -> list[str]:
    path = str(Path(path).resolve())
    files = [path] + [p for p in recent_files() if p != path]
    files = files[:MAX_RECENT]
    s = settings()
    s.setValue("recent/files", files)
    s.sync()
    return files


def remove_recent_file(path: str | Path) -> list[str]:
    target = str(Path(path).resolve())
    files = [p for p in recent_files() if p != target]
    s = settings()
    s.setValue("recent/files", files)
    s.sync()
    return files


def clear_recent_files() -> None:
    settings().remove("recent/files")


def plane_layout(default: str = "1+2") -> str:
    """View ▸ Layout: which plane views are shown and how (see ``views.plane_views.LAYOUTS``)."""
    return str(settings().value("display/plane_layout", default))


def set_plane_layout(key: str) -> None:
    s = settings()
    s.setValue("display/plane_layout", key)
    s.sync()


def crosshair_linked() -> bool:
    value = settings().value("display/crosshair", True)
    return value if isinstance(value, bool) else str(value).lower() != "false"


def set_crosshair_linked(on: bool) -> None:
    s = settings()
    s.setValue("display/crosshair", bool(on))
    s.sync()


def cine_fps(default: int = 10) -> int:
    try:
        value = int(settings().value("display/cine_fps", default))
    except (TypeError, ValueError):
        return default
    return value if 1 <= value <= 60 else default


def set_cine_fps(fps: int) -> None:
    s = settings()
    s.setValue("display/cine_fps", int(fps))
    s.sync()

"""Persistent user settings (QSettings, INI format so tests can point them at a temporary folder)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from lsms_viewer.display.windowing import DEFAULT_PRESET, PRESETS

ORGANIZATION = "LSMS"
APPLICATION = "LSMS Viewer"
MAX_RECENT = 10


def settings() -> QSettings:
    # INI everywhere (not the Windows registry / macOS plist) so QSettings.setPath redirects it in tests.
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def default_preset() -> str:
    key = str(settings().value("display/default_preset", DEFAULT_PRESET))
    return key if any(p.key == key for p in PRESETS) else DEFAULT_PRESET


def set_default_preset(key: str) -> None:
    s = settings()
    s.setValue("display/default_preset", key)
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

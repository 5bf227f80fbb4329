"""Where the project's shipped resources (demo weights, demo case recipe, icons) live."""

from __future__ import annotations

import os
import sys
from pathlib import Path

INSTALLED = Path("share") / "lsms-viewer" / "resources"


def resources_dir() -> Path:
    """The project's ``resources/`` folder.

    ``LSMS_RESOURCES`` overrides it; else the source tree's (editable installs, a checkout); else the copy a
    wheel installs under ``<prefix>/share/lsms-viewer``.
    """
    override = os.environ.get("LSMS_RESOURCES")
    if override:
        return Path(override)
    source = Path(__file__).resolve().parent.parent / "resources"
    if source.is_dir():
        return source
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        installed = Path(prefix) / INSTALLED
        if installed.is_dir():
            return installed
    return source  # missing everywhere: errors then name the place a checkout would have


def models_dir() -> Path:
    return resources_dir() / "models"

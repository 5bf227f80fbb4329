"""Where the project's shipped resources (demo weights, demo case recipe, icons) live."""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder of the project (``LSMS_RESOURCES`` overrides it)."""
    override = os.environ.get("LSMS_RESOURCES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "resources"


def models_dir() -> Path:
    return resources_dir() / "models"

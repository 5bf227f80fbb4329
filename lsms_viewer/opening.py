"""Opening studies: the loader call and the series chooser for folders holding several series.

The loader lives in ``lsms_core.volume`` and is imported when a study is opened, which keeps the first
window fast and lets the viewer start in a copy where the loader is not installed yet.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QInputDialog, QWidget

from lsms_core.errors import VolumeError


def _loader():
    try:
        from lsms_core.volume import load_volume
    except ImportError as exc:
        raise VolumeError("lsms_core.volume", "this copy has no volume loader (load_volume) yet") from exc
    return load_volume


def load_study(path: str | Path, series: str | None = None):
    """Load ``path`` (DICOM folder/file, NIfTI, NRRD, MHA) as a radiologically laid out Volume."""
    path = Path(path)
    if not path.exists():
        raise VolumeError(path, "no such file or folder")
    load_volume = _loader()
    if series:
        return load_volume(path, series=series)
    return load_volume(path)


def list_series(path: str | Path) -> list:
    """Series in a DICOM folder (objects with ``uid`` and ``summary()``), [] for files or one series."""
    path = Path(path)
    if not path.is_dir():
        return []
    try:
        from lsms_core.volume import list_series as core_list_series
    except ImportError:
        return []  # the loader then picks the largest CT series and reports it
    return list(core_list_series(path))


def choose_series(path: str | Path, parent: QWidget | None = None) -> str | None:
    """The series UID the user picked, None when there is nothing to choose, "" when they cancelled."""
    series = list_series(path)
    if len(series) <= 1:
        return None
    # Largest series first: the loader's own default, so Enter does what it would have done.
    series = sorted(series, key=lambda s: getattr(s, "voxels", 0), reverse=True)
    items = [s.summary() if hasattr(s, "summary") else str(s.uid) for s in series]
    item, ok = QInputDialog.getItem(parent, "Choose a series",
                                    f"{Path(path).name} holds {len(series)} series:", items, 0, False)
    if not ok:
        return ""
    return series[items.index(item)].uid


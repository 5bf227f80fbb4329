"""The Volume record every part of the project shares.

Conventions (those of ITK/SimpleITK and DICOM, so no flip is ever guessed):
- ``array`` is indexed ``[k, j, i]`` = (slice, row, column), shape (Z, Y, X), values in Hounsfield units.
- ``spacing`` and ``origin`` are in (x, y, z) = (column, row, slice) order, millimetres, LPS world space.
- ``direction`` is a 3x3 matrix whose *columns* are the world (LPS) directions of the i, j, k index axes.
- world(i, j, k) = origin + direction @ (spacing * (i, j, k)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Volume:
    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    # De-identified summary only: modality, series description, study date, series UID hash, ... never
    # patient names or IDs.
    meta: dict = field(default_factory=dict)
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k, 1) to LPS millimetres."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        affine[:3, 3] = self.origin
        return affine

    def index_to_world(self, ijk) -> np.ndarray:
        """LPS millimetres of (fractional) voxel indices given as (i, j, k) = (column, row, slice)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return np.asarray(self.origin) + (ijk * np.asarray(self.spacing)) @ self.direction.T

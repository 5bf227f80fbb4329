"""The Volume record every part of the project shares.

Conventions (those of ITK/SimpleITK and DICOM, so no flip is ever guessed):
- ``array`` is indexed ``[k, j, i]`` = (slice, row, column), shape (Z, Y, X), values in Hounsfield units.
- ``spacing`` and ``origin`` are in (x, y, z) = (column, row, slice) order, millimetres, LPS world space.
- ``direction`` is a 3x3 matrix whose *columns* are the world (LPS) directions of the i, j, k index axes.
- world(i, j, k) = origin + direction @ (spacing * (i, j, k)).

Volumes returned by ``load_volume`` are additionally laid out radiologically (nearest LPS axis order:
i -> patient left, j -> posterior, k -> superior), obtained from the file's own grid by axis permutation
and flips only; ``source_grid`` remembers how to get back to the file's grid (see ``orient.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SourceGrid:
    """The voxel grid of the file a volume was read from, and the exact index map to it.

    ``permutation[a]`` is the source index axis (0=i, 1=j, 2=k) that became axis ``a`` of the loaded
    volume, ``flips[a]`` whether it was reversed. ``shape`` is the source array shape (Z, Y, X);
    ``spacing``/``origin``/``direction`` follow the Volume conventions. ``files`` are the input files, so a
    writer can refuse to overwrite them.
    """

    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    files: tuple[Path, ...] = ()

    @property
    def is_identity(self) -> bool:
        return self.permutation == (0, 1, 2) and not any(self.flips)


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
    # None for volumes built in memory; set by load_volume (see SourceGrid).
    source_grid: SourceGrid | None = None

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

    @property
    def affine_ras(self) -> np.ndarray:
        """4x4 matrix mapping (i, j, k, 1) to RAS millimetres (the NIfTI/nibabel convention)."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine_lps

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (|det| handles sheared, gantry-tilted grids)."""
        return abs(float(np.linalg.det(self.affine_lps[:3, :3]))) / 1000.0

    def index_to_world(self, ijk) -> np.ndarray:
        """LPS millimetres of (fractional) voxel indices given as (i, j, k) = (column, row, slice)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return np.asarray(self.origin) + (ijk * np.asarray(self.spacing)) @ self.direction.T

    def with_array(self, array: np.ndarray) -> Volume:
        """A volume sharing this one's geometry and source grid, holding another array of the same shape."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {self.shape}")
        return Volume(array, self.spacing, self.origin, self.direction.copy(), dict(self.meta),
                      self.source, [], self.source_grid)

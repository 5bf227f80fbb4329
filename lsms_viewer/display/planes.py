"""The three viewing planes of a volume (axial, coronal, sagittal) without Qt: which voxel axes a plane
shows, its pixels' physical size, its orientation letters and the map between voxels and plane pixels.

Planes are the volume's own voxel-axis planes, never resampled: the axial plane is ``array[k]``, the
coronal one ``array[:, j, :]`` and the sagittal one ``array[:, :, i]``, each taken as a numpy view (no
copy of the volume when the slice changes). Volumes from ``load_volume`` are laid out radiologically
(i -> patient left, j -> posterior, k -> superior), so the in-plane axes keep the array's order (patient
right on screen left in axial and coronal, anterior on screen left in sagittal) and only the slice axis is
reversed on screen so that the head is up. The letters are computed from the direction cosines, so they
stay true for any volume, also one built in memory with another layout; on an oblique or gantry-tilted
volume a plane is the voxel-axis plane nearest to the anatomical one and its title says so.

Plane coordinates: ``col`` and ``row`` are continuous pixel coordinates from the plane image's top-left
corner (pixel (c, r) covers [c, c+1) x [r, r+1)); ``index`` is the slice number along the plane's normal
axis. Voxel coordinates are (i, j, k) = (column, row, slice) of ``array[k, j, i]``, continuous the same
way (voxel n covers [n, n+1), its centre is ``Volume.index_to_world(n)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AXIAL, CORONAL, SAGITTAL = "axial", "coronal", "sagittal"
PLANES = (AXIAL, CORONAL, SAGITTAL)

# plane -> (normal voxel axis, column voxel axis, row voxel axis); voxel axes 0 = i, 1 = j, 2 = k
_AXES = {AXIAL: (2, 0, 1), CORONAL: (1, 0, 2), SAGITTAL: (0, 1, 2)}
# World axis (LPS) -> letter of its positive direction and of its negative direction.
_AXIS_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))
_VOXEL_AXIS_NAMES = "ijk"
OBLIQUE_DEGREES = 1.0  # a plane whose normal is further than this from a world axis is called oblique


def normal_axis_of(plane: str) -> int:
    """The voxel axis (0 = i, 1 = j, 2 = k) that ``plane``'s slices are numbered along."""
    return _AXES[plane][0]


def direction_letters(vector) -> tuple[str, str]:
    """(letter at the positive end, letter at the negative end) of an LPS direction, e.g. ("L", "R").

    Oblique vectors get two letters, main axis first (e.g. "LA"), as DICOM viewers print them.
    """
    vector = np.asarray(vector, dtype=float)
    order = np.argsort(-np.abs(vector))
    positive, negative = "", ""
    for axis in order[:2]:
        if abs(vector[axis]) < 0.2 * np.abs(vector).max():
            continue
        pos, neg = _AXIS_LETTERS[axis]
        if vector[axis] < 0:
            pos, neg = neg, pos
        positive += pos
        negative += neg
    return positive, negative


@dataclass(frozen=True)
class PlaneGeometry:
    """One plane of a volume's grid: ``shape`` (Z, Y, X), ``spacing`` (x, y, z) mm, ``direction`` columns =
    LPS directions of i, j, k (the ``Volume`` conventions)."""

    plane: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    direction: np.ndarray
    flip_rows: bool
    flip_cols: bool = False

    @classmethod
    def of(cls, volume, plane: str) -> PlaneGeometry:
        """The ``plane`` (axial, coronal or sagittal) of a ``Volume``."""
        return cls.for_grid(volume.shape, volume.spacing, volume.direction, plane)

    @classmethod
    def for_grid(cls, shape, spacing, direction, plane: str) -> PlaneGeometry:
        if plane not in _AXES:
            raise ValueError(f"unknown plane {plane!r}; one of {', '.join(PLANES)}")
        direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        # The axial plane is the array's own slice, as the editing tools use it. In the two others the
        # rows run along k: reversed when k points up (superior), so that the head is at the top.
        flip_rows = plane != AXIAL and bool(direction[2, 2] > 0)
        return cls(plane, tuple(int(n) for n in shape), tuple(float(s) for s in spacing), direction, flip_rows)

    # -- axes ---------------------------------------------------------------------------------------
    @property
    def normal_axis(self) -> int:
        return normal_axis_of(self.plane)

    @property
    def col_axis(self) -> int:
        return _AXES[self.plane][1]

    @property
    def row_axis(self) -> int:
        return _AXES[self.plane][2]

    def _length(self, voxel_axis: int) -> int:
        return self.shape[2 - voxel_axis]  # shape is (Z, Y, X) = (k, j, i)

    @property
    def count(self) -> int:
        """Slices along the plane's normal."""
        return self._length(self.normal_axis)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the plane image in pixels."""
        return self._length(self.row_axis), self._length(self.col_axis)

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """(width, height) of one plane pixel in millimetres: the voxel spacing along its two axes."""
        return self.spacing[self.col_axis], self.spacing[self.row_axis]

    @property
    def extent_mm(self) -> tuple[float, float]:
        """(width, height) of the whole plane image in millimetres."""
        (h, w), (px, py) = self.size, self.pixel_mm
        return w * px, h * py

    # -- pixels ---------------------------------------------------------------------------------------
    def section(self, array: np.ndarray, index: int) -> np.ndarray:
        """Slice ``index`` of a (Z, Y, X) array as the plane shows it: a view, never a copy."""
        where: list = [slice(None)] * 3
        where[2 - self.normal_axis] = int(index)
        out = array[tuple(where)]  # the two remaining array axes: rows (higher voxel axis), then columns
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return out

    def to_plane(self, ijk) -> tuple[int, float, float]:
        """(index, col, row) of continuous voxel coordinates (i, j, k); the index is the slice holding it."""
        ijk = np.asarray(ijk, dtype=np.float64)
        col, row = float(ijk[self.col_axis]), float(ijk[self.row_axis])
        if self.flip_cols:
            col = self._length(self.col_axis) - col
        if self.flip_rows:
            row = self._length(self.row_axis) - row
        return int(np.floor(ijk[self.normal_axis])), col, row

    def to_voxel(self, index: float, col: float, row: float) -> np.ndarray:
        """Continuous voxel coordinates (i, j, k) of plane point (col, row) on slice ``index``."""
        if self.flip_cols:
            col = self._length(self.col_axis) - col
        if self.flip_rows:
            row = self._length(self.row_axis) - row
        ijk = np.empty(3)
        ijk[self.normal_axis], ijk[self.col_axis], ijk[self.row_axis] = index, col, row
        return ijk

    def voxel_at(self, index: int, col: float, row: float) -> tuple[int, int, int] | None:
        """Integer (i, j, k) of the voxel under plane point (col, row) on slice ``index``; None outside."""
        h, w = self.size
        if not (0 <= col < w and 0 <= row < h and 0 <= index < self.count):
            return None
        c, r = int(np.floor(col)), int(np.floor(row))
        if self.flip_cols:
            c = w - 1 - c
        if self.flip_rows:
            r = h - 1 - r
        ijk = [0, 0, 0]
        ijk[self.normal_axis], ijk[self.col_axis], ijk[self.row_axis] = int(index), c, r
        return ijk[0], ijk[1], ijk[2]

    def centre_mm(self, ijk) -> tuple[float, float]:
        """(x, y) millimetres, from the plane image's top-left corner, of the centre of voxel ``ijk``."""
        _, col, row = self.to_plane(np.floor(np.asarray(ijk, dtype=np.float64)) + 0.5)
        px, py = self.pixel_mm
        return col * px, row * py

    # -- orientation ------------------------------------------------------------------------------------
    def screen_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS unit directions of screen right (+col) and screen down (+row)."""
        right = self.direction[:, self.col_axis] * (-1.0 if self.flip_cols else 1.0)
        down = self.direction[:, self.row_axis] * (-1.0 if self.flip_rows else 1.0)
        return right, down

    def letters(self) -> dict[str, str]:
        """The patient direction at each edge of the plane image: keys left, right, top, bottom."""
        right_vec, down_vec = self.screen_vectors()
        right, left = direction_letters(right_vec)
        bottom, top = direction_letters(down_vec)
        return {"left": left, "right": right, "top": top, "bottom": bottom}

    @property
    def normal(self) -> np.ndarray:
        """Unit LPS normal of the plane (the cross product of its two in-plane directions)."""
        n = np.cross(self.direction[:, self.col_axis], self.direction[:, self.row_axis])
        return n / np.linalg.norm(n)

    @property
    def off_axis_degrees(self) -> float:
        """How far the plane is from the anatomical plane of its name: the largest angle between its screen
        directions and their nearest world axes, or between its normal and the named plane's axis."""
        def angle(v: np.ndarray, axis: int | None = None) -> float:
            v = np.abs(v) / np.linalg.norm(v)
            return float(np.degrees(np.arccos(min(1.0, v.max() if axis is None else v[axis]))))

        right, down = self.screen_vectors()
        world_axis = {AXIAL: 2, CORONAL: 1, SAGITTAL: 0}[self.plane]
        return max(angle(right), angle(down), angle(self.normal, world_axis))

    @property
    def oblique(self) -> bool:
        return self.off_axis_degrees > OBLIQUE_DEGREES

    @property
    def title(self) -> str:
        """'Coronal', or on an oblique volume 'Coronal (oblique: voxel plane i–k, 12° off axis)'."""
        name = self.plane.capitalize()
        if not self.oblique:
            return name
        a, b = sorted((self.col_axis, self.row_axis))
        return (f"{name} (oblique: voxel plane {_VOXEL_AXIS_NAMES[a]}–{_VOXEL_AXIS_NAMES[b]}, "
                f"{self.off_axis_degrees:.0f}° off axis)")


def plane_geometries(volume) -> dict[str, PlaneGeometry]:
    """The three planes of ``volume``, by name."""
    return {plane: PlaneGeometry.of(volume, plane) for plane in PLANES}


def patient_position_text(lps) -> str:
    """LPS millimetres as radiologists read them: '12.3 R  45.6 A  7.8 S' (no sign conventions to guess)."""
    parts = []
    for value, (pos, neg) in zip(lps, _AXIS_LETTERS, strict=True):
        parts.append(f"{abs(value):.1f} {pos if value >= 0 else neg}")
    return "  ".join(parts)

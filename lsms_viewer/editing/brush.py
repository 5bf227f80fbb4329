"""Brush and eraser: a stroke is a polyline on one axial slice, painted with a disc of radius r millimetres.

CT pixels are rarely square in millimetres once the view is resampled, and never equal to the slice
thickness, so the disc is an ellipse in pixels: pixel (dy, dx) from the centre belongs to it when
(dy * row_mm)^2 + (dx * col_mm)^2 <= r^2. A stroke paints every pixel whose centre lies within r mm of the
polyline (a chain of capsules), which is exactly the footprint at each vertex and leaves no gaps between
mouse samples however fast the mouse moves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lsms_viewer.editing import _target as tg
from lsms_viewer.editing.change import Change, EditError, change_from_patches, empty_change


def _check_brush(radius_mm: float, spacing_yx: Sequence[float]) -> tuple[float, float, float]:
    r = float(radius_mm)
    sy, sx = (float(s) for s in spacing_yx)
    if not (r > 0 and np.isfinite(r)):
        raise EditError("brush radius", f"{radius_mm} mm is not a positive size")
    if not (sy > 0 and sx > 0):
        raise EditError("pixel spacing", f"{tuple(spacing_yx)} mm must be positive")
    return r, sy, sx


def footprint(radius_mm: float, spacing_yx: Sequence[float]) -> np.ndarray:
    """The brush's pixels as a boolean (2*ry+1, 2*rx+1) array centred on the clicked pixel.

    ``spacing_yx`` is (row spacing, column spacing) in mm, i.e. (spacing[1], spacing[0]) of a Volume. The
    centre pixel is always included, so a brush smaller than a pixel still paints one.
    """
    r, sy, sx = _check_brush(radius_mm, spacing_yx)
    ry, rx = int(np.floor(r / sy)), int(np.floor(r / sx))
    dy = np.arange(-ry, ry + 1)[:, None] * sy
    dx = np.arange(-rx, rx + 1)[None, :] * sx
    fp = dy * dy + dx * dx <= r * r * (1 + 1e-9)
    fp[ry, rx] = True
    return fp


def footprint_outline(radius_mm: float, spacing_yx: Sequence[float]) -> np.ndarray:
    """Closed outline of the footprint along pixel edges, for drawing the cursor.

    Returns an (N, 2) float array of (x, y) = (column, row) offsets in pixels from the centre pixel's
    centre; the polygon follows the staircase of the pixels that will really be painted, so what the
    cursor shows is what the brush does.
    """
    fp = footprint(radius_mm, spacing_yx)
    ry, rx = fp.shape[0] // 2, fp.shape[1] // 2
    right, left = [], []
    for row in range(fp.shape[0]):
        cols = np.flatnonzero(fp[row])
        y = row - ry
        x0, x1 = cols[0] - rx - 0.5, cols[-1] - rx + 0.5
        right += [(x1, y - 0.5), (x1, y + 0.5)]
        left.append([(x0, y + 0.5), (x0, y - 0.5)])
    # Down the right side, then back up the left side: one closed, clockwise-on-screen loop.
    up_left = [p for row_pair in reversed(left) for p in row_pair]
    pts = np.array(right + up_left, dtype=np.float64)
    # Drop vertices in the middle of straight runs: fewer points for the cursor item to draw.
    keep = [0]
    for i in range(1, len(pts) - 1):
        a, b, c = pts[keep[-1]], pts[i], pts[i + 1]
        if abs((b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])) > 1e-12:
            keep.append(i)
    keep.append(len(pts) - 1)
    return pts[keep]


def stroke_mask(
    points_yx: Sequence[Sequence[float]],
    radius_mm: float,
    spacing_yx: Sequence[float],
    shape_yx: tuple[int, int],
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixels within ``radius_mm`` of the polyline through ``points_yx`` (rounded to pixel centres).

    Returns ``(mask, (y0, x0))``: a boolean array covering only the stroke's bounding box, clipped to the
    slice, and its top-left corner. Points may lie outside the slice (a brush half off the image).
    """
    r, sy, sx = _check_brush(radius_mm, spacing_yx)
    pts = np.rint(np.asarray(points_yx, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    if len(pts) == 0:
        raise EditError("brush stroke", "has no points")
    ry, rx = int(np.floor(r / sy)), int(np.floor(r / sx))
    h, w = shape_yx
    y0, x0 = max(int(pts[:, 0].min()) - ry, 0), max(int(pts[:, 1].min()) - rx, 0)
    y1, x1 = min(int(pts[:, 0].max()) + ry + 1, h), min(int(pts[:, 1].max()) + rx + 1, w)
    if y0 >= y1 or x0 >= x1:
        return np.zeros((0, 0), dtype=bool), (0, 0)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    r2 = r * r * (1 + 1e-9)
    segments = list(zip(pts[:-1], pts[1:], strict=True)) if len(pts) > 1 else [(pts[0], pts[0])]
    for p, q in segments:
        # Each capsule is evaluated only on its own box: cost grows with stroke length, not with slice size.
        sy0, sy1 = max(min(p[0], q[0]) - ry, y0), min(max(p[0], q[0]) + ry + 1, y1)
        sx0, sx1 = max(min(p[1], q[1]) - rx, x0), min(max(p[1], q[1]) + rx + 1, x1)
        if sy0 >= sy1 or sx0 >= sx1:
            continue
        gy = (np.arange(sy0, sy1)[:, None] - p[0]) * sy
        gx = (np.arange(sx0, sx1)[None, :] - p[1]) * sx
        vy, vx = (q[0] - p[0]) * sy, (q[1] - p[1]) * sx
        length2 = vy * vy + vx * vx
        if length2 > 0:
            t = np.clip((gy * vy + gx * vx) / length2, 0.0, 1.0)
            ey, ex = gy - t * vy, gx - t * vx
        else:
            ey, ex = gy, gx
        mask[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] |= ey * ey + ex * ex <= r2
    return mask, (y0, x0)


def paint_stroke(
    target: np.ndarray,
    z: int,
    points_yx: Sequence[Sequence[float]],
    radius_mm: float,
    spacing_yx: Sequence[float],
    value: int | bool = True,
    *,
    erase: bool = False,
    image: np.ndarray | None = None,
    hu_range: tuple[float, float] | None = None,
    overwrite: bool = True,
) -> Change:
    """Paint (or erase) label ``value`` along a stroke on slice ``z``; returns the change, ``target`` is
    left untouched (call ``change.apply(target)``).

    - ``image`` + ``hu_range``: threshold-limited brush, only voxels whose HU lies in [lo, hi] are touched
      (the viewer's default is the current window, level +- width/2).
    - ``erase``: removes label ``value`` only; other labels of a multi-label volume are left alone.
    - ``overwrite=False``: painting never takes voxels that belong to another label.
    """
    tg.check_target(target, value)
    z = tg.check_slice(target, z)
    tg.check_image(image, target, hu_range)
    what = "eraser stroke" if erase else ("threshold brush stroke" if hu_range is not None else "brush stroke")
    mask, (y0, x0) = stroke_mask(points_yx, radius_mm, spacing_yx, target.shape[1:])
    if not mask.any():
        return empty_change(target.dtype, what)
    box = (slice(z, z + 1), slice(y0, y0 + mask.shape[0]), slice(x0, x0 + mask.shape[1]))
    before = target[box]
    region = before[0]
    limit = tg.in_hu_range(image[box][0], hu_range) if hu_range is not None else None
    if limit is not None:
        mask &= limit
    after = before.copy()
    if erase:
        after[0][mask & tg.is_label(region, value)] = tg.background(target)
    else:
        after[0][mask & tg.paintable(region, value, overwrite)] = tg.fill_value(target, value)
    return change_from_patches(before, after, (z, y0, x0), what)

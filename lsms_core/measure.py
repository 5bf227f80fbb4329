"""Lesion measurements on masks: long/short axis, area, volume, density, side, and the body's midline.

Pure numpy/scipy, no Qt: the viewer's measuring tools, its annotation form and ``lsms data from-masks``
all call this, so a lesion measures the same everywhere.

Conventions (read these before calling):
- Every ``spacing`` argument is in *array axis order* in millimetres: ``(row, col)`` for a 2D slice and
  ``(slice, row, col)`` for a 3D mask. This is NOT the (x, y, z) order of ``Volume.spacing``; use
  :func:`array_spacing` to convert.
- Slices are laid out radiologically: rows run anterior -> posterior, columns patient right -> left.
- Axis lengths are measured on the outline of the painted pixels (pixel *edges*, as the calipers of a
  viewer touch the visible edge), so a 1-pixel lesion measures one pixel, and a w x h pixel rectangle has
  the long axis sqrt((w*sx)^2 + (h*sy)^2) exactly. A digital disk of radius R pixels drawn from centres
  measures about 2R + 1 pixels.
- Endpoints are returned as fractional ``(row, col)`` pixel coordinates in the same frame as the mask
  (pixel centres are integers, so an endpoint on a pixel corner is at ``x.5``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lsms_core.errors import LSMSError

Point = tuple[float, float]

#: Default HU difference between a lesion and its surroundings below which it is called "iso".
#: 10 HU is about the noise of a liver ROI on portal-venous CT and the margin radiologists use in
#: practice for "hypo/hyperattenuating"; callers with noisier data should pass a larger one.
DENSITY_THRESHOLD_HU = 10.0
#: Default width of the ring of surrounding tissue that serves as reference for density.
RING_WIDTH_MM = 5.0
#: Above this many voxels in a label's box, ``measure_volume`` measures the ring density on the slice of
#: largest area instead of in 3D: a distance transform of an organ-sized box would stall an interactive caller.
MAX_RING_VOXELS = 3_000_000


class MeasureError(LSMSError):
    """A mask cannot be measured (empty, wrong shape, wrong spacing)."""


@dataclass(frozen=True)
class Axis:
    """A measured segment: its length in mm and its two endpoints as (row, col) pixel coordinates."""

    length_mm: float
    p0: Point
    p1: Point


@dataclass(frozen=True)
class Piece:
    """One 8-connected piece of a mask on a slice."""

    long_axis_mm: float
    area_mm2: float
    n_pixels: int
    centroid: Point  # (row, col) in pixels


@dataclass(frozen=True)
class Measurement2D:
    long_axis: Axis
    short_axis: Axis
    area_mm2: float
    n_pixels: int
    centroid: Point  # (row, col) in pixels
    #: when measured by piece (``largest_piece=True``) and the slice holds several: every piece, largest
    #: first; the axes, area and centroid above are then the largest piece's. Empty: one piece, or not asked.
    pieces: tuple[Piece, ...] = ()


@dataclass(frozen=True)
class Measurement3D:
    volume_ml: float
    n_voxels: int
    first_slice: int
    last_slice: int
    n_slices: int
    extent_mm: float  # cranio-caudal extent: number of slices touched x slice spacing
    hu_mean: float | None
    hu_std: float | None
    largest_slice: int  # slice index with the longest long axis
    long_axis_mm: float  # the longest long axis over all slices (RECIST-style)


@dataclass(frozen=True)
class Density:
    """Lesion attenuation relative to a reference (a ring of surrounding tissue or an organ)."""

    label: Literal["hypo", "iso", "hyper"]
    lesion_hu: float
    reference_hu: float
    difference_hu: float  # lesion - reference
    threshold_hu: float
    reference: Literal["ring", "organ"]


def array_spacing(volume_spacing_xyz: tuple[float, float, float]) -> tuple[float, float, float]:
    """(x, y, z) spacing of a ``Volume`` -> (slice, row, col) spacing in array axis order."""
    x, y, z = (float(s) for s in volume_spacing_xyz)
    return (z, y, x)


def _check_mask(mask: np.ndarray, ndim: int, spacing) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(mask)
    if mask.ndim != ndim:
        raise MeasureError("mask", f"expected a {ndim}D mask, got shape {mask.shape}")
    sp = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if sp.size != ndim or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise MeasureError("spacing", f"expected {ndim} positive spacings in array axis order, got {spacing}")
    mask = mask != 0
    if not mask.any():
        raise MeasureError("mask", "is empty: nothing to measure")
    return mask, sp


def _outline_corners_mm(mask: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """Corners of the boundary pixels, in mm (row, col). The hull of these is the hull of the pixel squares."""
    from scipy import ndimage

    interior = ndimage.binary_erosion(mask, structure=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool))
    rows, cols = np.nonzero(mask & ~interior)
    offsets = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    pts = (np.stack([rows, cols], axis=1)[:, None, :] + offsets[None]).reshape(-1, 2)
    pts = np.unique(pts, axis=0)
    return pts * sp[None, :]


def _convex_hull(pts: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull, counter-clockwise (Andrew's monotone chain; exact on half-integers)."""
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    if len(pts) <= 2:
        return pts

    def half(points: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for p in points:
            while len(out) >= 2:
                a, b = out[-2], out[-1]
                cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
                if cross > 1e-12:
                    break
                out.pop()
            out.append(p)
        return out

    lower = half(pts)
    upper = half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _long_and_short(
    hull: np.ndarray,
) -> tuple[tuple[float, np.ndarray, np.ndarray], tuple[float, np.ndarray, np.ndarray]]:
    diff = hull[:, None, :] - hull[None, :, :]
    d2 = np.einsum("ijk,ijk->ij", diff, diff)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    a, b = hull[i], hull[j]
    long_len = float(np.sqrt(d2[i, j]))
    e = (b - a) / long_len
    n = np.array([-e[1], e[0]])
    # The chord length of a convex polygon along n is piecewise linear in the offset along e, so its
    # maximum is reached at the offset of a hull vertex: evaluating those offsets is exact.
    t_vert = hull @ e
    u_vert = hull @ n
    t0, t1 = t_vert, np.roll(t_vert, -1)
    u0, u1 = u_vert, np.roll(u_vert, -1)
    ts = t_vert[:, None]  # candidate offsets x edges
    lo, hi = np.minimum(t0, t1)[None, :], np.maximum(t0, t1)[None, :]
    crosses = (ts >= lo - 1e-9) & (ts <= hi + 1e-9)
    dt = (t1 - t0)[None, :]
    frac = np.where(np.abs(dt) > 1e-12, (ts - t0[None, :]) / np.where(np.abs(dt) > 1e-12, dt, 1.0), 0.0)
    u_at = u0[None, :] + frac * (u1 - u0)[None, :]
    # An edge parallel to n at this offset contributes both of its ends.
    par = crosses & (np.abs(dt) <= 1e-12)
    u_max = np.where(crosses, np.where(par, np.maximum(u0, u1)[None, :], u_at), -np.inf).max(axis=1)
    u_min = np.where(crosses, np.where(par, np.minimum(u0, u1)[None, :], u_at), np.inf).min(axis=1)
    chord = u_max - u_min
    k = int(np.argmax(chord))
    p0 = t_vert[k] * e + u_min[k] * n
    p1 = t_vert[k] * e + u_max[k] * n
    return (long_len, a, b), (float(chord[k]), p0, p1)


def _to_px(p_mm: np.ndarray, sp: np.ndarray) -> Point:
    r, c = p_mm / sp
    return (float(round(r, 6)), float(round(c, 6)))


def axes_2d(mask: np.ndarray, spacing: tuple[float, float]) -> tuple[Axis, Axis]:
    """Long axis (max Feret diameter) and short axis (longest chord perpendicular to it) of a 2D mask.

    Measured on the convex hull of the painted pixels, as calipers would: for a concave (lobulated)
    lesion the short axis can cross a notch. Raises :class:`MeasureError` for an empty mask.
    """
    mask, sp = _check_mask(mask, 2, spacing)
    hull = _convex_hull(_outline_corners_mm(mask, sp))
    (ll, a, b), (sl, p0, p1) = _long_and_short(hull)
    return Axis(ll, _to_px(a, sp), _to_px(b, sp)), Axis(sl, _to_px(p0, sp), _to_px(p1, sp))


def measure_2d(mask: np.ndarray, spacing: tuple[float, float]) -> Measurement2D:
    """Long and short axis, area and centroid of a 2D lesion mask with (row, col) spacing in mm."""
    long_axis, short_axis = axes_2d(mask, spacing)
    m = np.asarray(mask) != 0
    rows, cols = np.nonzero(m)
    n = int(rows.size)
    return Measurement2D(
        long_axis=long_axis,
        short_axis=short_axis,
        area_mm2=float(n * spacing[0] * spacing[1]),
        n_pixels=n,
        centroid=(float(rows.mean()), float(cols.mean())),
    )


_EIGHT = np.ones((3, 3), bool)



def slice_pieces(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected pieces of a 2D mask, largest (most pixels) first; ties keep scan order."""
    from scipy import ndimage

    m = np.asarray(mask) != 0
    labels, n = ndimage.label(m, structure=_EIGHT)
    if n <= 1:
        return [m] if n else []
    sizes = np.bincount(labels.ravel())[1:]
    order = sorted(range(n), key=lambda i: -int(sizes[i]))
    return [labels == i + 1 for i in order]


def main_piece(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected piece of a 2D mask (the mask itself when it is one piece)."""
    pieces = slice_pieces(mask)
    if not pieces:
        raise MeasureError("mask", "is empty: nothing to measure")
    return pieces[0]


def measure_pieces(mask: np.ndarray, spacing: tuple[float, float]) -> Measurement2D:
    """:func:`measure_2d` of the largest 8-connected piece, listing every piece when there are several.

    A long axis drawn from one lesion to another (two tumours in one label, a stray brush dot) is not a
    lesion's diameter: each piece is measured on its own and the largest one speaks for the slice.
    """
    pieces = slice_pieces(mask)
    if len(pieces) <= 1:
        return measure_2d(mask, spacing)
    listed = []
    for piece in pieces:
        rows, cols = np.nonzero(piece)
        listed.append(Piece(axes_2d(piece, spacing)[0].length_mm, float(rows.size * spacing[0] * spacing[1]),
                            int(rows.size), (float(rows.mean()), float(cols.mean()))))
    m2 = measure_2d(pieces[0], spacing)
    return Measurement2D(m2.long_axis, m2.short_axis, m2.area_mm2, m2.n_pixels, m2.centroid, tuple(listed))


def crop_box(mask: np.ndarray, pad: tuple[int, ...]) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask grown by ``pad`` voxels per axis, from axis projections (no index
    arrays: a 512x512x300 mask is scanned in milliseconds)."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hit = np.flatnonzero(mask.any(axis=others))
        box.append(slice(max(int(hit[0]) - pad[axis], 0), min(int(hit[-1]) + pad[axis] + 1, mask.shape[axis])))
        # Narrow the next projections to the extent found so far.
        mask = mask[(slice(None),) * axis + (slice(int(hit[0]), int(hit[-1]) + 1),)]
    return tuple(box)


def _masked_mean_std(values: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean and (population) standard deviation of ``values`` under ``mask``, slice by slice, combined with
    Chan's pairwise formula: a region as large as the volume never needs a float64 copy of all its values."""
    n, mean, m2 = 0, 0.0, 0.0
    for v, m in zip(values, mask, strict=True):
        picked = v[m].astype(np.float64)
        if picked.size == 0:
            continue
        k, k_mean = picked.size, float(picked.mean())
        k_m2 = float(((picked - k_mean) ** 2).sum())
        delta = k_mean - mean
        total = n + k
        mean += delta * k / total
        m2 += k_m2 + delta * delta * n * k / total
        n = total
    return mean, (m2 / n) ** 0.5


def measure_3d(
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    hu: np.ndarray | None = None,
    *,
    long_axes: dict[int, float] | None = None,
    largest: bool = True,
    largest_piece: bool = False,
) -> Measurement3D:
    """Volume (mL), slice extent and HU statistics of a 3D mask with (slice, row, col) spacing in mm.

    ``largest_piece``: a slice's long axis is its largest 8-connected piece's (:func:`measure_pieces`).

    Works on the mask's bounding box only. ``long_axes`` is an optional cache {slice: long axis mm} that
    the caller keeps between calls and clears for slices that changed: the largest slice is then found
    without re-measuring every slice after each edit. ``largest=False`` skips that search
    (``largest_slice`` is then the slice of largest area and ``long_axis_mm`` is NaN).
    """
    mask, sp = _check_mask(mask, 3, spacing)
    if hu is not None:
        hu = np.asarray(hu)
        if hu.shape != mask.shape:
            raise MeasureError("hu", f"shape {hu.shape} differs from the mask's {mask.shape}")
    box = crop_box(mask, (0, 0, 0))
    sub = mask[box]
    offset = box[0].start
    ks = np.flatnonzero(sub.any(axis=(1, 2)))
    n = int(sub.sum())
    hu_mean = hu_std = None
    if hu is not None:
        hu_mean, hu_std = _masked_mean_std(hu[box], sub)
    best_k, best_len = int(np.argmax(sub.sum(axis=(1, 2)))) + offset, float("nan")
    if largest:
        cache = long_axes if long_axes is not None else {}
        best_len = -1.0
        for k in ks:
            z = int(k) + offset
            if z not in cache:
                plane = main_piece(sub[k]) if largest_piece else sub[k]
                cache[z] = axes_2d(plane, (sp[1], sp[2]))[0].length_mm
            if cache[z] > best_len:
                best_k, best_len = z, cache[z]
    return Measurement3D(
        volume_ml=float(n * np.prod(sp) / 1000.0),
        n_voxels=n,
        first_slice=int(ks[0]) + offset,
        last_slice=int(ks[-1]) + offset,
        n_slices=int(ks.size),
        extent_mm=float(ks.size * sp[0]),
        hu_mean=hu_mean,
        hu_std=hu_std,
        largest_slice=best_k,
        long_axis_mm=float(best_len),
    )


def measure_volume(
    hu: np.ndarray,
    mask: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    exclude: np.ndarray | None = None,
    ring_mm: float = RING_WIDTH_MM,
    long_axes: dict[int, float] | None = None,
    largest: bool = True,
    largest_piece: bool = False,
) -> tuple[Measurement3D, Density | None]:
    """:func:`measure_3d` of a lesion on its CT, and its density against a 3D ring of surrounding tissue
    (``exclude``, e.g. the other lesions, is kept out of the ring; None when no ring tissue is left).

    For a label whose box exceeds ``MAX_RING_VOXELS`` (an organ-sized run) the ring density is measured on
    the slice of largest area instead. Raises :class:`MeasureError` for an empty mask.
    """
    mask = np.asarray(mask) != 0
    m3 = measure_3d(mask, spacing, hu, long_axes=long_axes, largest=largest, largest_piece=largest_piece)
    sp = tuple(float(s) for s in spacing)
    pad = tuple(int(np.ceil(ring_mm / s)) + 2 for s in sp)
    box = crop_box(mask, pad)
    sub_mask, sub_hu = mask[box], np.asarray(hu)[box]
    sub_excl = None if exclude is None else np.asarray(exclude, bool)[box]
    try:
        if sub_mask.size <= MAX_RING_VOXELS:
            density = relative_density(sub_hu, sub_mask, sp, ring_mm=ring_mm, exclude=sub_excl)
        else:
            widest = int(np.argmax(sub_mask.sum(axis=(1, 2))))
            density = relative_density(sub_hu[widest], sub_mask[widest], sp[1:], ring_mm=ring_mm,
                                       exclude=None if sub_excl is None else sub_excl[widest])
    except MeasureError:
        density = None
    return m3, density


def ring_mask(
    mask: np.ndarray,
    spacing,
    ring_mm: float = RING_WIDTH_MM,
    *,
    within: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """The band of pixels within ``ring_mm`` of the mask's edge, outside it (2D or 3D).

    ``within`` restricts the ring (e.g. to the liver, so air or fat next to a subcapsular lesion never
    becomes the reference); ``exclude`` removes pixels (e.g. other lesions).
    """
    from scipy import ndimage

    mask, sp = _check_mask(mask, np.asarray(mask).ndim, spacing)
    # Crop to the lesion's neighbourhood: a distance transform of a whole 512x512 slice per lesion is wasteful.
    pad = np.ceil(ring_mm / sp).astype(int) + 1
    idx = np.nonzero(mask)
    lo = [max(0, int(i.min()) - p) for i, p in zip(idx, pad, strict=True)]
    hi = [min(s, int(i.max()) + p + 1) for i, s, p in zip(idx, mask.shape, pad, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    dist = ndimage.distance_transform_edt(~mask[box], sampling=sp)
    ring = np.zeros(mask.shape, bool)
    ring[box] = (dist > 0) & (dist <= ring_mm)
    if within is not None:
        ring &= np.asarray(within) != 0
    if exclude is not None:
        ring &= np.asarray(exclude) == 0
    return ring


def classify_density(
    difference_hu: float, threshold_hu: float = DENSITY_THRESHOLD_HU
) -> Literal["hypo", "iso", "hyper"]:
    """'hypo' if the lesion is at least ``threshold_hu`` darker than the reference, 'hyper' if brighter."""
    if difference_hu <= -threshold_hu:
        return "hypo"
    if difference_hu >= threshold_hu:
        return "hyper"
    return "iso"


def relative_density(
    image_hu: np.ndarray,
    mask: np.ndarray,
    spacing,
    *,
    organ_mask: np.ndarray | None = None,
    ring_mm: float = RING_WIDTH_MM,
    reference: Literal["ring", "organ"] = "ring",
    exclude: np.ndarray | None = None,
    threshold_hu: float = DENSITY_THRESHOLD_HU,
) -> Density:
    """Density of a lesion relative to its surroundings (2D or 3D).

    ``reference="ring"``: a ring ``ring_mm`` wide around the lesion (inside ``organ_mask`` if given).
    ``reference="organ"``: the whole organ mask minus the lesion and ``exclude``.
    Both sides use the *median* HU, because vessels in the ring and calcifications in the lesion would
    drag a mean across the threshold. Raises :class:`MeasureError` if the reference region is empty.
    """
    image_hu = np.asarray(image_hu)
    m = np.asarray(mask) != 0
    if image_hu.shape != m.shape:
        raise MeasureError("image", f"shape {image_hu.shape} differs from the mask's {m.shape}")
    if reference == "organ":
        if organ_mask is None:
            raise MeasureError("organ_mask", "reference='organ' needs an organ mask")
        ref = (np.asarray(organ_mask) != 0) & ~m
        if exclude is not None:
            ref &= np.asarray(exclude) == 0
    else:
        ref = ring_mask(m, spacing, ring_mm, within=organ_mask, exclude=exclude)
    if not m.any():
        raise MeasureError("mask", "is empty: nothing to measure")
    if not ref.any():
        raise MeasureError("reference", f"no {reference} pixels around the lesion to compare with")
    lesion_hu = float(np.median(image_hu[m]))
    reference_hu = float(np.median(image_hu[ref]))
    diff = lesion_hu - reference_hu
    return Density(
        classify_density(diff, threshold_hu), lesion_hu, reference_hu, diff, float(threshold_hu), reference
    )


def patient_side(mask: np.ndarray, midline_col: float | None = None) -> Literal["right", "left"]:
    """Patient side of a mask's centroid in a radiologically laid-out slice (2D or 3D; last axis = columns).

    Columns run patient right -> left, so a centroid left of the midline *on screen* is on the patient's
    right. ``midline_col`` defaults to the image centre; pass the body's or spine's centre column when the
    patient is off-centre.
    """
    m = np.asarray(mask) != 0
    if not m.any():
        raise MeasureError("mask", "is empty: it has no side")
    cols = np.nonzero(m)[-1]
    mid = (m.shape[-1] - 1) / 2.0 if midline_col is None else float(midline_col)
    return "right" if float(cols.mean()) < mid else "left"


def body_midline_col(image: np.ndarray, threshold_hu: float = -300.0, min_pixels: int = 4) -> float | None:
    """Column of the body's midline on an axial slice (the patient is rarely centred in the field): the
    centre between the first and last columns holding at least ``min_pixels`` voxels of soft tissue.

    Counting voxels per column, instead of taking any column with one voxel above ``threshold_hu``, keeps
    thin structures that cross the field out of the body: the CT table (a few rows thick but often wider
    than the patient), ECG leads, streaks. None when fewer than 10 columns hold tissue.
    """
    cols = np.flatnonzero((np.asarray(image) > threshold_hu).sum(axis=0) >= min_pixels)
    if cols.size < 10:
        return None
    return 0.5 * (float(cols[0]) + float(cols[-1]))


def measure_slice(
    hu: np.ndarray,
    mask: np.ndarray,
    k: int,
    spacing: tuple[float, float, float],
    *,
    exclude: np.ndarray | None = None,
    ring_mm: float = RING_WIDTH_MM,
    largest_piece: bool = False,
) -> tuple[Measurement2D, Density | None, Literal["right", "left"]] | None:
    """Long/short axis, area, ring density and patient side of a 3D mask on slice ``k`` (None if absent).

    ``largest_piece``: all of these are the largest 8-connected piece's, and ``pieces`` lists every piece
    when there are several (:func:`measure_pieces`).

    ``spacing`` is the (slice, row, col) spacing of the volume; the side is judged from the body's midline
    on that slice (:func:`body_midline_col`), the image centre when no body is found.
    """
    mask = np.asarray(mask)
    if not 0 <= k < mask.shape[0] or not mask[k].any():
        return None
    image = np.asarray(hu)[k]
    plane = mask[k] != 0
    sp2 = (float(spacing[1]), float(spacing[2]))
    if largest_piece:
        m2 = measure_pieces(plane, sp2)
        if m2.pieces:
            plane = main_piece(plane)
    else:
        m2 = measure_2d(plane, sp2)
    pad = (int(np.ceil(ring_mm / sp2[0])) + 2, int(np.ceil(ring_mm / sp2[1])) + 2)
    box = crop_box(plane, pad)
    try:
        density = relative_density(image[box], plane[box], sp2, ring_mm=ring_mm,
                                   exclude=None if exclude is None else np.asarray(exclude[k], bool)[box])
    except MeasureError:
        density = None
    side = patient_side(plane, body_midline_col(image))
    return m2, density, side

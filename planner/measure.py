"""Stage: lesion mask in, caliper measurement out.

Input: :class:`~planner.lesion.LesionMask`, the volume geometry and the
:class:`MeasurementMode`.
Output: :class:`Measurement`: length L and width W in mm with their endpoints in LPS mm, the
uncertainty of each (one voxel along the diameter plus the outline's own error), the
voxel-count volume (mL) and the centre (LPS mm).

- ``3d`` (the default): L = largest 3-D diameter (Feret) of the lesion, W = largest diameter
  perpendicular to L, read from an ellipse fitted to the lesion's widths across L in every
  direction (the largest raw width would take the outline's largest bump). The boundary is
  the marching-cubes surface at the half level of the lesion's membership (its smoothed
  outline, :attr:`~planner.lesion.LesionMask.membership`), so a diameter spans from edge to
  edge of the lesion, not from voxel centre to voxel centre, nor from corner to corner of
  the mask's staircase.
  L's axis is the one nearest the centre of the directions within a voxel of the longest:
  the outline's noise at a blunt end would otherwise tilt it, and W with it.
- ``axial``: as measured on the scanner console. On each slice of the volume grid the boundary
  is the half-level contour of the slice's membership; the slice whose largest in-plane
  diameter is greatest is kept, L is that diameter and W the longest chord of the contour
  perpendicular to L on the same slice, edge to edge, so the W line lies on the lesion as
  the radiologist draws it. The measurement names that slice (index in volume order,
  position along the slice normal).

In the 3-D mode W is the extent of the boundary's shadow across L, drawn along the fitted
ellipse's major axis; in the axial mode it is a chord of the slice's outline.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import find_contours, marching_cubes

from planner.errors import LesionNotFound
from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask

Point = tuple[float, float, float]
# In-plane diameters closer than this are equal (rounding noise): slices with equal L are
# told apart by W, then by their nearness to the lesion's centre.
SAME_LENGTH_MM = 1e-6
# 3-D mode: diameters within this many voxels of the longest are equally long (the outline's
# noise); the length axis is the one nearest the centre of their directions.
AXIS_TIE_VOXELS = 1.0
# 3-D mode: step of the directions across L in which the shadow's width is read for W.
WIDTH_STEP_DEG = 1.0


class MeasurementMode(StrEnum):
    THREE_D = "3d"
    AXIAL = "axial"


@dataclass(frozen=True)
class Measurement:
    length_mm: float
    width_mm: float
    length_endpoints_lps_mm: tuple[Point, Point]
    width_endpoints_lps_mm: tuple[Point, Point]
    length_uncertainty_mm: float
    width_uncertainty_mm: float
    voxel_volume_ml: float | None  # None in manual mode
    center_lps_mm: Point
    mode: MeasurementMode | None  # None in manual mode: the radiologist's own L and W
    slice_index: int | None = None  # axial mode: the measured slice, in volume order
    slice_position_mm: float | None = None  # axial mode: that slice along the slice normal


def _point(p: npt.ArrayLike) -> Point:
    a = np.asarray(p, dtype=np.float64)
    return (float(a[0]), float(a[1]), float(a[2]))


def _hull_points(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    try:
        return points[ConvexHull(points).vertices]
    except (QhullError, ValueError):
        return points  # flat or tiny point sets: use them all


def _farthest_pair(points: npt.NDArray[np.float64]) -> tuple[int, int, float]:
    best = (0, 0, 0.0)
    chunk = 512
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        d2 = ((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
        idx = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[idx] > best[2] ** 2:
            best = (start + int(idx[0]), int(idx[1]), float(np.sqrt(d2[idx])))
    return best


def voxel_step_mm(direction_lps: npt.ArrayLike, geometry: VolumeGeometry) -> float:
    """Sampling step of the grid along a unit direction: one voxel's error on a diameter there."""
    u = np.asarray(direction_lps, dtype=np.float64)
    u_index = geometry.direction_matrix.T @ u  # components along column, row, slice axes
    return float(1.0 / np.linalg.norm(u_index / np.asarray(geometry.spacing_mm)))


def _padded_membership(lesion: LesionMask) -> npt.NDArray[np.float32]:
    """The lesion's membership (0.5 on its outline) on its box grown by one voxel: the smoothed
    outline when segmentation gave one, else the mask itself."""
    if lesion.membership is not None:
        return lesion.membership
    return np.pad(lesion.mask.astype(np.float32), 1)


def surface_points_lps(lesion: LesionMask, geometry: VolumeGeometry) -> npt.NDArray[np.float64]:
    """The lesion's surface, marching cubes at the half level of its membership (LPS mm)."""
    verts, _, _, _ = marching_cubes(_padded_membership(lesion), level=0.5)
    kji = verts - 1.0 + np.asarray(lesion.offset_kji)
    return geometry.kji_to_lps(kji)


@dataclass(frozen=True)
class _Calipers:
    """L and W endpoints (LPS mm) and lengths (mm), before the uncertainties are added."""

    length_ends: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    width_ends: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    length_mm: float
    width_mm: float


def _width_across(
    hull: npt.NDArray[np.float64], axis: npt.NDArray[np.float64], center: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
    """The largest width of the hull's shadow on the plane through ``center`` normal to
    ``axis``: the width endpoints (LPS mm) and the width (mm).

    The shadow's squared width in each direction of the plane (every WIDTH_STEP_DEG) is fitted
    by c0 + c1 cos 2t + c2 sin 2t, exact for an ellipse (an ellipsoid's shadow); W is the
    fitted ellipse's major axis. The largest raw width would take the outline's largest bump:
    across a round cross-section it read the femoral lesion's W 1.0 mm wide on average over
    8 noise draws (``bench/resolution.py --noise-realisations 8``; 0.8 mm with the fit). The
    W line runs along the major axis, through the middle of the shadow's extent there.
    """
    rel = hull - center
    projected = rel - np.outer(rel @ axis, axis)
    basis_u = _any_normal(axis)
    basis_v = np.cross(axis, basis_u)
    flat = np.stack([projected @ basis_u, projected @ basis_v], axis=1)
    with contextlib.suppress(QhullError, ValueError):
        flat = flat[ConvexHull(flat).vertices]
    t = np.deg2rad(np.arange(0.0, 180.0, WIDTH_STEP_DEG))
    along = flat @ np.stack([np.cos(t), np.sin(t)])
    widths = along.max(axis=0) - along.min(axis=0)
    design = np.stack([np.ones_like(t), np.cos(2.0 * t), np.sin(2.0 * t)], axis=1)
    c0, c1, c2 = np.linalg.lstsq(design, widths**2, rcond=None)[0]
    width = float(np.sqrt(max(c0 + np.hypot(c1, c2), 0.0)))
    major = 0.5 * float(np.arctan2(c2, c1))
    u_flat = np.array([np.cos(major), np.sin(major)])
    v_flat = np.array([-np.sin(major), np.cos(major)])
    on_u = flat @ u_flat
    lo, hi = int(np.argmin(on_u)), int(np.argmax(on_u))
    middle_u = (on_u[lo] + on_u[hi]) / 2.0
    middle_v = (flat[lo] @ v_flat + flat[hi] @ v_flat) / 2.0
    u = u_flat[0] * basis_u + u_flat[1] * basis_v
    v = v_flat[0] * basis_u + v_flat[1] * basis_v
    line_middle = center + middle_u * u + middle_v * v
    return line_middle - u * width / 2.0, line_middle + u * width / 2.0, width


def _near_longest_pairs(
    points: npt.NDArray[np.float64], shortest_mm: float
) -> npt.NDArray[np.int64]:
    """Index pairs (n, 2) of the points at least ``shortest_mm`` apart, the longest one per
    direction (directions within about a degree are the same)."""
    chunk = 512
    found = []
    for start in range(0, len(points), chunk):
        d2 = ((points[start : start + chunk, None, :] - points[None, :, :]) ** 2).sum(axis=2)
        a, b = np.nonzero(d2 >= shortest_mm**2)
        found.append(np.stack([a + start, b], axis=1))
    pairs = np.concatenate(found)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    step = points[pairs[:, 1]] - points[pairs[:, 0]]
    length = np.linalg.norm(step, axis=1)
    unit = step / length[:, None]
    # u and -u are one direction: make the largest component positive.
    unit *= np.sign(unit[np.arange(len(unit)), np.argmax(np.abs(unit), axis=1)])[:, None]
    keys = np.round(unit * 60.0).astype(np.int64)
    order = np.lexsort((-length, keys[:, 2], keys[:, 1], keys[:, 0]))
    _, first = np.unique(keys[order], axis=0, return_index=True)
    return pairs[order[first]]


def _calipers_3d(lesion: LesionMask, geometry: VolumeGeometry) -> _Calipers:
    """Feret length of the marching-cubes surface and the largest width perpendicular to it.

    A blunt lesion has many directions of nearly its largest diameter, and the outline's noise
    picks one of them. The axis is the pair, of those within AXIS_TIE_VOXELS of the longest,
    nearest the centre of their directions (the principal axis of their outer products, so
    that u and -u count alike): a central estimate, where the longest pair or the one across
    which the lesion is narrowest are extremes. L is the longest diameter, drawn on that axis
    through the pair's middle (its ends lie at most half a voxel beyond the pair's).
    """
    hull = _hull_points(surface_points_lps(lesion, geometry))
    a, b, longest = _farthest_pair(hull)
    tie_mm = AXIS_TIE_VOXELS * voxel_step_mm((hull[b] - hull[a]) / longest, geometry)
    pairs = _near_longest_pairs(hull, longest - tie_mm - SAME_LENGTH_MM)
    steps = hull[pairs[:, 1]] - hull[pairs[:, 0]]
    units = steps / np.linalg.norm(steps, axis=1, keepdims=True)
    centre = np.linalg.eigh(units.T @ units)[1][:, -1]
    pick = int(np.argmax(np.abs(units @ centre)))
    i, j = pairs[pick]
    axis = units[pick]
    middle = (hull[i] + hull[j]) / 2.0
    w1, w2, width = _width_across(hull, axis, middle)
    return _Calipers(
        (middle - axis * longest / 2.0, middle + axis * longest / 2.0), (w1, w2), longest, width
    )


@dataclass(frozen=True)
class _SliceOutline:
    """One slice's half-level contours in in-plane mm coordinates (along ``e1``, ``e2``)."""

    k: int
    contours_mm: tuple[npt.NDArray[np.float64], ...]  # each (n, 2), closed
    e1: npt.NDArray[np.float64]  # LPS unit vectors spanning the slice
    e2: npt.NDArray[np.float64]
    offset_lps_mm: npt.NDArray[np.float64]  # LPS point of in-plane (0, 0) on this slice

    def to_lps(self, uv: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return self.offset_lps_mm + uv[..., :1] * self.e1 + uv[..., 1:] * self.e2


def _slice_outline(lesion: LesionMask, geometry: VolumeGeometry, dk: int) -> _SliceOutline:
    k0, j0, i0 = lesion.offset_kji
    k = k0 + dk
    e1 = geometry.direction_matrix[:, 0]  # along the slice's rows
    e2 = np.cross(geometry.slice_normal, e1)
    offset = geometry.kji_to_lps((float(k), 0.0, 0.0))
    contours = []
    for rows_cols in find_contours(_padded_membership(lesion)[dk + 1], 0.5):
        kji = np.column_stack(
            [
                np.full(len(rows_cols), float(k)),
                rows_cols[:, 0] - 1.0 + j0,
                rows_cols[:, 1] - 1.0 + i0,
            ]
        )
        rel = geometry.kji_to_lps(kji) - offset
        contours.append(np.stack([rel @ e1, rel @ e2], axis=1))
    return _SliceOutline(k, tuple(contours), e1, e2, offset)


def _in_plane_length(outline: _SliceOutline) -> tuple[npt.NDArray[np.float64], float]:
    """The farthest pair of the outline (2, 2) in in-plane mm, and its distance."""
    points = np.concatenate(outline.contours_mm)
    with contextlib.suppress(QhullError, ValueError):
        points = points[ConvexHull(points).vertices]
    a, b, length = _farthest_pair(points)
    return points[[a, b]], length


def _widest_chord(
    outline: _SliceOutline, ends: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    """The longest chord perpendicular to L, edge to edge of the outline, as (2, 2) in-plane mm.

    For each line perpendicular to L the chord runs from its first to its last crossing of the
    outline; the span is piecewise linear between the outline's vertices, so its maximum lies
    on a line through a vertex.
    """
    axis = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
    across = np.array([-axis[1], axis[0]])
    seg_a = np.concatenate([c[:-1] for c in outline.contours_mm]) - ends[0]
    seg_b = np.concatenate([c[1:] for c in outline.contours_mm]) - ends[0]
    sa, sb, ua, ub = seg_a @ axis, seg_b @ axis, seg_a @ across, seg_b @ across
    t = np.unique(sa)[:, None]  # one line through each vertex
    ds = sb - sa
    hit = (np.minimum(sa, sb) <= t) & (t <= np.maximum(sa, sb))
    frac = np.divide(t - sa, ds, out=np.zeros(hit.shape), where=ds != 0)
    u = ua + frac * (ub - ua)
    top = np.where(hit, u, -np.inf).max(axis=1)
    bottom = np.where(hit, u, np.inf).min(axis=1)
    best = int(np.argmax(top - bottom))
    chord = ends[0] + t[best, 0] * axis + np.outer([bottom[best], top[best]], across)
    return chord, float(top[best] - bottom[best])


def _calipers_axial(lesion: LesionMask, geometry: VolumeGeometry) -> tuple[_Calipers, int]:
    """The slice with the greatest in-plane L (ties: greater W, then nearer the centre), with
    its L and W from the half-level contour of the slice's membership."""
    centre_k = float(lesion.points_kji()[:, 0].mean())
    outlines = [
        _slice_outline(lesion, geometry, int(dk))
        for dk in np.flatnonzero(lesion.mask.any(axis=(1, 2)))
    ]
    if not outlines:
        raise LesionNotFound("the lesion outline is empty: nothing to measure")
    lengths = [_in_plane_length(o) for o in outlines]
    longest = max(length for _, length in lengths)
    best: tuple[tuple[int, float], _Calipers, int] | None = None
    for outline, (ends, length) in zip(outlines, lengths, strict=True):
        if length < longest - SAME_LENGTH_MM:
            continue
        chord, width = _widest_chord(outline, ends)
        key = (round(width / SAME_LENGTH_MM), -abs(outline.k - centre_k))
        if best is None or key > best[0]:
            l_lps, w_lps = outline.to_lps(ends), outline.to_lps(chord)
            calipers = _Calipers((l_lps[0], l_lps[1]), (w_lps[0], w_lps[1]), length, width)
            best = (key, calipers, outline.k)
    assert best is not None
    return best[1], best[2]


def measure_lesion(
    lesion: LesionMask,
    geometry: VolumeGeometry,
    mode: MeasurementMode | str = MeasurementMode.THREE_D,
    outline_error_mm: float = 0.0,
) -> Measurement:
    """L and W of the lesion in mm (endpoints in LPS mm), in the 3-D or the axial mode.

    Each diameter's uncertainty is one voxel along it (where its ends fall between voxels)
    plus ``outline_error_mm``, the error of the outline itself on a diameter.
    """
    mode = MeasurementMode(mode)
    slice_index: int | None = None
    slice_position_mm: float | None = None
    if mode is MeasurementMode.AXIAL:
        calipers, slice_index = _calipers_axial(lesion, geometry)
        slice_origin = geometry.kji_to_lps((slice_index, 0, 0))
        slice_position_mm = float(slice_origin @ geometry.slice_normal)
    else:
        calipers = _calipers_3d(lesion, geometry)
    p1, p2 = calipers.length_ends
    w1, w2 = calipers.width_ends
    axis = (p2 - p1) / calipers.length_mm
    width_dir = (w2 - w1) / calipers.width_mm if calipers.width_mm > 0 else _any_normal(axis)
    return Measurement(
        length_mm=calipers.length_mm,
        width_mm=calipers.width_mm,
        length_endpoints_lps_mm=(_point(p1), _point(p2)),
        width_endpoints_lps_mm=(_point(w1), _point(w2)),
        length_uncertainty_mm=voxel_step_mm(axis, geometry) + outline_error_mm,
        width_uncertainty_mm=voxel_step_mm(width_dir, geometry) + outline_error_mm,
        voxel_volume_ml=float(lesion.mask.sum()) * geometry.voxel_volume_ml,
        center_lps_mm=_point(geometry.kji_to_lps(lesion.points_kji().mean(axis=0))),
        mode=mode,
        slice_index=slice_index,
        slice_position_mm=slice_position_mm,
    )


def _any_normal(axis: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A unit vector perpendicular to ``axis`` (the width direction of a zero width)."""
    basis = np.cross(axis, [1.0, 0.0, 0.0])
    if np.linalg.norm(basis) < 1e-6:
        basis = np.cross(axis, [0.0, 1.0, 0.0])
    return basis / np.linalg.norm(basis)

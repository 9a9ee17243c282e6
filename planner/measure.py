"""Stage: lesion mask in, caliper measurement out.

Input: :class:`~planner.lesion.LesionMask` and the volume geometry.
Output: :class:`Measurement`: length L = largest 3-D diameter (Feret) and width W = largest
diameter perpendicular to L, in mm, with endpoints in LPS mm, the one-voxel uncertainty of
each, the voxel-count volume (mL) and the centre (LPS mm).

The boundary is the marching-cubes surface of the mask at the half level, so a diameter spans
from edge to edge of the lesion, not from voxel centre to voxel centre.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import marching_cubes

from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask

Point = tuple[float, float, float]


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


def surface_points_lps(lesion: LesionMask, geometry: VolumeGeometry) -> npt.NDArray[np.float64]:
    padded = np.pad(lesion.mask.astype(np.float32), 1)
    verts, _, _, _ = marching_cubes(padded, level=0.5)
    kji = verts - 1.0 + np.asarray(lesion.offset_kji)
    return geometry.kji_to_lps(kji)


def measure_lesion(lesion: LesionMask, geometry: VolumeGeometry) -> Measurement:
    """Feret length and perpendicular width of the lesion, in mm and LPS mm."""
    surface = surface_points_lps(lesion, geometry)
    hull = _hull_points(surface)
    a, b, length = _farthest_pair(hull)
    p1, p2 = hull[a], hull[b]
    axis = (p2 - p1) / length
    center = (p1 + p2) / 2.0
    # Width: farthest pair of the hull projected onto the plane perpendicular to L.
    rel = hull - center
    projected = rel - np.outer(rel @ axis, axis)
    basis_u = np.cross(axis, [1.0, 0.0, 0.0])
    if np.linalg.norm(basis_u) < 1e-6:
        basis_u = np.cross(axis, [0.0, 1.0, 0.0])
    basis_u /= np.linalg.norm(basis_u)
    basis_v = np.cross(axis, basis_u)
    flat = np.stack([projected @ basis_u, projected @ basis_v], axis=1)
    flat_hull_idx = np.arange(len(flat))
    with contextlib.suppress(QhullError, ValueError):
        flat_hull_idx = ConvexHull(flat).vertices
    c, d, width = _farthest_pair(flat[flat_hull_idx])
    w1 = center + projected[flat_hull_idx[c]]
    w2 = center + projected[flat_hull_idx[d]]
    width_dir = (w2 - w1) / width if width > 0 else basis_u
    return Measurement(
        length_mm=length,
        width_mm=width,
        length_endpoints_lps_mm=(_point(p1), _point(p2)),
        width_endpoints_lps_mm=(_point(w1), _point(w2)),
        length_uncertainty_mm=voxel_step_mm(axis, geometry),
        width_uncertainty_mm=voxel_step_mm(width_dir, geometry),
        voxel_volume_ml=float(lesion.mask.sum()) * geometry.voxel_volume_ml,
        center_lps_mm=_point(geometry.kji_to_lps(lesion.points_kji().mean(axis=0))),
    )

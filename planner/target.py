"""Stage: lesion, anatomy and approach side in; candidate needle-tip targets out.

Input: the lesion mask and measurement, :class:`~planner.anatomy.Anatomy`, the up direction
(LPS unit vector) and the target mode.
Output: :class:`TargetPoint` candidates (LPS mm), best first.

CLINICAL.md's target rule: whenever possible inject upstream of the tumour, at the junction of
the tumour and the periosteum; otherwise peri- or intratumoral. Our reading (a documented
default): the peritumoral target is a lesion voxel touching bone, preferring the side the
needle comes from (facing up) and, where the spine was found, the side nearer the spinal canal
(upstream along the nerves). A lesion enclosed in bone is targeted at the bone surface nearest
to it. ``intratumoral`` targets the lesion centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from planner.anatomy import Anatomy
from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask
from planner.volume import CTVolume

Point = tuple[float, float, float]
# A lesion voxel within this distance (mm) of bone lies at the tumour-periosteum junction.
JUNCTION_MM = 1.5
# How strongly "nearer the spinal canal" (upstream) counts against "facing up" (approach).
UPSTREAM_WEIGHT = 0.5
MIN_TARGET_SEPARATION_MM = 6.0
# A lesion enclosed in bone is targeted on the bone surface within this distance of it.
PERIOSTEUM_SEARCH_MM = 20.0
# When no candidate target gives a safe path, the rest of the junction is tried down to this
# spacing (a safe window between two bones can be open to only a few millimetres of it), at
# most FILL_TARGET_COUNT more targets (about 0.3 s each at 0.8 x 1 mm).
FILL_TARGET_SPACING_MM = 2.0
FILL_TARGET_COUNT = 24


class TargetMode(StrEnum):
    PERIOSTEAL = "periosteal"
    INTRATUMORAL = "intratumoral"


@dataclass(frozen=True)
class TargetPoint:
    lps_mm: Point
    kind: str


def _point(p: npt.ArrayLike) -> Point:
    a = np.asarray(p, dtype=np.float64)
    return (float(a[0]), float(a[1]), float(a[2]))


def spread_points(
    points: npt.NDArray[np.float64], order: npt.NDArray[np.intp], n: int, min_separation_mm: float
) -> list[int]:
    """Up to ``n`` indices taken in ``order``, each at least ``min_separation_mm`` from the rest."""
    chosen: list[int] = []
    for i in order:
        if all(np.linalg.norm(points[i] - points[c]) >= min_separation_mm for c in chosen):
            chosen.append(int(i))
            if len(chosen) == n:
                break
    return chosen


def _on_slices(volume: CTVolume, kji: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Snap the slice index to the nearest CT slice, so an axial path can reach the point."""
    snapped = kji.copy()
    snapped[:, 0] = np.clip(np.rint(snapped[:, 0]), 0, volume.geometry.shape[0] - 1)
    return snapped


def _soft_tissue_near_bone(
    anatomy: Anatomy, cells: npt.NDArray[np.intp], touching_mm: float
) -> npt.NDArray[np.float64]:
    """The cells that are soft tissue (not bone, air, canal or a large vessel) within
    touching_mm of bone."""
    k, j, i = cells[:, 0], cells[:, 1], cells[:, 2]
    keep = anatomy.distance_mm["bone"][k, j, i] <= touching_mm
    keep &= ~anatomy.bone[k, j, i] & ~anatomy.air[k, j, i] & ~anatomy.canal[k, j, i]
    if anatomy.vessel is not None:
        keep &= ~anatomy.vessel[k, j, i]
    keep &= anatomy.body[k, j, i]
    return cells[keep].astype(np.float64)


def _periosteum_near(
    anatomy: Anatomy,
    lesion: LesionMask,
    touching_mm: float,
    reach_mm: float,
    geo: VolumeGeometry,
) -> npt.NDArray[np.float64]:
    """Soft tissue on the bone surface within reach_mm of the lesion."""
    spacing = np.asarray(geo.spacing_kji_mm())
    pad = np.ceil(reach_mm / spacing).astype(int)
    lo = np.maximum(np.asarray(lesion.offset_kji) - pad, 0)
    hi = np.minimum(np.asarray(lesion.offset_kji) + lesion.mask.shape + pad, geo.shape)
    grid = np.stack(
        np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"),
        axis=-1,
    ).reshape(-1, 3)
    near = _soft_tissue_near_bone(anatomy, grid, touching_mm)
    if near.size == 0:
        return near
    lesion_pts = geo.kji_to_lps(lesion.points_kji())
    dist, _ = cKDTree(lesion_pts).query(geo.kji_to_lps(near), k=1)
    return near[dist <= reach_mm]


def _junction(
    anatomy: Anatomy, lesion: LesionMask, geo: VolumeGeometry
) -> tuple[npt.NDArray[np.float64], str]:
    """The peritumoral target voxels (k, j, i) and what they are: the lesion's voxels at the
    tumour-periosteum junction or, for a lesion enclosed in bone, the bone surface nearest
    to it; empty when neither exists."""
    # Face neighbours of bone, whatever the grid: the nearest bone voxel is one step away.
    touching = max(JUNCTION_MM, 1.01 * max(geo.spacing_mm))
    junction = _soft_tissue_near_bone(anatomy, lesion.points_kji().astype(np.intp), touching)
    if junction.size:
        return junction, "tumour-periosteum junction"
    # A lesion enclosed in bone: aim at the bone surface nearest to it.
    junction = _periosteum_near(anatomy, lesion, touching, PERIOSTEUM_SEARCH_MM, geo)
    return junction, "bone surface nearest the lesion"


def fill_targets(
    volume: CTVolume,
    anatomy: Anatomy,
    lesion: LesionMask,
    tried_lps_mm: npt.ArrayLike,
) -> tuple[TargetPoint, ...]:
    """The rest of the peritumoral targets, each next one the farthest from all before it
    (the tried ones included), down to FILL_TARGET_SPACING_MM apart; at most
    FILL_TARGET_COUNT.

    :func:`choose_targets` spreads a few candidates over the junction; where none of them
    has a safe path, a window may still open onto a part of the junction between them.
    """
    geo = volume.geometry
    junction, kind = _junction(anatomy, lesion, geo)
    if junction.size == 0:
        return ()
    pts = geo.kji_to_lps(junction)
    tried = np.asarray(tried_lps_mm, dtype=np.float64).reshape(-1, 3)
    gap = np.linalg.norm(pts[:, None, :] - tried[None, :, :], axis=2).min(axis=1)
    order: list[int] = []
    while (
        gap.size and float(gap.max()) >= FILL_TARGET_SPACING_MM and len(order) < FILL_TARGET_COUNT
    ):
        best = int(np.argmax(gap))
        order.append(best)
        gap = np.minimum(gap, np.linalg.norm(pts - pts[best], axis=1))
    snapped = geo.kji_to_lps(_on_slices(volume, junction[order]))
    return tuple(TargetPoint(_point(p), kind) for p in snapped)


def choose_targets(
    volume: CTVolume,
    anatomy: Anatomy,
    lesion: LesionMask,
    centre_lps_mm: Point,
    up_lps: npt.ArrayLike,
    mode: TargetMode,
    count: int,
) -> tuple[tuple[TargetPoint, ...], tuple[str, ...]]:
    """Candidate targets, best first, and the warnings explaining any fallback."""
    geo = volume.geometry
    up = np.asarray(up_lps, dtype=np.float64)
    centre = np.asarray(centre_lps_mm)
    if mode is TargetMode.INTRATUMORAL:
        kji = _on_slices(volume, geo.lps_to_kji(centre)[None, :])[0]
        idx = tuple(int(v) for v in np.rint(kji))
        inside = lesion.full_mask(geo.shape)[idx]
        p = geo.kji_to_lps(kji) if inside else centre
        return (TargetPoint(_point(p), "lesion centre (intratumoral)"),), ()

    junction, kind = _junction(anatomy, lesion, geo)
    warnings: list[str] = []
    if junction.size == 0:
        warnings.append(
            "the lesion does not touch bone: peritumoral periosteal target not possible, "
            "lesion centre targeted"
        )
        return (
            choose_targets(volume, anatomy, lesion, centre_lps_mm, up, TargetMode.INTRATUMORAL, 1)[
                0
            ],
            tuple(warnings),
        )
    pts = geo.kji_to_lps(junction)
    radius = max(float(np.max(np.linalg.norm(pts - centre, axis=1))), 1.0)
    score = ((pts - centre) @ up) / radius
    if anatomy.canal.any():
        canal_mm = anatomy.distance_mm["spinal canal"][tuple(junction.astype(np.intp).T)]
        if float(canal_mm.min()) < 40.0:  # capped maps: only a near spine ranks upstream
            score -= UPSTREAM_WEIGHT * canal_mm / radius
    order = np.argsort(-score)
    # Spread the candidates around the lesion: if the preferred side has no safe path, the
    # search still sees the other sides.
    separation = max(MIN_TARGET_SEPARATION_MM, radius / 2.0)
    chosen = spread_points(pts, order, count, separation)
    snapped = geo.kji_to_lps(_on_slices(volume, junction[chosen]))
    return tuple(TargetPoint(_point(p), kind) for p in snapped), tuple(warnings)

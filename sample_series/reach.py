"""Independent survey of straight needle routes to a lesion, on the analytic patient model.

Input: a case spec (patient model + lesion) and :class:`SurveySettings`. Output:
:class:`PathSurvey`: the craniocaudal tilts at which a safe straight route exists, the best
clearance found at each tilt and what blocks the others. :func:`check_access` classifies a case
as :class:`~sample_series.spec.NeedleAccess`; the tests hold every catalogue case to its
declared access under both readings of "bone other than the target" (below).

Method: the model (with the lesion) is painted on a 1 mm LPS label grid around the lesion.
From target points inside the lesion (lobe centres, the centroid and points at 85 % of each
semi-axis) rays are cast every 3 degrees of azimuth at each requested tilt (angle to the
axial plane). A route is safe when, after leaving the lesion, the ray meets only soft tissue
(or lesion) until it leaves the skin within ``max_depth_mm``, and every sample of it stays at
least ``clearance_mm`` (Euclidean distance on the label grid) from lung, canal, vessels and
the table from the target on, and from bone from ``grace_mm`` after the lesion on (nearer, the
tip sits against its target's periosteum). ``clearance_mm`` defaults to the clinical rule the
planner applies: the 22 G needle's radius plus the 3 mm clearance margin (restated here, not
imported). With ``host_bone_margin_mm`` set, the lesion's own bone within that distance of the
lesion is passable (a needle may cross the target bone's cortex); with None every bone blocks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from sample_series.anatomy import build_patient_model, with_lesion
from sample_series.geometry import lps_box_grid
from sample_series.raster import rasterize
from sample_series.spec import CaseSpec, NeedleAccess
from sample_series.tissues import LabelCode, group_mask_lut, label_lut

HOST_NEAR_LESION = 8  # survey-only code: host bone close enough to the lesion to cross
ALL_TILTS_DEG = tuple(float(t) for t in range(-40, 41, 5))
# The clinical clearance rule (CLINICAL.md, README CTPLAN_CLEARANCE_MARGIN_MM): a 22 G needle
# (outer diameter 0.72 mm) keeps its radius plus a 3 mm margin from every forbidden structure.
NEEDLE_RADIUS_MM = 0.36
CLEARANCE_MARGIN_MM = 3.0
# Clearances are measured exactly up to this many grid steps (5 mm on the 1 mm grid).
CLEARANCE_REACH_VOXELS = 5


@dataclass(frozen=True)
class SurveySettings:
    tilts_deg: tuple[float, ...] = ALL_TILTS_DEG
    azimuth_step_deg: float = 3.0
    max_depth_mm: float = 150.0
    clearance_mm: float = NEEDLE_RADIUS_MM + CLEARANCE_MARGIN_MM
    grace_mm: float = 3.0
    sample_mm: float = 1.0
    grid_mm: float = 1.0
    host_bone_margin_mm: float | None = None


@dataclass(frozen=True)
class PathSurvey:
    settings: SurveySettings
    safe_tilts_deg: tuple[float, ...]  # surveyed tilts with at least one safe route
    best_entry_lps_mm: tuple[float, float, float] | None  # skin entry of the least tilted route
    best_target_lps_mm: tuple[float, float, float] | None
    blocked_by: tuple[tuple[str, float], ...]  # first obstacle of failed rays, fraction
    # per surveyed tilt, the most clearance (mm, at most 5) of a route that reaches the skin
    # through soft tissue only (0 when none does): safe where it is at least clearance_mm
    clearance_by_tilt_mm: tuple[tuple[float, float], ...] = ()

    @property
    def min_tilt_deg(self) -> float | None:
        return min((abs(t) for t in self.safe_tilts_deg), default=None)


def _targets(spec: CaseSpec) -> npt.NDArray[np.float64]:
    pts = [np.asarray(spec.lesion.measures.centroid_lps_mm)]
    for lobe in spec.lesion.lobes:
        c = np.asarray(lobe.centre_lps_mm)
        pts.append(c)
        for axis, s in zip(lobe.axes, lobe.semi_axes_mm, strict=True):
            for sign in (1.0, -1.0):
                pts.append(c + sign * 0.85 * s * np.asarray(axis))
    arr = np.array(pts)
    return arr[spec.lesion.contains(arr)]


def _survey_labels(spec: CaseSpec, s: SurveySettings) -> tuple[npt.NDArray[np.uint8], np.ndarray]:
    """Label grid (with a one-voxel air border) and its origin."""
    model = build_patient_model(spec.region, spec.position, spec.contrast)
    lo, hi = spec.lesion.bounds()
    reach = s.max_depth_mm + s.clearance_mm
    dz = reach * np.sin(np.radians(max(abs(t) for t in s.tilts_deg))) + s.clearance_mm
    grid = lps_box_grid(lo - [reach, reach, dz], hi + [reach, reach, dz], s.grid_mm)
    ids = rasterize(with_lesion(model, spec.lesion), grid)
    labels = label_lut()[ids]
    if s.host_bone_margin_mm is not None:
        host = group_mask_lut(frozenset({spec.bone_group}))[ids] & (labels == LabelCode.BONE)
        near = labels == LabelCode.LESION
        for _ in range(int(round(s.host_bone_margin_mm / s.grid_mm))):  # cube dilation
            grown = near.copy()
            for axis in range(3):
                grown[(slice(None),) * axis + (slice(1, None),)] |= near[
                    (slice(None),) * axis + (slice(None, -1),)
                ]
                grown[(slice(None),) * axis + (slice(None, -1),)] |= near[
                    (slice(None),) * axis + (slice(1, None),)
                ]
            near = grown
        labels[host & near] = HOST_NEAR_LESION
    origin = np.asarray(grid.origin_lps_mm) - s.grid_mm
    return np.pad(labels, 1, constant_values=LabelCode.AIR), origin


def _clearance_mm(forbidden: npt.NDArray[np.bool_], grid_mm: float) -> np.ndarray:
    """Distance (mm) from every grid point to the nearest forbidden voxel, exact up to
    ``CLEARANCE_REACH_VOXELS`` voxels, inf beyond.

    Separable squared Euclidean distance (one pass per axis: the minimum over the offsets
    along that axis of the previous pass plus the offset squared), kept in uint8."""
    far = np.uint8(200)  # > 3 * CLEARANCE_REACH_VOXELS**2: "farther than the reach"
    sq = np.where(forbidden, np.uint8(0), far)
    for axis in range(3):
        out = sq.copy()
        n = sq.shape[axis]
        for step in range(1, min(CLEARANCE_REACH_VOXELS, n - 1) + 1):
            add = np.uint8(step * step)
            lo = (slice(None),) * axis + (slice(0, n - step),)
            hi = (slice(None),) * axis + (slice(step, n),)
            np.minimum(out[lo], sq[hi] + add, out=out[lo])
            np.minimum(out[hi], sq[lo] + add, out=out[hi])
        sq = np.minimum(out, far)
    dist = np.sqrt(sq.astype(np.float32))
    dist[dist > CLEARANCE_REACH_VOXELS] = np.inf  # the nearest may lie outside the cube
    return dist * np.float32(grid_mm)


def _nearest_forbidden(
    lookup: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.uint8]],
    points: npt.NDArray[np.float64],
    passable: list[int],
    reach_mm: float,
    grid_mm: float,
) -> npt.NDArray[np.int64]:
    """Label of the forbidden voxel nearest each point (within ``reach_mm``; 254 if none)."""
    r = int(np.ceil(reach_mm / grid_mm)) + 1
    g = np.arange(-r, r + 1) * grid_mm
    offsets = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    offsets = offsets[np.argsort((offsets**2).sum(axis=1), kind="stable")]
    labels = lookup(points[:, None, :] + offsets[None, :, :])
    forbidden = ~np.isin(labels, [*passable, LabelCode.AIR])
    first = np.argmax(forbidden, axis=1)
    found = forbidden[np.arange(len(points)), first]
    return np.where(found, labels[np.arange(len(points)), first], 254).astype(np.int64)


@lru_cache(maxsize=128)
def survey_paths(spec: CaseSpec, settings: SurveySettings = SurveySettings()) -> PathSurvey:
    s = settings
    labels, origin = _survey_labels(spec, s)
    upper = np.array(labels.shape[::-1]) - 1  # (i, j, k) maxima
    flat = labels.reshape(-1)
    nj, ni = labels.shape[1], labels.shape[2]

    def flat_index(p: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        idx = np.rint((p - origin) / s.grid_mm).astype(np.int64)
        np.clip(idx, 0, upper, out=idx)
        return (idx[..., 2] * nj + idx[..., 1]) * ni + idx[..., 0]

    def lookup(p: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
        return flat[flat_index(p)]

    tilts = np.repeat(np.asarray(s.tilts_deg), int(round(360.0 / s.azimuth_step_deg)))
    az = np.radians(np.tile(np.arange(0.0, 360.0, s.azimuth_step_deg), len(s.tilts_deg)))
    t = np.radians(tilts)
    dirs = np.stack([np.cos(t) * np.cos(az), np.cos(t) * np.sin(az), np.sin(t)], axis=1)
    n = int(s.max_depth_mm / s.sample_mm) + 2
    depth = np.arange(n) * s.sample_mm
    steps = np.arange(n)[None, :]
    passable: list[int] = [LabelCode.SOFT_TISSUE, LabelCode.LESION]
    if s.host_bone_margin_mm is not None:
        passable.append(HOST_NEAR_LESION)
    forbidden = ~np.isin(labels, [*passable, LabelCode.AIR])
    # Bone near the target may be the target's own (periosteum); anything else may not.
    is_bone = labels == LabelCode.BONE
    bone_clear = _clearance_mm(forbidden & is_bone, s.grid_mm).reshape(-1)
    other_clear = _clearance_mm(forbidden & ~is_bone, s.grid_mm).reshape(-1)
    del forbidden, is_bone
    reach_mm = CLEARANCE_REACH_VOXELS * s.grid_mm
    rows = np.arange(len(dirs))
    safe: set[float] = set()
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    obstacles: Counter[str] = Counter()
    by_tilt: dict[float, float] = {float(x): 0.0 for x in s.tilts_deg}
    for target in _targets(spec):
        ray = target + depth[None, :, None] * dirs[:, None, :]
        cells = flat_index(ray)  # (M, n)
        centre = flat[cells]
        exit_m = np.argmin(centre == LabelCode.LESION, axis=1)
        bad = ~np.isin(centre, passable) & (steps >= exit_m[:, None])
        stop_m = np.where(bad.any(axis=1), np.argmax(bad, axis=1), n - 1)
        stop_label = centre[rows, stop_m]
        reaches_skin = bad.any(axis=1) & (stop_label == LabelCode.AIR)
        obstacle = np.where(bad.any(axis=1), stop_label, 254).astype(np.int64)
        before_skin = steps < stop_m[:, None]
        past_grace = steps >= (exit_m + int(np.ceil(s.grace_mm / s.sample_mm)))[:, None]
        along = np.minimum(
            np.where(before_skin & past_grace, bone_clear[cells], np.inf),
            np.where(before_skin, other_clear[cells], np.inf),
        )
        worst = np.argmin(along, axis=1)
        clearance = along[rows, worst]
        ok = reaches_skin & (clearance >= s.clearance_mm)
        for m in np.flatnonzero(reaches_skin):
            tilt = float(tilts[m])
            by_tilt[tilt] = max(by_tilt[tilt], min(float(clearance[m]), reach_mm))
        close = np.flatnonzero(reaches_skin & ~ok)
        if close.size:
            points = ray[close, worst[close]]
            obstacle[close] = _nearest_forbidden(
                lookup, points, passable, s.clearance_mm, s.grid_mm
            )
        obstacles.update(_obstacle_name(int(v)) for v in obstacle[~ok])
        for m in np.nonzero(ok)[0]:
            safe.add(float(tilts[m]))
            if best is None or abs(tilts[m]) < best[0]:
                best = (abs(float(tilts[m])), target, target + depth[stop_m[m]] * dirs[m])
    total = max(sum(obstacles.values()), 1)
    return PathSurvey(
        settings=s,
        safe_tilts_deg=tuple(sorted(safe)),
        best_entry_lps_mm=None if best is None else _v3(best[2]),
        best_target_lps_mm=None if best is None else _v3(best[1]),
        blocked_by=tuple((k, v / total) for k, v in obstacles.most_common()),
        clearance_by_tilt_mm=tuple(sorted(by_tilt.items())),
    )


def _v3(p: np.ndarray) -> tuple[float, float, float]:
    return (float(p[0]), float(p[1]), float(p[2]))


def _obstacle_name(label: int) -> str:
    if label == 254:
        return "deeper than the longest needle"
    if label == HOST_NEAR_LESION:
        return "bone"
    return LabelCode(label).name.lower().replace("_", " ")


@dataclass(frozen=True)
class AccessCheck:
    declared: NeedleAccess
    consistent: bool
    evidence: tuple[PathSurvey, ...]


def check_access(
    spec: CaseSpec, base: SurveySettings = SurveySettings(), host_margin_mm: float = 5.0
) -> AccessCheck:
    """Survey only what the declared access claims, under strict and lenient bone rules:
    IN_PLANE - a safe route at tilt 0 with every bone blocking;
    TILTED_ONLY - none within 10 degrees even when the target bone near the lesion may be
    crossed, and one between 15 and 40 degrees with every bone blocking;
    NONE - none within 40 degrees even when the target bone near the lesion may be crossed.
    """
    strict = replace(base, host_bone_margin_mm=None)
    lenient = replace(base, host_bone_margin_mm=host_margin_mm)
    tilts = base.tilts_deg
    if spec.access is NeedleAccess.IN_PLANE:
        sv = survey_paths(spec, replace(strict, tilts_deg=(0.0,)))
        return AccessCheck(spec.access, bool(sv.safe_tilts_deg), (sv,))
    if spec.access is NeedleAccess.TILTED_ONLY:
        near = survey_paths(
            spec, replace(lenient, tilts_deg=tuple(t for t in tilts if abs(t) <= 10))
        )
        far = survey_paths(
            spec, replace(strict, tilts_deg=tuple(t for t in tilts if 15 <= abs(t) <= 40))
        )
        return AccessCheck(
            spec.access, not near.safe_tilts_deg and bool(far.safe_tilts_deg), (near, far)
        )
    sv = survey_paths(spec, replace(lenient, tilts_deg=tuple(t for t in tilts if abs(t) <= 40)))
    return AccessCheck(spec.access, not sv.safe_tilts_deg, (sv,))

"""Independent survey of straight needle routes to a lesion, on the analytic patient model.

Input: a case spec (patient model + lesion) and :class:`SurveySettings`. Output:
:class:`PathSurvey`: the craniocaudal tilts at which a safe straight route exists and what
blocks the others. :func:`check_access` classifies a case as
:class:`~sample_series.spec.NeedleAccess`; the tests hold every catalogue case to its
declared access under both readings of "bone other than the target" (below).

Method: the model (with the lesion) is painted on a 1 mm LPS label grid around the lesion.
From target points inside the lesion (lobe centres, the centroid and points at 85 % of each
semi-axis) rays are cast every 3 degrees of azimuth at each requested tilt (angle to the
axial plane). A route is safe when, after leaving the lesion, the ray meets only soft tissue
(or lesion) until it leaves the skin within ``max_depth_mm``, and four parallel rays
``clearance_mm`` away stay clear of bone, lung, canal, vessels and the table too (they are not
checked in the first ``grace_mm`` after the lesion, where the tip sits against its target).
With ``host_bone_margin_mm`` set, the lesion's own bone within that distance of the lesion
is passable (a needle may cross the target bone's cortex); with None every bone blocks.
"""

from __future__ import annotations

from collections import Counter
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


@dataclass(frozen=True)
class SurveySettings:
    tilts_deg: tuple[float, ...] = ALL_TILTS_DEG
    azimuth_step_deg: float = 3.0
    max_depth_mm: float = 150.0
    clearance_mm: float = 2.5
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


@lru_cache(maxsize=128)
def survey_paths(spec: CaseSpec, settings: SurveySettings = SurveySettings()) -> PathSurvey:
    s = settings
    labels, origin = _survey_labels(spec, s)
    upper = np.array(labels.shape[::-1]) - 1  # (i, j, k) maxima
    flat = labels.reshape(-1)
    nj, ni = labels.shape[1], labels.shape[2]

    def lookup(p: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
        idx = np.rint((p - origin) / s.grid_mm).astype(np.int64)
        np.clip(idx, 0, upper, out=idx)
        return flat[(idx[..., 2] * nj + idx[..., 1]) * ni + idx[..., 0]]

    tilts = np.repeat(np.asarray(s.tilts_deg), int(round(360.0 / s.azimuth_step_deg)))
    az = np.radians(np.tile(np.arange(0.0, 360.0, s.azimuth_step_deg), len(s.tilts_deg)))
    t = np.radians(tilts)
    dirs = np.stack([np.cos(t) * np.cos(az), np.cos(t) * np.sin(az), np.sin(t)], axis=1)
    p1 = np.cross(dirs, [0.0, 0.0, 1.0])
    p1 /= np.linalg.norm(p1, axis=1, keepdims=True)
    p2 = np.cross(dirs, p1)
    n = int(s.max_depth_mm / s.sample_mm) + 2
    depth = np.arange(n) * s.sample_mm
    steps = np.arange(n)[None, :]
    passable: list[int] = [LabelCode.SOFT_TISSUE, LabelCode.LESION]
    if s.host_bone_margin_mm is not None:
        passable.append(HOST_NEAR_LESION)
    rows = np.arange(len(dirs))
    safe: set[float] = set()
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    obstacles: Counter[str] = Counter()
    for target in _targets(spec):
        ray = depth[None, :, None] * dirs[:, None, :]
        centre = lookup(target + ray)  # (M, n)
        exit_m = np.argmin(centre == LabelCode.LESION, axis=1)
        bad = ~np.isin(centre, passable) & (steps >= exit_m[:, None])
        stop_m = np.where(bad.any(axis=1), np.argmax(bad, axis=1), n - 1)
        stop_label = centre[rows, stop_m]
        ok = bad.any(axis=1) & (stop_label == LabelCode.AIR)
        obstacle = np.where(bad.any(axis=1), stop_label, 254).astype(np.int64)
        window = (steps >= (exit_m + int(np.ceil(s.grace_mm / s.sample_mm)))[:, None]) & (
            steps < stop_m[:, None]
        )
        for off in (
            s.clearance_mm * p1,
            -s.clearance_mm * p1,
            s.clearance_mm * p2,
            -s.clearance_mm * p2,
        ):
            lab = lookup(target + off[:, None, :] + ray)
            off_bad = window & ~np.isin(lab, [*passable, LabelCode.AIR])
            hit = off_bad.any(axis=1) & ok
            obstacle[hit] = lab[hit, np.argmax(off_bad[hit], axis=1)]
            ok &= ~hit
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

"""The planning pipeline, composed in one visible place.

Input: a :class:`~planner.volume.CTVolume` (with its :class:`~planner.anatomy.Anatomy`), a
:class:`PlanRequest` and :class:`~planner.rules.PlanningRules`.
Output: :class:`Plan`: the request and rules that produced it, the lesion measurement, the dose
card, the needle paths, the structures checked and every warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from scipy.spatial import cKDTree

from planner.anatomy import Anatomy
from planner.dosing import DoseCard, Site, dose_card
from planner.errors import InvalidSeed
from planner.lesion import LesionMask, segment_lesion
from planner.measure import Measurement, measure_lesion
from planner.rules import PlanningRules
from planner.trajectory import UP_LPS, TrajectoryResult, plan_trajectories
from planner.volume import CTVolume

Point = tuple[float, float, float]


def software_version() -> str:
    try:
        return version("ctplan")
    except PackageNotFoundError:
        return "unknown"


class TargetMode(StrEnum):
    INTRATUMORAL = "intratumoral"


@dataclass(frozen=True)
class PlanRequest:
    seed_lps_mm: Point
    patient_position: str | None = None
    target_mode: TargetMode = TargetMode.INTRATUMORAL
    site: Site | None = None
    search_radius_mm: float | None = None
    hu_window: tuple[float, float] | None = None


@dataclass(frozen=True)
class Plan:
    request: PlanRequest
    rules: PlanningRules
    software_version: str
    patient_position: str
    lesion: LesionMask
    measurement: Measurement
    dose: DoseCard
    target_lps_mm: Point
    trajectory: TrajectoryResult
    warnings: tuple[str, ...]


def spine_distance_mm(volume: CTVolume, anatomy: Anatomy, lesion: LesionMask) -> float | None:
    """Shortest distance (mm) from the lesion to the vertebral column or spinal canal."""
    spine = anatomy.spine | anatomy.canal
    if not spine.any():
        return None
    spine_pts = volume.geometry.kji_to_lps(np.argwhere(spine))
    lesion_pts = volume.geometry.kji_to_lps(lesion.points_kji())
    distances, _ = cKDTree(spine_pts).query(lesion_pts, k=1)
    return float(distances.min())


def _target_on_slice(volume: CTVolume, lesion: LesionMask, centre: Point) -> Point:
    """The lesion centre moved onto the nearest CT slice, so an axial path can reach it."""
    geo = volume.geometry
    kji = geo.lps_to_kji(centre)
    snapped = np.array([np.rint(kji[0]), kji[1], kji[2]])
    idx = tuple(int(v) for v in np.rint(snapped))
    if lesion.full_mask(geo.shape)[idx]:
        p = geo.kji_to_lps(snapped)
        return (float(p[0]), float(p[1]), float(p[2]))
    return centre


def make_plan(
    volume: CTVolume, anatomy: Anatomy, request: PlanRequest, rules: PlanningRules
) -> Plan:
    """Segment, measure, dose and plan the needle path for one seeded lesion."""
    position = request.patient_position or volume.patient_position
    if position not in UP_LPS:
        raise InvalidSeed(f"patient position {position!r} is not one of {', '.join(UP_LPS)}")
    lesion = segment_lesion(
        volume,
        anatomy,
        request.seed_lps_mm,
        rules.segmentation,
        search_radius_mm=request.search_radius_mm,
        hu_window=request.hu_window,
    )
    measurement = measure_lesion(lesion, volume.geometry)
    dose = dose_card(
        measurement.length_mm,
        measurement.width_mm,
        measurement.length_uncertainty_mm,
        measurement.width_uncertainty_mm,
        spine_distance_mm(volume, anatomy, lesion),
        rules.dosing,
        site=request.site,
    )
    target = _target_on_slice(volume, lesion, measurement.center_lps_mm)
    trajectory = plan_trajectories(volume, anatomy, lesion, target, position, rules.trajectory)
    warnings = list(volume.warnings) + list(anatomy.warnings)
    if lesion.touches_search_limit:
        warnings.append(
            "the segmented lesion reaches the search radius: it may have leaked into "
            "neighbouring tissue; check the outline"
        )
    if dose.borderline:
        alt = " or ".join(f"{v:g} mL" for v in dose.alternative_anaesthetic_ml)
        lo, hi = dose.volume_interval_ml
        warnings.append(
            f"BORDERLINE dose: volume {dose.caliper_volume_ml:.1f} mL "
            f"(interval {lo:.1f}–{hi:.1f} mL) crosses a tier boundary; "
            f"{dose.anaesthetic_ml:g} mL suggested, {alt} possible: radiologist to decide"
        )
    if dose.suggested_needles > len(trajectory.needles) and trajectory.needles:
        warnings.append(
            f"{dose.suggested_needles} needles suggested for this lesion size; "
            f"only {len(trajectory.needles)} path planned"
        )
    warnings += [w for w in trajectory.warnings if w not in warnings]
    return Plan(
        request=request,
        rules=rules,
        software_version=software_version(),
        patient_position=position,
        lesion=lesion,
        measurement=measurement,
        dose=dose,
        target_lps_mm=target,
        trajectory=trajectory,
        warnings=tuple(warnings),
    )

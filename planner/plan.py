"""The planning pipeline, composed in one visible place.

Input: a :class:`~planner.volume.CTVolume` (with its :class:`~planner.anatomy.Anatomy`), a
:class:`PlanRequest` and :class:`~planner.rules.PlanningRules`.
Output: :class:`Plan`: the request and rules that produced it, the lesion measurement, the dose
card, the needle paths, the structures checked and every warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from scipy.spatial import cKDTree

from planner.anatomy import Anatomy
from planner.dosing import DoseCard, Site, dose_card
from planner.errors import InvalidSeed
from planner.lesion import (
    LesionMask,
    segment_lesion,
    unseen_edge_warning,
    unvalidated_grid_warning,
)
from planner.manual import ManualMeasurement, manual_lesion
from planner.measure import Measurement, MeasurementMode, measure_lesion
from planner.rules import PlanningRules
from planner.target import TargetMode, choose_targets, fill_targets
from planner.trajectory import UP_LPS, NeedlePath, TrajectoryResult, plan_trajectories
from planner.volume import CTVolume

Point = tuple[float, float, float]
TARGET_CANDIDATES = 5
# Two needles in one session keep at least this distance between their shafts.
MIN_NEEDLE_GAP_MM = 5.0
SPINE_SEARCH_MM = 60.0


def software_version() -> str:
    try:
        return version("ctplan")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class PlanRequest:
    """A seed to segment from, or (manual mode) the radiologist's own measurement.

    ``measurement_mode`` says how L and W are measured on the segmented lesion (3-D or on one
    axial slice); in manual mode the radiologist's own L and W are used whatever it says.
    """

    seed_lps_mm: Point | None = None
    manual: ManualMeasurement | None = None
    patient_position: str | None = None
    target_mode: TargetMode = TargetMode.PERIOSTEAL
    measurement_mode: MeasurementMode = MeasurementMode.THREE_D
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
    target_kind: str
    trajectory: TrajectoryResult
    warnings: tuple[str, ...]


def spine_distance_mm(volume: CTVolume, anatomy: Anatomy, lesion: LesionMask) -> float | None:
    """Shortest distance (mm) from the lesion to the vertebral column or spinal canal."""
    geo = volume.geometry
    lesion_pts = geo.kji_to_lps(lesion.points_kji())

    def nearest_mm(spine_kji: np.ndarray) -> float:
        distances, _ = cKDTree(geo.kji_to_lps(spine_kji)).query(lesion_pts, k=1)
        return float(distances.min())

    # First within SPINE_SEARCH_MM around the lesion: a distance under that margin found
    # there is the shortest; a farther spine needs the whole volume.
    margin = [int(np.ceil(SPINE_SEARCH_MM / sp)) for sp in geo.spacing_kji_mm()]
    start = np.maximum(np.asarray(lesion.offset_kji) - margin, 0)
    stop = np.minimum(np.asarray(lesion.offset_kji) + lesion.mask.shape + margin, geo.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(start, stop, strict=True))
    near = np.argwhere(anatomy.spine[box] | anatomy.canal[box])
    if near.size and (d := nearest_mm(near + start)) <= SPINE_SEARCH_MM:
        return d
    everywhere = np.argwhere(anatomy.spine | anatomy.canal)
    return nearest_mm(everywhere) if everywhere.size else None


def _merge_warnings(results: list[TrajectoryResult], found: bool) -> tuple[str, ...]:
    """Warnings of every target's search, each once; of the failure reasons only the first
    target's, and only when no needle was found."""
    out: list[str] = []
    failures = 0
    for r in results:
        for w in r.warnings:
            if w.startswith(("no safe straight path", "no reachable skin")):
                failures += 1
                if found or failures > 1:
                    continue
            if w not in out:
                out.append(w)
    if not found and failures > 1:
        out.append(f"the {failures - 1} other candidate target(s) gave no safe path either")
    return tuple(out)


def _segment_gap_mm(a: NeedlePath, b: NeedlePath) -> float:
    """Smallest distance between two needle segments (sampled every ~1 mm)."""

    def samples(n: NeedlePath) -> np.ndarray:
        e, t = np.asarray(n.entry_lps_mm), np.asarray(n.target_lps_mm)
        steps = max(2, int(np.linalg.norm(t - e)))
        return e + np.linspace(0.0, 1.0, steps)[:, None] * (t - e)

    pa, pb = samples(a), samples(b)
    return float(np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(axis=2).min()))


def _select_needles(
    results: list[TrajectoryResult], count: int
) -> tuple[tuple[NeedlePath, ...], tuple[NeedlePath, ...]]:
    """Best path first; further needles to other targets, none crossing a chosen one."""
    options = sorted(
        (p for r in results for p in (*r.needles, *r.alternatives)), key=lambda p: p.score.total
    )
    chosen: list[NeedlePath] = []
    for path in options:
        if len(chosen) == count:
            break
        if any(
            np.allclose(path.target_lps_mm, c.target_lps_mm)
            or _segment_gap_mm(path, c) < MIN_NEEDLE_GAP_MM
            for c in chosen
        ):
            continue
        chosen.append(path)
    if not chosen:
        return (), ()
    alternatives = tuple(
        p
        for p in options
        if p not in chosen and np.allclose(p.target_lps_mm, chosen[0].target_lps_mm)
    )[:3]
    return tuple(chosen), alternatives


def make_plan(
    volume: CTVolume, anatomy: Anatomy, request: PlanRequest, rules: PlanningRules
) -> Plan:
    """Segment (or take the manual measurement), dose and plan the needle paths."""
    position = request.patient_position or volume.patient_position
    if position not in UP_LPS:
        raise InvalidSeed(f"patient position {position!r} is not one of {', '.join(UP_LPS)}")
    if request.manual is not None:
        lesion, measurement = manual_lesion(request.manual, volume.geometry)
    elif request.seed_lps_mm is not None:
        lesion = segment_lesion(
            volume,
            anatomy,
            request.seed_lps_mm,
            rules.segmentation,
            search_radius_mm=request.search_radius_mm,
            hu_window=request.hu_window,
        )
        measurement = measure_lesion(
            lesion,
            volume.geometry,
            request.measurement_mode,
            outline_error_mm=rules.segmentation.outline_error_mm,
        )
    else:
        raise InvalidSeed("give a seed point in the lesion, or the lesion's centre and size")
    dose = dose_card(
        measurement.length_mm,
        measurement.width_mm,
        measurement.length_uncertainty_mm,
        measurement.width_uncertainty_mm,
        spine_distance_mm(volume, anatomy, lesion),
        rules.dosing,
        site=request.site,
    )
    wanted = dose.suggested_needles
    targets, target_warnings = choose_targets(
        volume,
        anatomy,
        lesion,
        measurement.center_lps_mm,
        UP_LPS[position],
        request.target_mode,
        count=max(TARGET_CANDIDATES, 2 * wanted),
    )
    results = [
        plan_trajectories(volume, anatomy, lesion, t.lps_mm, position, rules.trajectory)
        for t in targets
    ]
    if not any(r.needles for r in results) and request.target_mode is TargetMode.PERIOSTEAL:
        # Before saying there is no safe path, the rest of the junction is tried.
        tried = [t.lps_mm for t in targets]
        for extra in fill_targets(volume, anatomy, lesion, tried):
            results.append(
                plan_trajectories(volume, anatomy, lesion, extra.lps_mm, position, rules.trajectory)
            )
            targets = (*targets, extra)
            if results[-1].needles:
                break
    needles, alternatives = _select_needles(results, wanted)
    trajectory = TrajectoryResult(
        needles=needles,
        alternatives=alternatives,
        up_side=results[0].up_side,
        structures_checked=results[0].structures_checked,
        candidates_evaluated=sum(r.candidates_evaluated for r in results),
        candidates_checked=sum(r.candidates_checked for r in results),
        warnings=_merge_warnings(results, bool(needles)),
    )
    target = needles[0].target_lps_mm if needles else targets[0].lps_mm
    target_kind = next((t.kind for t in targets if np.allclose(t.lps_mm, target)), targets[0].kind)
    warnings = list(volume.warnings) + list(anatomy.warnings) + list(target_warnings)
    if request.manual is None and (grid := unvalidated_grid_warning(volume, rules.segmentation)):
        warnings.insert(0, grid)
    if unseen := unseen_edge_warning(lesion, rules.segmentation):
        warnings.insert(0, unseen)
    mode = MeasurementMode(request.measurement_mode)
    if request.manual is not None and mode is not MeasurementMode.THREE_D:
        warnings.append(
            f"measurement mode {mode.value!r} not applied: in manual mode "
            "the length and width are the ones you gave"
        )
    if needles and needles[0].craniocaudal_angle_deg > 0.5:
        warnings.append(
            f"no in-plane (axial) path: the best path is tilted "
            f"{needles[0].craniocaudal_angle_deg:.0f}° toward the "
            f"{needles[0].craniocaudal_tilt_toward}; check it on an oblique reformat"
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
            f"{dose.suggested_needles} needles suggested for this lesion size; only "
            f"{len(trajectory.needles)} non-crossing safe path(s) found"
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
        target_kind=target_kind,
        trajectory=trajectory,
        warnings=tuple(warnings),
    )

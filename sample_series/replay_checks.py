"""Compare one plan, as the service answered it (JSON), with the case's ground truth.

Input: the plan JSON of ``POST /series/{uid}/plans``, :class:`~sample_series.truth.GroundTruth`,
the label volume and its grid, :class:`Tolerances`. Output: :class:`Evaluation` (figures,
one :class:`NeedleCheck` per needle, every :class:`Check` with the stage it belongs to, notes).

Stages: ``ingest`` (C-STORE and series completion), ``measurement`` (L, W), ``dosing``
(anaesthetic tier, steroid, borderline flag), ``trajectory`` (needle paths), ``output`` (the
answer itself: HTTP status, fields, figures that disagree with each other).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from sample_series.geometry import GridGeometry
from sample_series.replay_paths import (
    PathReport,
    check_path,
    distance_to_label,
    half_voxel_diagonal_mm,
)
from sample_series.tissues import LabelCode
from sample_series.truth import GroundTruth, anaesthetic_tier, caliper_volume_ml

MIN_TILT_DEG = 1.0  # a "tilted" needle leaves the axial plane by more than this
DEPTH_AGREEMENT_MM = 0.5
ANGLE_AGREEMENT_DEG = 1.0
_NO_PATH_WORDING = re.compile(r"\bno\b.*\b(path|route|entry|skin)\b", re.IGNORECASE)


class Stage(StrEnum):
    INGEST = "ingest"
    MEASUREMENT = "measurement"
    DOSING = "dosing"
    TRAJECTORY = "trajectory"
    OUTPUT = "output"


@dataclass(frozen=True)
class Check:
    name: str
    stage: Stage
    ok: bool
    detail: str

    @property
    def label(self) -> str:
        return f"{self.stage.value}:{self.name}"


@dataclass(frozen=True)
class Tolerances:
    tol_mm: float = 1.5  # L and W error <= max(tol_mm, tol_voxels x largest voxel spacing)
    tol_voxels: float = 1.5
    skin_tol_mm: float = 1.0  # entry to skin <= skin_tol_mm + half the voxel diagonal
    bone_allowance_mm: float = 6.0  # bone allowed this close to the target
    max_up_angle_deg: float = 90.0  # skin normal at the entry vs the truth's up direction

    def measurement_mm(self, geometry: GridGeometry) -> float:
        return max(self.tol_mm, self.tol_voxels * max(geometry.spacing_mm))

    def skin_mm(self, geometry: GridGeometry) -> float:
        return self.skin_tol_mm + half_voxel_diagonal_mm(geometry)


@dataclass(frozen=True)
class NeedleCheck:
    index: int  # 1-based, as the radiologist counts them
    entry_lps_mm: tuple[float, float, float]
    target_lps_mm: tuple[float, float, float]
    needle_length_mm: float
    depth_mm: float
    craniocaudal_angle_deg: float
    geometric_craniocaudal_deg: float
    path: PathReport


@dataclass(frozen=True)
class Evaluation:
    length_error_mm: float | None
    width_error_mm: float | None
    centre_error_mm: float | None  # plan's lesion centre to the truth's
    measurement_tolerance_mm: float
    skin_tolerance_mm: float
    anaesthetic_ml: float | None
    steroid: str | None
    borderline: bool | None
    needles: tuple[NeedleCheck, ...]
    checks: tuple[Check, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Figures:
    """The plan JSON's figures the checks use, typed."""

    length_mm: float
    width_mm: float
    centre_lps_mm: tuple[float, float, float] | None
    volume_ml: float
    anaesthetic_ml: float
    alternatives_ml: tuple[float, ...]
    borderline: bool
    steroid: str
    spine_distance_mm: float | None
    needles: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]

    @classmethod
    def parse(cls, plan: dict[str, Any]) -> _Figures:
        lesion, dose = plan["lesion"], plan["dose"]
        centre = lesion.get("center_lps_mm")
        spine = dose.get("spine_distance_mm")
        return cls(
            length_mm=float(lesion["length_mm"]),
            width_mm=float(lesion["width_mm"]),
            centre_lps_mm=None if centre is None else _vec3(centre),
            volume_ml=float(dose["caliper_volume_ml"]),
            anaesthetic_ml=float(dose["anaesthetic_ml"]),
            alternatives_ml=tuple(float(a) for a in dose.get("alternative_anaesthetic_ml") or []),
            borderline=bool(dose["borderline"]),
            steroid=str(dose["steroid"]),
            spine_distance_mm=None if spine is None else float(spine),
            needles=tuple(plan["needles"]),
            warnings=tuple(str(w) for w in plan.get("warnings") or []),
        )


def evaluate(
    plan: dict[str, Any],
    truth: GroundTruth,
    labels: npt.NDArray[np.uint8],
    geometry: GridGeometry,
    tol: Tolerances,
) -> Evaluation:
    """Every check of one plan against the truth (no network, no files)."""
    tol_mm = tol.measurement_mm(geometry)
    skin_mm = tol.skin_mm(geometry)
    try:
        f = _Figures.parse(plan)
    except (KeyError, TypeError, ValueError) as exc:
        bad = Check("plan fields", Stage.OUTPUT, False, f"malformed plan JSON: {exc!r}")
        return Evaluation(None, None, None, tol_mm, skin_mm, None, None, None, (), (bad,), ())

    checks: list[Check] = []
    l_err, w_err = f.length_mm - truth.length_mm, f.width_mm - truth.width_mm
    for name, err, got, want in (
        ("length", l_err, f.length_mm, truth.length_mm),
        ("width", w_err, f.width_mm, truth.width_mm),
    ):
        detail = f"{got:.1f} mm vs truth {want:.1f} mm (error {err:+.1f}, limit {tol_mm:.1f})"
        checks.append(Check(name, Stage.MEASUREMENT, abs(err) <= tol_mm, detail))
    centre_err = None
    if f.centre_lps_mm is not None:
        centre_err = float(np.linalg.norm(np.subtract(f.centre_lps_mm, truth.lesion_centre_lps_mm)))
        off = distance_to_label(labels, geometry, f.centre_lps_mm, LabelCode.LESION)
        detail = (
            f"measured centre {off:.1f} mm from the lesion (limit {tol_mm:.1f}), "
            f"{centre_err:.1f} mm from the truth's centre"
        )
        checks.append(Check("position", Stage.MEASUREMENT, off <= tol_mm, detail))

    checks += _dosing(truth, f)
    notes: list[str] = []
    if f.borderline and not truth.borderline:
        notes.append(
            f"planner flags borderline (V {f.volume_ml:.2f} mL) where the truth does not "
            f"(V {truth.caliper_volume_ml:.2f} mL): conservative, not a failure"
        )

    needles: list[NeedleCheck] = []
    try:
        for n, needle in enumerate(f.needles, start=1):
            needles.append(_needle(n, needle, truth, labels, geometry, tol, skin_mm))
    except (KeyError, TypeError, ValueError) as exc:
        checks.append(Check("needle fields", Stage.OUTPUT, False, f"malformed needle: {exc!r}"))
    checks += _expected_path(truth, list(f.needles), list(f.warnings))
    if needles:
        checks += _trajectory(truth, needles, tol, skin_mm, tol_mm)
        checks += _consistency(needles)
    return Evaluation(
        l_err, w_err, centre_err, tol_mm, skin_mm, f.anaesthetic_ml, f.steroid, f.borderline,
        tuple(needles), tuple(checks), tuple(notes),
    )  # fmt: skip


def _dosing(truth: GroundTruth, f: _Figures) -> list[Check]:
    tiers = truth.settings.dose_tiers
    own_tier = anaesthetic_tier(f.volume_ml, tiers).anaesthetic_ml
    tier_ok = f.anaesthetic_ml == truth.anaesthetic_ml or (
        truth.borderline
        and f.anaesthetic_ml == truth.alternative_anaesthetic_ml
        and truth.anaesthetic_ml in f.alternatives_ml
    )
    why = ""
    if not tier_ok and own_tier == f.anaesthetic_ml:
        why = (
            f"; follows from the measured V {f.volume_ml:.2f} mL "
            f"(truth {truth.caliper_volume_ml:.2f})"
        )
    spine = "" if f.spine_distance_mm is None else f", planner {f.spine_distance_mm:.0f} mm"
    checks = [
        Check(
            "tier",
            Stage.DOSING,
            tier_ok,
            f"{f.anaesthetic_ml:g} mL vs truth {truth.anaesthetic_ml:g} mL{why}",
        ),
        Check(
            "steroid",
            Stage.DOSING,
            f.steroid == truth.steroid,
            f"{f.steroid} vs truth {truth.steroid} "
            f"(spine distance: truth {truth.spine_distance_mm:.0f} mm{spine})",
        ),
    ]
    if truth.borderline:
        checks.append(
            Check(
                "borderline",
                Stage.DOSING,
                f.borderline,
                f"truth is borderline (V {truth.volume_interval_ml[0]:.1f}-"
                f"{truth.volume_interval_ml[1]:.1f} mL meets two tiers); "
                f"planner flag {f.borderline}",
            )
        )
    expected_volume = caliper_volume_ml(f.length_mm, f.width_mm)
    consistent = own_tier == f.anaesthetic_ml and math.isclose(
        f.volume_ml, expected_volume, rel_tol=1e-3
    )
    checks.append(
        Check(
            "dose from own volume",
            Stage.DOSING,
            consistent,
            f"V {f.volume_ml:.2f} mL (L x W^2 / 2 = {expected_volume:.2f}) -> tier "
            f"{own_tier:g} mL, planner says {f.anaesthetic_ml:g} mL",
        )
    )
    return checks


def _needle(
    n: int,
    needle: dict[str, Any],
    truth: GroundTruth,
    labels: npt.NDArray[np.uint8],
    geometry: GridGeometry,
    tol: Tolerances,
    skin_mm: float,
) -> NeedleCheck:
    entry = _vec3(needle["entry_lps_mm"])
    target = _vec3(needle["target_lps_mm"])
    path = check_path(
        labels,
        geometry,
        entry,
        target,
        up_lps=truth.up_direction_lps,
        lesion_centre_lps_mm=truth.lesion_centre_lps_mm,
        bone_allowance_mm=tol.bone_allowance_mm,
        air_allowance_mm=skin_mm,
        max_up_angle_deg=tol.max_up_angle_deg,
    )
    direction = np.subtract(target, entry)
    norm = float(np.linalg.norm(direction))
    sin = abs(float(np.dot(direction, geometry.slice_direction))) / norm if norm else 0.0
    return NeedleCheck(
        index=n,
        entry_lps_mm=entry,
        target_lps_mm=target,
        needle_length_mm=float(needle["needle_length_mm"]),
        depth_mm=float(needle["depth_mm"]),
        craniocaudal_angle_deg=float(needle["craniocaudal_angle_deg"]),
        geometric_craniocaudal_deg=math.degrees(math.asin(min(sin, 1.0))),
        path=path,
    )


def _expected_path(truth: GroundTruth, needles: list[Any], warnings: list[str]) -> list[Check]:
    if truth.path_expected:
        return [
            Check(
                "path expected",
                Stage.TRAJECTORY,
                bool(needles),
                f"{len(needles)} needle(s); truth: {truth.needle_access} ({truth.access_note})",
            )
        ]
    reasons = [w for w in warnings if _NO_PATH_WORDING.search(w)]
    checks = [
        Check(
            "no path expected",
            Stage.TRAJECTORY,
            not needles,
            f"{len(needles)} needle(s); truth: no safe path ({truth.no_path_reason})",
        )
    ]
    if not needles:
        checks.append(
            Check(
                "no-path reason",
                Stage.OUTPUT,
                bool(reasons),
                reasons[0] if reasons else f"no warning says why there is no path: {warnings}",
            )
        )
    return checks


def _trajectory(
    truth: GroundTruth,
    needles: list[NeedleCheck],
    tol: Tolerances,
    skin_mm: float,
    target_mm: float,
) -> list[Check]:
    def check(name: str, bad: list[str], good: str) -> Check:
        return Check(name, Stage.TRAJECTORY, not bad, "; ".join(bad) if bad else good)

    crossing = [
        f"needle {x.index}: "
        + ", ".join(f"{c.structure} {c.length_mm:.1f} mm at {c.first_at_mm:.0f} mm" for c in cs)
        for x in needles
        if (cs := x.path.crossings)
    ]
    skin = [
        f"needle {x.index}: entry {x.path.skin.distance_mm:.1f} mm from the skin "
        f"({'outside' if x.path.skin.entry_outside_body else 'inside'} the body, "
        f"limit {skin_mm:.1f})"
        for x in needles
        if not x.path.skin.distance_mm <= skin_mm
    ]
    side = [
        f"needle {x.index}: skin normal {_angle(x.path.up_angle_deg)} from up "
        f"(limit {tol.max_up_angle_deg:g})"
        for x in needles
        if not x.path.faces_up
    ]
    short = [
        f"needle {x.index}: {x.needle_length_mm:g} mm needle for a {x.path.length_mm:.1f} mm path"
        for x in needles
        if x.needle_length_mm < x.path.length_mm
    ]
    far = [
        f"needle {x.index}: target {x.path.target_to_lesion_mm:.1f} mm from the lesion "
        f"(in {x.path.target_label}, limit {target_mm:.1f})"
        for x in needles
        if not x.path.target_to_lesion_mm <= target_mm
    ]
    checks = [
        check("crossing", crossing, "no forbidden structure crossed"),
        check("entry at skin", skin, f"every entry within {skin_mm:.1f} mm of the skin"),
        check("entry side", side, "every entry on up-facing skin"),
        check("needle length", short, "every needle long enough"),
        check("target at lesion", far, f"every target within {target_mm:.1f} mm of the lesion"),
    ]
    if truth.needle_access == "tilted_only":
        flat = [
            f"needle {x.index}: craniocaudal {x.craniocaudal_angle_deg:.1f}°"
            for x in needles
            if not x.craniocaudal_angle_deg > MIN_TILT_DEG
        ]
        checks.append(check("tilt", flat, "every needle tilted craniocaudally"))
    return checks


def _consistency(needles: list[NeedleCheck]) -> list[Check]:
    depth = [
        f"needle {x.index}: depth {x.depth_mm:.1f} mm, entry-target {x.path.length_mm:.1f} mm"
        for x in needles
        if abs(x.depth_mm - x.path.length_mm) > DEPTH_AGREEMENT_MM
    ]
    angle = [
        f"needle {x.index}: reported {x.craniocaudal_angle_deg:.1f}°, "
        f"entry-target {x.geometric_craniocaudal_deg:.1f}°"
        for x in needles
        if abs(x.craniocaudal_angle_deg - x.geometric_craniocaudal_deg) > ANGLE_AGREEMENT_DEG
    ]
    return [
        Check("depth figure", Stage.OUTPUT, not depth, "; ".join(depth) or "agrees"),
        Check("angle figure", Stage.OUTPUT, not angle, "; ".join(angle) or "agrees"),
    ]


def _angle(deg: float | None) -> str:
    return "unknown" if deg is None else f"{deg:.0f}°"


def _vec3(v: Any) -> tuple[float, float, float]:
    x, y, z = (float(c) for c in v)
    return (x, y, z)

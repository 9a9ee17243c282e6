"""HTTP request and response models, separate from the planner's domain objects."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from dicom_node.scu import parse_destinations
from planner.dosing import Site
from planner.plan import MeasurementMode, Plan, TargetMode
from planner.trajectory import NeedlePath
from planner.volume import PATIENT_POSITIONS

Vec3 = tuple[float, float, float]


class PlanCreate(BaseModel):
    """Seed the lesion in LPS mm, or by voxel (column, row, slice) of the position-sorted volume;
    or, in manual mode, give its centre and your own length and width (or their endpoints)."""

    seed_lps_mm: Vec3 | None = None
    seed_voxel: tuple[int, int, int] | None = None
    center_lps_mm: Vec3 | None = Field(None, description="Manual mode: lesion centre")
    length_mm: float | None = Field(None, gt=0, le=500, description="Manual mode: length L")
    width_mm: float | None = Field(None, gt=0, le=500, description="Manual mode: width W")
    length_endpoints_lps_mm: tuple[Vec3, Vec3] | None = None
    width_endpoints_lps_mm: tuple[Vec3, Vec3] | None = None
    patient_position: Literal[PATIENT_POSITIONS] | None = Field(  # type: ignore[valid-type]
        None, description="Overrides the series' PatientPosition (the table side)"
    )
    target_mode: TargetMode = Field(
        TargetMode.PERIOSTEAL,
        description="periosteal: tumour-periosteum junction (default); intratumoral: centre",
    )
    measurement_mode: MeasurementMode = Field(
        MeasurementMode.THREE_D,
        description="3d: L the largest 3-D diameter (default); axial: L and W on the axial "
        "slice where the lesion's in-plane diameter is largest. Manual mode uses your own L, W",
    )
    site: Site | None = Field(None, description="Overrides the steroid's spine-proximity rule")
    search_radius_mm: float | None = Field(None, gt=5, le=150)
    hu_window: tuple[float, float] | None = Field(None, description="HU range of the lesion")

    @model_validator(mode="after")
    def _one_seed(self) -> PlanCreate:
        given = [self.seed_lps_mm, self.seed_voxel, self.center_lps_mm]
        if sum(v is not None for v in given) != 1:
            raise ValueError(
                "give exactly one of seed_lps_mm, seed_voxel or (manual mode) center_lps_mm"
            )
        if self.center_lps_mm is not None:
            if self.length_mm is None and self.length_endpoints_lps_mm is None:
                raise ValueError("manual mode needs length_mm or length_endpoints_lps_mm")
            if self.width_mm is None and self.width_endpoints_lps_mm is None:
                raise ValueError("manual mode needs width_mm or width_endpoints_lps_mm")
        if self.seed_lps_mm is not None and not all(math.isfinite(v) for v in self.seed_lps_mm):
            raise ValueError("seed_lps_mm must be finite numbers")
        if self.hu_window is not None and self.hu_window[0] >= self.hu_window[1]:
            raise ValueError("hu_window must be [low, high] with low < high")
        return self


class Geometry(BaseModel):
    rows: int | None
    columns: int | None
    slices: int
    pixel_spacing_mm: tuple[float, float] | None
    slice_spacing_mm: float | None
    patient_position: str | None


class SeriesOut(BaseModel):
    series_uid: str
    study_uid: str
    modality: str | None
    state: Literal["receiving", "complete", "invalid"]
    invalid_reason: str | None = None
    instance_count: int
    geometry: Geometry


class LesionOut(BaseModel):
    seed_lps_mm: Vec3
    center_lps_mm: Vec3
    length_mm: float
    width_mm: float
    length_endpoints_lps_mm: tuple[Vec3, Vec3]
    width_endpoints_lps_mm: tuple[Vec3, Vec3]
    length_uncertainty_mm: float = Field(
        description="error taken on L for the volume interval: one voxel along L, plus the "
        "outline's error (CTPLAN_OUTLINE_ERROR_MM) when L was measured automatically"
    )
    width_uncertainty_mm: float = Field(
        description="error taken on W for the volume interval, as for L"
    )
    caliper_volume_ml: float
    voxel_volume_ml: float | None
    hu_window: tuple[float, float] | None
    unseen_edge_fraction: float | None = Field(
        description="share of the outline with no visible edge beyond it (null in manual mode)"
    )
    measurement_mode: MeasurementMode | None = Field(
        description="3d or axial; null in manual mode (your own L and W)"
    )
    measurement_slice_index: int | None = Field(
        description="axial mode: the slice L and W were measured on (volume order, from 0)"
    )
    measurement_slice_position_mm: float | None = Field(
        description="axial mode: that slice's position along the slice normal"
    )


class DoseOut(BaseModel):
    caliper_volume_ml: float
    volume_interval_ml: tuple[float, float]
    anaesthetic_ml: float
    borderline: bool
    alternative_anaesthetic_ml: list[float]
    steroid: str
    steroid_reason: str
    near_spine: bool
    spine_distance_mm: float | None
    contrast_ml: float
    needle_gauge: int
    max_steroid_ampoules: int
    suggested_needles: int


class NeedleOut(BaseModel):
    entry_lps_mm: Vec3
    target_lps_mm: Vec3
    depth_mm: float
    needle_length_mm: float
    in_plane_angle_deg: float
    in_plane_tilt_toward: str
    craniocaudal_angle_deg: float
    craniocaudal_tilt_toward: str
    entry_z_mm: float
    entry_slice_index: int
    lateral_offset_mm: float
    skin_angle_deg: float
    clearance_mm: dict[str, float]
    score: dict[str, float]


class OverlayOut(BaseModel):
    index: int
    title: str
    sop_instance_uid: str
    url: str


class DerivedObjectOut(BaseModel):
    """One DICOM object built for a plan; ``index`` counts objects of the same kind."""

    kind: str = Field(description="sc (overlay), seg (lesion) or sr (measurements)")
    index: int
    sop_class_uid: str
    sop_class_name: str
    sop_instance_uid: str
    url: str | None


class PushOut(BaseModel):
    """The latest outcome of sending one derived object to one destination."""

    destination: str = Field(description="AE@host:port")
    sop_instance_uid: str
    kind: str
    status: Literal["ok", "failed"]
    detail: str
    time: str = Field(description="ISO 8601, UTC")


class SendRequest(BaseModel):
    destinations: list[str] | None = Field(
        None, min_length=1, description="AE@host:port each; default: CTPLAN_PACS"
    )

    @field_validator("destinations")
    @classmethod
    def _parse(cls, v: list[str] | None) -> list[str] | None:
        for text in v or []:
            if len(parse_destinations(text)) != 1:
                raise ValueError(f"{text!r}: give one AE@host:port per list item")
        return v


class SendOut(BaseModel):
    plan_id: str
    ok: bool = Field(description="True when every object reached every destination")
    pushes: list[PushOut]


class PlanOut(BaseModel):
    plan_id: str
    series_uid: str
    study_uid: str
    created_at: str
    software_version: str
    patient_position: str
    up_side: str
    inputs: dict[str, Any]
    lesion: LesionOut
    dose: DoseOut
    target_lps_mm: Vec3
    needles: list[NeedleOut]
    alternatives: list[NeedleOut]
    structures_checked: list[str]
    candidates_evaluated: int
    overlays: list[OverlayOut]
    warnings: list[str]
    objects: list[DerivedObjectOut] = Field(default_factory=list)
    pushes: list[PushOut] = Field(
        default_factory=list,
        description="Latest push outcome per object and destination (as of the request)",
    )


def _needle(n: NeedlePath) -> NeedleOut:
    d = dataclasses.asdict(n)
    return NeedleOut(**d)


def plan_out(
    plan: Plan,
    *,
    plan_id: str,
    series_uid: str,
    study_uid: str,
    created_at: str,
    overlays: list[OverlayOut],
    objects: list[DerivedObjectOut] | None = None,
) -> PlanOut:
    m, d, t = plan.measurement, plan.dose, plan.trajectory
    return PlanOut(
        plan_id=plan_id,
        series_uid=series_uid,
        study_uid=study_uid,
        created_at=created_at,
        software_version=plan.software_version,
        patient_position=plan.patient_position,
        up_side=t.up_side,
        inputs={
            "request": dataclasses.asdict(plan.request),
            "rules": dataclasses.asdict(plan.rules),
        },
        lesion=LesionOut(
            seed_lps_mm=plan.lesion.seed_lps_mm,
            center_lps_mm=m.center_lps_mm,
            length_mm=m.length_mm,
            width_mm=m.width_mm,
            length_endpoints_lps_mm=m.length_endpoints_lps_mm,
            width_endpoints_lps_mm=m.width_endpoints_lps_mm,
            length_uncertainty_mm=m.length_uncertainty_mm,
            width_uncertainty_mm=m.width_uncertainty_mm,
            caliper_volume_ml=d.caliper_volume_ml,
            voxel_volume_ml=m.voxel_volume_ml,
            hu_window=plan.lesion.hu_window,
            unseen_edge_fraction=plan.lesion.unseen_edge_fraction,
            measurement_mode=m.mode,
            measurement_slice_index=m.slice_index,
            measurement_slice_position_mm=m.slice_position_mm,
        ),
        dose=DoseOut(
            **{
                **dataclasses.asdict(d),
                "steroid": d.steroid.value,
                "alternative_anaesthetic_ml": list(d.alternative_anaesthetic_ml),
            }
        ),
        target_lps_mm=plan.target_lps_mm,
        needles=[_needle(n) for n in t.needles],
        alternatives=[_needle(n) for n in t.alternatives],
        structures_checked=list(t.structures_checked),
        candidates_evaluated=t.candidates_evaluated,
        overlays=overlays,
        warnings=list(plan.warnings),
        objects=objects or [],
    )

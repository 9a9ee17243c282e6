from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServiceDep, StorageDep
from api.schemas import Geometry, PlanCreate, PlanOut, SeriesOut
from dicom_node.storage import SeriesRecord

router = APIRouter(prefix="/series", tags=["series"])


def _series_out(r: SeriesRecord) -> SeriesOut:
    return SeriesOut(
        series_uid=r.series_uid,
        study_uid=r.study_uid,
        modality=r.modality,
        state=r.state,  # type: ignore[arg-type]
        invalid_reason=r.invalid_reason,
        instance_count=r.instance_count,
        geometry=Geometry(
            rows=r.rows,
            columns=r.columns,
            slices=r.slices,
            pixel_spacing_mm=r.pixel_spacing_mm,
            slice_spacing_mm=r.slice_spacing_mm,
            patient_position=r.patient_position,
        ),
    )


@router.get("", response_model=list[SeriesOut])
def list_series(storage: StorageDep, service: ServiceDep) -> list[SeriesOut]:
    return [_series_out(r) for r in storage.list_series(service.stable_seconds)]


@router.get("/{series_uid}", response_model=SeriesOut)
def get_series(series_uid: str, storage: StorageDep, service: ServiceDep) -> SeriesOut:
    return _series_out(storage.get_series(series_uid, service.stable_seconds))


@router.post("/{series_uid}/plans", response_model=PlanOut, status_code=201)
def create_plan(series_uid: str, body: PlanCreate, service: ServiceDep) -> PlanOut:
    return service.create_plan(series_uid, body)

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from fastapi.responses import FileResponse, JSONResponse, Response

from api.deps import ServiceDep, StorageDep
from api.schemas import DerivedObjectOut, PlanOut, SendOut, SendRequest

router = APIRouter(prefix="/plans", tags=["plans"])

Index = Annotated[int, Query(ge=0, description="which object of that kind, from 0")]


def _dicom(storage: StorageDep, plan_id: str, kind: str, index: int) -> FileResponse:
    path = storage.derived_path(plan_id, kind, index)
    return FileResponse(path, media_type="application/dicom", filename=path.name)


@router.get("/{plan_id}", response_model=PlanOut)
def get_plan(plan_id: str, service: ServiceDep) -> JSONResponse:
    # The stored JSON as saved (older plans may lack newer fields), with the latest pushes.
    content: dict[str, Any] = service.plan_json(plan_id)
    return JSONResponse(content)


@router.get(
    "/{plan_id}/overlay",
    response_class=FileResponse,
    responses={200: {"content": {"application/dicom": {}, "image/png": {}}}},
)
def get_overlay(
    plan_id: str,
    storage: StorageDep,
    service: ServiceDep,
    index: Index = 0,
    fmt: Annotated[Literal["dicom", "png"], Query(alias="format")] = "dicom",
) -> Response:
    """The overlay Secondary Capture, or a PNG preview of its pixels with ``format=png``."""
    if fmt == "png":
        return Response(service.overlay_png(plan_id, index), media_type="image/png")
    return _dicom(storage, plan_id, "sc", index)


@router.get("/{plan_id}/sr", response_class=FileResponse)
def get_sr(plan_id: str, storage: StorageDep, index: Index = 0) -> FileResponse:
    """The measurement report (Comprehensive 3D SR, TID 1500)."""
    return _dicom(storage, plan_id, "sr", index)


@router.get("/{plan_id}/seg", response_class=FileResponse)
def get_seg(plan_id: str, storage: StorageDep, index: Index = 0) -> FileResponse:
    """The lesion segmentation (DICOM SEG, binary)."""
    return _dicom(storage, plan_id, "seg", index)


@router.get("/{plan_id}/objects", response_model=list[DerivedObjectOut])
def list_objects(plan_id: str, service: ServiceDep) -> list[DerivedObjectOut]:
    return service.objects(plan_id)


@router.post("/{plan_id}/send", response_model=SendOut)
def send_plan(
    plan_id: str, service: ServiceDep, body: Annotated[SendRequest | None, Body()] = None
) -> SendOut:
    """Send every derived object to the PACS now; each outcome is also kept with the plan."""
    return service.send(plan_id, body.destinations if body is not None else None)

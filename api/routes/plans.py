from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from api.deps import StorageDep

router = APIRouter(prefix="/plans", tags=["plans"])


@router.get("/{plan_id}")
def get_plan(plan_id: str, storage: StorageDep) -> Response:
    return Response(storage.get_plan(plan_id), media_type="application/json")


@router.get("/{plan_id}/overlay", response_class=FileResponse)
def get_overlay(
    plan_id: str, storage: StorageDep, index: Annotated[int, Query(ge=0)] = 0
) -> FileResponse:
    path = storage.derived_path(plan_id, "sc", index)
    return FileResponse(path, media_type="application/dicom", filename=path.name)

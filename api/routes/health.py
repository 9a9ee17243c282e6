from __future__ import annotations

from fastapi import APIRouter

from api.deps import SettingsDep
from planner.plan import software_version

router = APIRouter(tags=["health"])


@router.get("/health")
def health(settings: SettingsDep) -> dict[str, str | int]:
    return {
        "status": "ok",
        "version": software_version(),
        "ae_title": settings.ae_title,
        "dicom_port": settings.dicom_port,
    }

"""Dependency aliases: the routes receive what the composition root put on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.service import PlanningService
from api.settings import Settings
from dicom_node.storage import Storage


def _service(request: Request) -> PlanningService:
    return request.app.state.service  # type: ignore[no-any-return]


def _storage(request: Request) -> Storage:
    return request.app.state.service.storage  # type: ignore[no-any-return]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


ServiceDep = Annotated[PlanningService, Depends(_service)]
StorageDep = Annotated[Storage, Depends(_storage)]
SettingsDep = Annotated[Settings, Depends(_settings)]

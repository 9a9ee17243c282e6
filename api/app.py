"""FastAPI application factory; errors mapped to HTTP statuses with the planner's message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.routes import health, plans, series
from api.service import PlanningService, SeriesNotComplete
from api.settings import Settings
from dicom_node.errors import NotFound
from dicom_node.pacs import NoDestination
from planner.errors import PlanningError

log = logging.getLogger(__name__)


def _error(status: int, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": str(exc)})


def create_app(settings: Settings, service: PlanningService) -> FastAPI:
    app = FastAPI(
        title="ctplan",
        summary="CT-guided infiltration planning for painful bone metastases",
        description="Every plan is a suggestion to be verified by the radiologist.",
    )
    app.state.settings = settings
    app.state.service = service
    app.include_router(health.router)
    app.include_router(series.router)
    app.include_router(plans.router)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _error(404, exc)

    @app.exception_handler(SeriesNotComplete)
    async def _not_complete(_: Request, exc: SeriesNotComplete) -> JSONResponse:
        return _error(409, exc)

    @app.exception_handler(NoDestination)
    async def _no_destination(_: Request, exc: NoDestination) -> JSONResponse:
        return _error(409, exc)

    @app.exception_handler(PlanningError)
    async def _planning(_: Request, exc: PlanningError) -> JSONResponse:
        return _error(422, exc)

    return app

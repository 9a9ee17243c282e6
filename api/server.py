"""Composition root: settings → storage → SCP → planning service → FastAPI under uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from api.service import PlanningService
from api.settings import Settings
from dicom_node.scp import start_scp
from dicom_node.storage import Storage

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Run the DICOM SCP and the HTTP API in one process until interrupted."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings.storage_dir.mkdir(parents=True, exist_ok=True)
    storage = Storage(settings.storage_dir)
    service = PlanningService(storage, settings.planning_rules(), settings.stable_seconds)
    app = create_app(settings, service)
    scp = start_scp(
        storage, ae_title=settings.ae_title, host=settings.host, port=settings.dicom_port
    )
    log.info(
        "DICOM SCP %s on %s:%d, HTTP on %s:%d, storage %s",
        settings.ae_title,
        settings.host,
        settings.dicom_port,
        settings.host,
        settings.http_port,
        settings.storage_dir.resolve(),
    )
    try:
        uvicorn.run(app, host=settings.host, port=settings.http_port, log_level="warning")
    finally:
        scp.shutdown()
        log.info("stopped")

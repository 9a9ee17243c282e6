"""Composition root: settings → storage → SCP → planning service → FastAPI under uvicorn."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import uvicorn

from api.app import create_app
from api.prepare import SeriesPreparer
from api.service import PlanningService
from api.settings import Settings
from dicom_node.pacs import Pusher, destination_name
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
    # One worker: pushes to the PACS run one after the other, never in the HTTP request.
    push_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pacs-push")
    destinations = settings.pacs_destinations()
    pusher = Pusher(storage, destinations, settings.push_options(), executor=push_executor)
    service = PlanningService(
        storage,
        settings.planning_rules(),
        settings.stable_seconds,
        pusher=pusher,
        auto_push=settings.auto_push,
    )
    app = create_app(settings, service)
    preparer = SeriesPreparer(service)
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
    log.info(
        "PACS: %s, automatic push %s",
        ", ".join(destination_name(d) for d in destinations) or "none configured",
        "on" if settings.auto_push else "off",
    )
    preparer.start()
    try:
        uvicorn.run(app, host=settings.host, port=settings.http_port, log_level="warning")
    finally:
        scp.shutdown()
        preparer.stop()
        # Queued pushes are dropped, not lost: the objects are in storage and can be re-sent.
        push_executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")

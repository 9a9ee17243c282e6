"""Background preparation: each series that becomes complete gets its volume and anatomy
computed before anyone asks for a plan, so the first plan answers in seconds."""

from __future__ import annotations

import logging
import threading

from api.service import PlanningService
from dicom_node.errors import DicomNodeError
from planner.errors import PlanningError

log = logging.getLogger(__name__)


class SeriesPreparer:
    """A daemon thread that polls the index and warms the planning cache."""

    def __init__(self, service: PlanningService, poll_seconds: float = 1.0) -> None:
        self._service = service
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._done: set[tuple[str, int]] = set()
        self._thread = threading.Thread(target=self._run, name="series-prepare", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.prepare_complete_series()
            except Exception:  # keep the thread alive whatever one series does
                log.exception("background preparation failed")

    def prepare_complete_series(self) -> None:
        storage, stable = self._service.storage, self._service.stable_seconds
        for record in storage.list_series(stable):
            key = (record.series_uid, record.instance_count)
            if record.state != "complete" or key in self._done:
                continue
            self._done.add(key)
            try:
                self._service.prepare(record.series_uid)
                log.info("series %s prepared for planning", record.series_uid)
            except (PlanningError, DicomNodeError) as exc:
                # The reason is on the series (invalid) and in the next plan request.
                log.warning("series %s not plannable: %s", record.series_uid, exc)

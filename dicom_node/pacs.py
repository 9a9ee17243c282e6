"""Pushing a plan's derived objects (SC, SEG, SR) to the PACS, one outcome per object.

Input: the :class:`~dicom_node.storage.Storage` holding the plan's derived objects, a plan id
and :class:`~dicom_node.scu.Destination` s. Output: one :class:`PushOutcome` per object and
destination, each also recorded with :meth:`Storage.record_push`. A failed push is an
outcome, never an exception: the objects stay in storage and can be sent again.

:class:`Pusher` does the same now (:meth:`Pusher.push`) or later on an executor that the
composition root owns (:meth:`Pusher.push_later`), so creating a plan never waits on the PACS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from dicom_node.errors import DerivedNotFound, DicomNodeError
from dicom_node.records import PushRecord
from dicom_node.scu import Destination, send_datasets
from dicom_node.storage import Storage

LOG = logging.getLogger(__name__)

PUSH_OK = "ok"
PUSH_FAILED = "failed"


class NoDestination(DicomNodeError):
    """No PACS destination was configured or given: there is nowhere to send the plan."""


@dataclass(frozen=True)
class PushOptions:
    """How to send: our calling AE title, retries after the first attempt, backoff, timeout."""

    ae_title: str = "CTPLAN"
    retries: int = 3
    backoff_s: float = 1.0
    timeout_s: float = 30.0


@dataclass(frozen=True)
class PushOutcome:
    """What happened to one derived object sent to one destination; ``pushed_at`` is epoch s."""

    destination: str
    sop_instance_uid: str
    kind: str
    status: str
    detail: str
    pushed_at: float


def destination_name(destination: Destination) -> str:
    """``AE@host:port``, the form the settings and the push records use."""
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    return f"{destination.ae_title}@{host}:{destination.port}"


def push_plan(
    storage: Storage, plan_id: str, destinations: Sequence[Destination], options: PushOptions
) -> list[PushOutcome]:
    """C-STORE every derived object of the plan to each destination; record each outcome."""
    storage.get_plan(plan_id)  # PlanNotFound before anything is sent
    derived = storage.list_derived(plan_id)
    if not derived:
        raise DerivedNotFound(f"plan {plan_id} has no derived objects to send")
    outcomes = []
    for destination in destinations:
        name = destination_name(destination)
        results = send_datasets(
            [record.path for record in derived],
            ae_title=options.ae_title,
            host=destination.host,
            port=destination.port,
            called_ae=destination.ae_title,
            retries=options.retries,
            backoff_s=options.backoff_s,
            timeout_s=options.timeout_s,
        )
        for record, result in zip(derived, results, strict=True):
            status = PUSH_OK if result.ok else PUSH_FAILED
            storage.record_push(plan_id, record.sop_instance_uid, name, status, result.detail)
            outcomes.append(
                PushOutcome(
                    name, record.sop_instance_uid, record.kind, status, result.detail, time.time()
                )
            )
        sent = sum(result.ok for result in results)
        log = LOG.info if sent == len(derived) else LOG.warning
        log("plan %s to %s: %d of %d object(s) sent", plan_id, name, sent, len(derived))
    return outcomes


def latest_pushes(storage: Storage, plan_id: str) -> list[PushOutcome]:
    """The latest outcome per derived object and destination, by destination then object."""
    unknown = (1 << 30, "unknown")  # an object no longer listed among the plan's derived
    kinds = {r.sop_instance_uid: (r.ordinal, r.kind) for r in storage.list_derived(plan_id)}
    latest: dict[tuple[str, str], PushRecord] = {}
    for record in storage.list_pushes(plan_id):  # oldest first: later ones win
        latest[(record.destination, record.sop_instance_uid)] = record
    ordered = sorted(
        latest.values(), key=lambda r: (r.destination, kinds.get(r.sop_instance_uid, unknown))
    )
    return [
        PushOutcome(
            destination=r.destination,
            sop_instance_uid=r.sop_instance_uid,
            kind=kinds.get(r.sop_instance_uid, unknown)[1],
            status=r.status,
            detail=r.detail,
            pushed_at=r.pushed_at,
        )
        for r in ordered
    ]


class Pusher:
    """Sends plans to the configured destinations, now or on the given executor."""

    def __init__(
        self,
        storage: Storage,
        destinations: Sequence[Destination] = (),
        options: PushOptions | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.storage = storage
        self.destinations = tuple(destinations)
        self.options = options or PushOptions()
        self._executor = executor

    def push(
        self, plan_id: str, destinations: Sequence[Destination] | None = None
    ) -> list[PushOutcome]:
        """Send now to ``destinations``, or to the configured ones when None."""
        targets = tuple(destinations) if destinations is not None else self.destinations
        if not targets:
            raise NoDestination(
                "no PACS destination is configured: set CTPLAN_PACS (e.g. PACS@10.0.0.5:104) "
                'or give {"destinations": ["AE@host:port"]} in the request'
            )
        return push_plan(self.storage, plan_id, targets, self.options)

    def push_later(self, plan_id: str) -> Future[list[PushOutcome]] | None:
        """Queue a push to the configured destinations; None without executor or destination."""
        if self._executor is None or not self.destinations:
            return None
        return self._executor.submit(self._push_logged, plan_id)

    def _push_logged(self, plan_id: str) -> list[PushOutcome]:
        try:
            return self.push(plan_id)
        except Exception:
            # Nobody waits on this future: log with the traceback, the objects stay in storage
            # and POST /plans/{id}/send can send them again.
            LOG.exception("automatic push of plan %s failed; send it again on request", plan_id)
            raise

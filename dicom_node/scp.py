"""DICOM receiver: C-ECHO and C-STORE into :class:`~dicom_node.storage.Storage`.

Input: associations from a CT scanner (or any Storage SCU) on ``host:port``.
Output: instances filed and indexed by the storage; optionally, one call of ``on_instance``
per stored instance (e.g. to schedule a check that the series is complete).

The C-STORE handler decodes no pixel data: it writes the bytes as received
(``event.encoded_dataset()``) and reads only header elements, which pydicom parses lazily.
Statuses follow PS3.4 Annex B: 0x0000 success, 0xA700 out of resources (disk or index
failed: the sender may retry), 0xC210 cannot understand (required UIDs missing or malformed),
0xA900 data set does not match SOP class, 0xC211 unexpected failure. No exception leaves a
handler, and logs name UIDs and AE titles only, never the patient.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from dicom_node.errors import InvalidInstance, StorageError
from dicom_node.storage import Storage

LOG = logging.getLogger(__name__)

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC210
UNABLE_TO_PROCESS = 0xC211

STORAGE_SOP_CLASSES: tuple[str, ...] = (
    CTImageStorage,
    EnhancedCTImageStorage,
    SecondaryCaptureImageStorage,
)
# Uncompressed only: the planner reads pixel data without codecs.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)
# Larger PDUs mean fewer reads per slice; 0 would be unlimited, which lets a peer ask us to
# buffer arbitrary amounts.
MAX_PDU_BYTES = 1 << 20


@dataclass(frozen=True)
class ReceivedInstance:
    """What ``on_instance`` is told after an instance is safely stored."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    path: Path
    calling_ae: str


OnInstance = Callable[[ReceivedInstance], object]


def handle_echo(event: Event) -> int:
    return SUCCESS


def handle_store(event: Event, storage: Storage, on_instance: OnInstance | None) -> int:
    """Store one C-STORE dataset; return the DIMSE status. Never raises."""
    calling_ae = _calling_ae(event)
    try:
        ds: Dataset = event.dataset
        ds.file_meta = event.file_meta
        encoded = event.encoded_dataset()
        request = cast(C_STORE, event.request)
        requested_uid = str(request.AffectedSOPInstanceUID)
        requested_class = str(request.AffectedSOPClassUID)
    except Exception as exc:
        LOG.error("C-STORE from %s: dataset not decodable (0xC210): %s", calling_ae, exc)
        return CANNOT_UNDERSTAND
    sop_uid, series_uid, study_uid = _uids(ds)
    if sop_uid and sop_uid != requested_uid:
        LOG.warning(
            "C-STORE from %s rejected (0xC210): dataset SOP Instance UID %s differs from the "
            "request's %s",
            calling_ae, sop_uid, requested_uid,
        )  # fmt: skip
        return CANNOT_UNDERSTAND
    if _text(ds, "SOPClassUID") not in ("", requested_class):
        LOG.warning(
            "C-STORE from %s rejected (0xA900): instance %s has SOP Class %s, request says %s",
            calling_ae, sop_uid, _text(ds, "SOPClassUID"), requested_class,
        )  # fmt: skip
        return DOES_NOT_MATCH_SOP_CLASS
    try:
        path = storage.store_instance(ds, encoded)
    except InvalidInstance as exc:
        LOG.warning("C-STORE from %s of %s rejected (0xC210): %s", calling_ae, requested_uid, exc)
        return CANNOT_UNDERSTAND
    except (StorageError, OSError, sqlite3.Error) as exc:
        LOG.error(
            "C-STORE from %s of instance %s (series %s) not stored (0xA700): %s",
            calling_ae, sop_uid, series_uid, exc,
        )  # fmt: skip
        return OUT_OF_RESOURCES
    except Exception:
        LOG.exception(
            "C-STORE from %s of instance %s (series %s) failed unexpectedly (0xC211)",
            calling_ae, sop_uid, series_uid,
        )  # fmt: skip
        return UNABLE_TO_PROCESS
    if on_instance is not None:
        try:
            on_instance(ReceivedInstance(study_uid, series_uid, sop_uid, path, calling_ae))
        except Exception:
            # The instance is stored; the sender must not re-send because a listener failed.
            LOG.exception("on_instance failed for instance %s (series %s)", sop_uid, series_uid)
    return SUCCESS


def handle_association_event(event: Event) -> None:
    """Log association life-cycle events so a PACS admin can trace a transfer."""
    LOG.info("%s: %s (%s)", event.event.description, _calling_ae(event), _peer_address(event))


def start_scp(
    storage: Storage,
    *,
    ae_title: str,
    host: str,
    port: int,
    on_instance: OnInstance | None = None,
    allowed_calling_aes: Sequence[str] = (),
) -> ThreadedAssociationServer:
    """Start listening and return at once; call ``.shutdown()`` on the result to stop.

    Any calling AE title is accepted unless ``allowed_calling_aes`` lists some. Any called AE
    title is accepted too, so a scanner configured with a slightly different title still gets
    through; ``ae_title`` is what this node answers with.
    """
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = MAX_PDU_BYTES
    ae.require_calling_aet = list(allowed_calling_aes)
    ae.add_supported_context(Verification, list(TRANSFER_SYNTAXES))
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, list(TRANSFER_SYNTAXES))
    handlers: list[Any] = [
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, handle_store, [storage, on_instance]),
        (evt.EVT_ACCEPTED, handle_association_event),
        (evt.EVT_REJECTED, handle_association_event),
        (evt.EVT_ABORTED, handle_association_event),
    ]
    try:
        server = ae.start_server((host, port), block=False, evt_handlers=handlers)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot listen for DICOM on {host}:{port} ({exc.strerror or exc}); is another "
            "DICOM node already using that port, or is the address not one of this machine's?",
        ) from exc
    assert server is not None  # start_server returns the server when block=False
    LOG.info("DICOM node %s listening on %s:%d", ae_title, host, server.server_address[1])
    return server


def _uids(ds: Dataset) -> tuple[str, str, str]:
    return (
        _text(ds, "SOPInstanceUID"),
        _text(ds, "SeriesInstanceUID"),
        _text(ds, "StudyInstanceUID"),
    )


def _text(ds: Dataset, keyword: str) -> str:
    try:
        return str(ds.get(keyword, "") or "").strip()
    except Exception:
        return ""


def _calling_ae(event: Event) -> str:
    try:
        return str(event.assoc.requestor.ae_title)
    except Exception:
        return "unknown AE"


def _peer_address(event: Event) -> str:
    try:
        return f"{event.assoc.requestor.address}:{event.assoc.requestor.port}"
    except Exception:
        return "unknown address"

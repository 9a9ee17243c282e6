"""Sending objects to a DICOM destination (e.g. the PACS): C-STORE, C-ECHO, destinations.

Input: datasets (with ``file_meta.TransferSyntaxUID``) or paths of Part-10 files, and where to
send them. Output: one :class:`SendResult` per object, in input order; a failure is a
result, never an exception, so a caller can record what reached the PACS and what did not.

Transport failures (no connection, rejected or aborted association, no answer within
``timeout_s``) and "out of resources" (0xA7xx) answers are retried on a new association after
``backoff_s``, doubling each time; other failure statuses are final.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

LOG = logging.getLogger(__name__)

Progress = Callable[[int, int], object]
MAX_CONTEXTS = 128  # PS3.8: presentation context ids are odd numbers 1..255
_AE_TITLE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable, no backslash


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.ae_title}@{host}:{self.port}"


@dataclass(frozen=True)
class SendResult:
    """Outcome for one object; ``status`` is ``None`` when the destination never answered."""

    sop_instance_uid: str
    status: int | None
    ok: bool
    detail: str


@dataclass(frozen=True)
class _Item:
    source: Dataset | Path
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str


def parse_destinations(text: str) -> list[Destination]:
    """Parse ``"AE@host:port,AE2@host2:port2"``; an empty string means no destination."""
    if not text.strip():
        return []
    return [_parse_one(part.strip(), text) for part in text.split(",")]


def _parse_one(part: str, whole: str) -> Destination:
    example = "expected AE_TITLE@host:port, e.g. PACS@10.0.0.5:104"
    if not part:
        raise ValueError(f"empty destination in {whole!r} (stray comma?); {example}")
    ae_title, at, address = part.rpartition("@")
    if not at:
        raise ValueError(f"destination {part!r} has no '@'; {example}")
    if ae_title.strip() != ae_title or not _AE_TITLE_RE.match(ae_title):
        raise ValueError(
            f"AE title {ae_title!r} in {part!r} must be 1-16 printable characters without "
            "backslash or leading/trailing spaces"
        )
    host, colon, port_text = address.rpartition(":")
    if not colon or not host:
        raise ValueError(f"destination {part!r} needs a host and a port; {example}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 address in {part!r} must be in brackets, e.g. PACS@[::1]:104")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port {port_text!r} in {part!r} must be a number from 1 to 65535")
    return Destination(ae_title=ae_title, host=host, port=int(port_text))


def echo(destination: Destination, *, ae_title: str = "CTPLAN", timeout_s: float = 10.0) -> bool:
    """C-ECHO ``destination``; ``True`` when it answers with success."""
    ae = _make_ae(ae_title, timeout_s)
    ae.add_requested_context(Verification)
    try:
        assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    except Exception as exc:
        LOG.warning("C-ECHO to %s failed: %s", destination, exc)
        return False
    if not assoc.is_established:
        LOG.warning("C-ECHO to %s failed: %s", destination, _association_failure(assoc)[0])
        return False
    try:
        status = assoc.send_c_echo()
        return bool("Status" in status and status.Status == 0x0000)
    finally:
        if assoc.is_established:
            assoc.release()


def _no_delay(assoc: Association) -> None:
    """Turn Nagle's algorithm off: with it each C-STORE waits ~40 ms for the peer's ACK."""
    sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def send_datasets(
    datasets_or_paths: Iterable[Dataset | str | os.PathLike[str]],
    *,
    ae_title: str,
    host: str,
    port: int,
    called_ae: str,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 30,
    progress: Progress | None = None,
) -> list[SendResult]:
    """C-STORE every object to ``called_ae@host:port`` on one association (per attempt).

    ``retries`` is the number of further attempts after the first. ``progress(done, total)``
    is called each time an object's outcome becomes final.
    """
    if retries < 0 or backoff_s < 0 or timeout_s <= 0:
        raise ValueError("retries and backoff_s must be >= 0 and timeout_s > 0")
    target = f"{called_ae}@{host}:{port}"
    results: list[SendResult | None] = []
    items: dict[int, _Item] = {}
    for index, obj in enumerate(datasets_or_paths):
        item_or_failure = _prepare(obj)
        results.append(item_or_failure if isinstance(item_or_failure, SendResult) else None)
        if isinstance(item_or_failure, _Item):
            items[index] = item_or_failure
    total, done = len(results), 0

    def settle(index: int, result: SendResult) -> None:
        nonlocal done
        results[index] = result
        items.pop(index, None)
        done += 1
        if progress is not None:
            progress(done, total)

    for index, result in enumerate(results):
        if result is not None:
            settle(index, result)

    last_failure: dict[int, SendResult] = {}
    attempts = 0
    for attempt in range(retries + 1):
        if not items:
            break
        attempts += 1
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        ae = _make_ae(ae_title, timeout_s)
        for sop_class, syntaxes in _contexts(items.values()):
            ae.add_requested_context(sop_class, syntaxes)
        try:
            assoc = ae.associate(host, port, ae_title=called_ae)
        except Exception as exc:  # e.g. an unresolvable host name
            assoc, reason, permanent = None, f"cannot connect to {target}: {exc}", False
        if assoc is None or not assoc.is_established:
            if assoc is not None:
                reason, permanent = _association_failure(assoc)
            LOG.warning("send to %s, attempt %d: %s", target, attempt + 1, reason)
            for index, item in items.items():
                last_failure[index] = SendResult(item.sop_instance_uid, None, False, reason)
            if permanent:
                break
            continue
        _no_delay(assoc)
        try:
            _store_all(assoc, items, last_failure, settle, target, timeout_s)
        finally:
            if assoc.is_established:
                assoc.release()

    for index, item in list(items.items()):
        never_tried = SendResult(
            item.sop_instance_uid, None, False,
            f"not sent to {target}: the association failed before this object's turn",
        )  # fmt: skip
        failure = last_failure.get(index, never_tried)
        if attempts > 1:
            failure = replace(
                failure, detail=f"{failure.detail} (gave up after {attempts} attempts)"
            )
        settle(index, failure)
    return [r for r in results if r is not None]


def _store_all(
    assoc: Association,
    items: dict[int, _Item],
    last_failure: dict[int, SendResult],
    settle: Callable[[int, SendResult], None],
    target: str,
    timeout_s: float,
) -> None:
    """C-STORE what is pending on an established association until done or it breaks."""
    for index, item in list(items.items()):
        uid = item.sop_instance_uid
        try:
            answer = assoc.send_c_store(item.source)
        except RuntimeError:  # the association ended under us
            last_failure[index] = SendResult(
                uid, None, False, f"the association with {target} ended unexpectedly"
            )
            break
        except (ValueError, AttributeError, OSError) as exc:
            settle(index, SendResult(uid, None, False, f"not sent to {target}: {exc}"))
            continue
        if "Status" not in answer:
            # pynetdicom's way of saying: no answer within the DIMSE timeout, or aborted.
            last_failure[index] = SendResult(
                uid, None, False, f"no answer from {target} within {timeout_s:g} s, or the "
                "association was aborted",
            )  # fmt: skip
            break
        status = int(answer.Status)
        if _is_ok(status):
            detail = "stored" if status == 0 else f"stored with warning 0x{status:04X}"
            settle(index, SendResult(uid, status, True, detail))
        elif 0xA700 <= status <= 0xA7FF:
            last_failure[index] = SendResult(
                uid, status, False, f"{target} is out of resources (0x{status:04X}): check its "
                "free disk space",
            )  # fmt: skip
        else:
            settle(index, SendResult(uid, status, False, _failure_detail(status, answer, target)))
        if not assoc.is_established:
            break


def _prepare(obj: Dataset | str | os.PathLike[str]) -> _Item | SendResult:
    source: Dataset | Path
    if isinstance(obj, Dataset):
        ds, source = obj, obj
        meta = getattr(obj, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
    else:
        path = Path(obj)
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except Exception as exc:
            return SendResult("", None, False, f"cannot read {path}: {exc}")
        source, ts = path, ds.file_meta.get("TransferSyntaxUID")
    uid = str(ds.get("SOPInstanceUID", "") or "")
    sop_class = str(ds.get("SOPClassUID", "") or "")
    if not uid or not sop_class or not ts:
        return SendResult(
            uid, None, False,
            "object lacks SOP Instance UID, SOP Class UID or file meta Transfer Syntax UID",
        )  # fmt: skip
    return _Item(source, uid, sop_class, str(ts))


def _contexts(items: Iterable[_Item]) -> list[tuple[str, list[str]]]:
    """One context per SOP class for uncompressed objects (pynetdicom converts between those),
    one per (SOP class, transfer syntax) for compressed ones (they are sent as they are)."""
    uncompressed: dict[str, list[str]] = {}
    compressed: set[tuple[str, str]] = set()
    for item in items:
        ts = UID(item.transfer_syntax)
        if ts.is_compressed:
            compressed.add((item.sop_class_uid, item.transfer_syntax))
        else:
            syntaxes = uncompressed.setdefault(item.sop_class_uid, [])
            for candidate in (item.transfer_syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian):
                if candidate not in syntaxes:
                    syntaxes.append(candidate)
    contexts = list(uncompressed.items()) + [(c, [ts]) for c, ts in sorted(compressed)]
    # Objects beyond the limit fail with "no accepted presentation context" when sent.
    return contexts[:MAX_CONTEXTS]


def _make_ae(ae_title: str, timeout_s: float) -> AE:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    return ae


def _association_failure(assoc: Association) -> tuple[str, bool]:
    """(what to tell the user, whether retrying is pointless) for a failed association."""
    peer = f"{assoc.acceptor.ae_title}@{assoc.acceptor.address}:{assoc.acceptor.port}"
    primitive = assoc.acceptor.primitive
    if assoc.is_rejected and primitive is not None:
        hint = {
            3: f"; register this node's AE title {assoc.requestor.ae_title!r} on the PACS",
            7: f"; check the destination AE title {assoc.acceptor.ae_title!r}",
        }.get(primitive.diagnostic or 0 if primitive.result_source == 1 else 0, "")
        reason = f"{peer} rejected the association ({primitive.result_str}: {primitive.reason_str})"
        return reason + hint, primitive.result == 0x01
    if primitive is not None and primitive.result == 0x00:
        return (
            f"{peer} accepted none of the object types offered; ask its administrator to "
            "enable them (e.g. Secondary Capture, Basic Text SR)",
            True,
        )
    return (
        f"no DICOM connection to {peer}: refused or no answer; check host, port and that the "
        "destination is running",
        False,
    )


def _is_ok(status: int) -> bool:
    return status == 0x0000 or 0xB000 <= status <= 0xBFFF or status in (0x0001, 0x0107, 0x0116)


def _failure_detail(status: int, answer: Dataset, target: str) -> str:
    comment = str(answer.get("ErrorComment", "") or "").strip()
    if 0xA900 <= status <= 0xA9FF:
        what = "the object does not match its SOP class"
    elif 0xC000 <= status <= 0xCFFF:
        what = "the destination cannot understand the object"
    else:
        what = "refused"
    return f"{target}: {what} (0x{status:04X}){': ' + comment if comment else ''}"

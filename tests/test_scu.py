"""The SCU against real pynetdicom SCPs on loopback, and destination parsing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom.config
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]
from tools import free_port, make_ct_series, write_series

from dicom_node.scp import start_scp
from dicom_node.scu import Destination, echo, parse_destinations, send_datasets
from dicom_node.storage import Storage

AE_TITLE = "CTPLAN"


@pytest.fixture(autouse=True)
def strict_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", pydicom.config.RAISE)
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.RAISE)


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[tuple[Storage, int]]:
    """Our own SCP standing in for a PACS (the Orthanc tests live elsewhere)."""
    storage = Storage(tmp_path / "pacs")
    server = start_scp(storage, ae_title="PACS", host="127.0.0.1", port=0)
    try:
        yield storage, server.server_address[1]
    finally:
        server.shutdown()
        storage.close()


def send(datasets: list, port: int, **kwargs: object) -> list:  # type: ignore[type-arg]
    options: dict[str, object] = {"retries": 0, "backoff_s": 0.01, "timeout_s": 5, **kwargs}
    return send_datasets(
        datasets, ae_title=AE_TITLE, host="127.0.0.1", port=port, called_ae="PACS",
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def test_send_datasets_and_paths(pacs: tuple[Storage, int], tmp_path: Path) -> None:
    storage, port = pacs
    series = make_ct_series(6)
    paths = write_series(series[3:], tmp_path / "out")
    progress: list[tuple[int, int]] = []

    results = send([*series[:3], *paths], port, progress=lambda d, t: progress.append((d, t)))

    assert [r.sop_instance_uid for r in results] == [ds.SOPInstanceUID for ds in series]
    assert all(r.ok and r.status == 0 and r.detail == "stored" for r in results)
    assert progress == [(n, 6) for n in range(1, 7)]
    assert storage.get_series(series[0].SeriesInstanceUID, 0.0).instance_count == 6


def test_nothing_listening_gives_failures_after_retries() -> None:
    series = make_ct_series(3)
    started = time.monotonic()

    results = send(series, free_port(), retries=2, backoff_s=0.01)

    assert time.monotonic() - started < 5
    assert [r.sop_instance_uid for r in results] == [ds.SOPInstanceUID for ds in series]
    assert all(not r.ok and r.status is None for r in results)
    assert "no DICOM connection" in results[0].detail
    assert "gave up after 3 attempts" in results[0].detail


def test_rejected_calling_ae_is_final_and_says_what_to_register(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "strict")
    server = start_scp(
        storage, ae_title="PACS", host="127.0.0.1", port=0, allowed_calling_aes=["KNOWN"]
    )
    try:
        results = send(make_ct_series(1), server.server_address[1], retries=3, backoff_s=5)
    finally:
        server.shutdown()
        storage.close()
    assert not results[0].ok
    assert "rejected the association" in results[0].detail
    assert "register this node's AE title 'CTPLAN'" in results[0].detail


def test_retry_reassociates_when_the_destination_comes_up(tmp_path: Path) -> None:
    port = free_port()
    storage = Storage(tmp_path / "late")
    servers = []
    starter = threading.Timer(
        0.05,
        lambda: servers.append(
            start_scp(storage, ae_title="PACS", host="127.0.0.1", port=port)
        ),
    )  # fmt: skip
    starter.start()
    try:
        results = send(make_ct_series(2), port, retries=3, backoff_s=0.5)
    finally:
        starter.join()
        for server in servers:
            server.shutdown()
        storage.close()
    assert [r.ok for r in results] == [True, True]


class FullDiskStorage(Storage):
    def store_instance(self, dataset_header: Dataset, encoded: bytes | None = None) -> Path:
        raise OSError(28, "No space left on device")


def test_out_of_resources_is_retried_then_reported(tmp_path: Path) -> None:
    storage = FullDiskStorage(tmp_path / "full")
    server = start_scp(storage, ae_title="PACS", host="127.0.0.1", port=0)
    try:
        results = send(make_ct_series(2), server.server_address[1], retries=1)
    finally:
        server.shutdown()
        storage.close()
    assert [(r.ok, r.status) for r in results] == [(False, 0xA700), (False, 0xA700)]
    assert "out of resources" in results[0].detail


def test_refused_object_is_final_and_others_go_through(pacs: tuple[Storage, int]) -> None:
    bad, good = make_ct_series(1)[0], make_ct_series(1)[0]
    del bad.SeriesInstanceUID

    results = send([bad, good], pacs[1], retries=3, backoff_s=5)  # a retry would take 5 s

    assert [(r.ok, r.status) for r in results] == [(False, 0xC210), (True, 0x0000)]
    assert "cannot understand" in results[0].detail


def slow_store(event: Event) -> int:
    time.sleep(1.0)
    return 0x0000


def test_no_answer_within_timeout_is_a_failure_not_an_empty_success() -> None:
    ae = AE(ae_title="SLOW")
    ae.add_supported_context(CTImageStorage)
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, slow_store)]
    )
    assert server is not None
    try:
        results = send(make_ct_series(1), server.server_address[1], timeout_s=0.3)
    finally:
        server.shutdown()
    assert len(results) == 1
    assert (results[0].ok, results[0].status) == (False, None)
    assert "no answer" in results[0].detail


def test_destination_accepting_no_object_type() -> None:
    ae = AE(ae_title="ECHOONLY")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", 0), block=False)
    assert server is not None
    try:
        results = send(make_ct_series(1), server.server_address[1], retries=3, backoff_s=5)
    finally:
        server.shutdown()
    assert not results[0].ok
    assert "accepted none of the object types" in results[0].detail


def test_unreadable_path_is_a_failure(pacs: tuple[Storage, int], tmp_path: Path) -> None:
    missing = tmp_path / "missing.dcm"
    results = send([missing, make_ct_series(1)[0]], pacs[1])
    assert [r.ok for r in results] == [False, True]
    assert str(missing) in results[0].detail


def test_echo(pacs: tuple[Storage, int]) -> None:
    assert echo(Destination("PACS", "127.0.0.1", pacs[1]), timeout_s=5)
    assert not echo(Destination("PACS", "127.0.0.1", free_port()), timeout_s=5)


def test_parse_destinations() -> None:
    assert parse_destinations("PACS@10.0.0.5:104, ARCHIVE@pacs.local:11112") == [
        Destination("PACS", "10.0.0.5", 104),
        Destination("ARCHIVE", "pacs.local", 11112),
    ]
    assert parse_destinations("  ") == []
    v6 = parse_destinations("PACS@[::1]:104")[0]
    assert v6 == Destination("PACS", "::1", 104)
    assert str(v6) == "PACS@[::1]:104"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PACS@host", "needs a host and a port"),
        ("pacs.local:104", "no '@'"),
        ("PACS@host:http", "must be a number"),
        ("PACS@host:70000", "must be a number from 1 to 65535"),
        ("A_TITLE_LONGER_THAN_16@host:104", "1-16 printable"),
        ("@host:104", "1-16 printable"),
        ("PACS@host:104,,B@h:1", "stray comma"),
        ("PACS@::1:104", "brackets"),
    ],
)
def test_parse_destinations_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_destinations(text)

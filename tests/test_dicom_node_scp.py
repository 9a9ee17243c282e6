"""The SCP on loopback, fed by dcmtk's echoscu/storescu and by a pynetdicom SCU."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom.config
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from tools import dcmtk_env, make_ct_series, require_tool, write_series

from dicom_node.scp import ReceivedInstance, start_scp
from dicom_node.storage import Storage

AE_TITLE = "CTPLAN"
PATIENT_TEXT = ("Phantom", "PHANTOM-001")  # what make_ct_series puts in the patient module


@pytest.fixture(autouse=True)
def strict_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", pydicom.config.RAISE)
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.RAISE)


@dataclass
class Node:
    storage: Storage
    port: int
    received: list[ReceivedInstance]


def run_node(storage: Storage, **kwargs: object) -> Iterator[Node]:
    received: list[ReceivedInstance] = []
    # Port 0: the OS picks a free port at bind time, so no other test can race us for it.
    server = start_scp(
        storage, ae_title=AE_TITLE, host="127.0.0.1", port=0, on_instance=received.append,
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    try:
        yield Node(storage, server.server_address[1], received)
    finally:
        server.shutdown()
        storage.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from run_node(Storage(tmp_path / "store"))


def c_store(port: int, datasets: list[Dataset], ts: str = ExplicitVRLittleEndian) -> list[int]:
    """Send with a plain pynetdicom SCU offering only ``ts``; return each status."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage, ts)
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=dcmtk_env(), capture_output=True, text=True, timeout=60, check=False
    )


def test_echoscu(node: Node) -> None:
    echoscu = require_tool("echoscu")
    result = run_tool(echoscu, "-aec", AE_TITLE, "127.0.0.1", str(node.port))
    assert result.returncode == 0, result.stderr


def test_storescu_series_lands_in_files_and_index(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storescu = require_tool("storescu")
    caplog.set_level(logging.DEBUG)
    series = make_ct_series(8)
    files = write_series(series, tmp_path / "outgoing")

    started = time.monotonic()
    result = run_tool(storescu, "-aec", AE_TITLE, "127.0.0.1", str(node.port), *map(str, files))
    elapsed_s = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed_s < 5
    for ds in series:
        path = node.storage.instance_path(
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        )
        stored = dcmread(path)
        assert stored.SOPInstanceUID == ds.SOPInstanceUID
        assert np.array_equal(stored.pixel_array, ds.pixel_array)
    record = node.storage.get_series(series[0].SeriesInstanceUID, stable_seconds=0.5)
    assert (record.instance_count, record.slices, record.rows, record.columns) == (8, 8, 32, 32)
    assert record.slice_spacing_mm == pytest.approx(2.5)
    assert sorted(r.sop_instance_uid for r in node.received) == sorted(
        ds.SOPInstanceUID for ds in series
    )
    assert {r.calling_ae for r in node.received} == {"STORESCU"}
    assert not any(text in caplog.text for text in PATIENT_TEXT)


def test_resend_does_not_double_count_and_state_settles(node: Node, tmp_path: Path) -> None:
    storescu = require_tool("storescu")
    series = make_ct_series(8)
    files = [str(p) for p in write_series(series, tmp_path / "outgoing")]
    uid = series[0].SeriesInstanceUID
    send = [storescu, "-aec", AE_TITLE, "127.0.0.1", str(node.port), *files]

    assert run_tool(*send).returncode == 0
    first = node.storage.get_series(uid, 0.5)
    assert run_tool(*send[:-7]).returncode == 0  # the first slice again
    again = node.storage.get_series(uid, 0.5)

    assert again.instance_count == first.instance_count == 8
    assert again.last_received >= first.last_received
    assert node.storage.get_series(uid, 0.5, now=again.last_received + 0.4).state == "receiving"
    assert node.storage.get_series(uid, 0.5, now=again.last_received + 0.5).state == "complete"
    time.sleep(max(0.0, again.last_received + 0.55 - time.time()))
    assert node.storage.get_series(uid, 0.5).state == "complete"


UNCOMPRESSED = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
]


@pytest.mark.parametrize("ts", UNCOMPRESSED)
def test_uncompressed_transfer_syntaxes_are_stored_as_received(node: Node, ts: UID) -> None:
    ds = make_ct_series(1)[0]
    pixels = ds.pixel_array
    if ts == ExplicitVRBigEndian:  # pynetdicom cannot convert endianness; pydicom won't swap
        ds.file_meta.TransferSyntaxUID = ts
        ds.PixelData = pixels.astype(">i2").tobytes()

    assert c_store(node.port, [ds], ts) == [0x0000]

    stored = dcmread(node.received[0].path)
    assert stored.file_meta.TransferSyntaxUID == ts
    assert stored.SOPInstanceUID == ds.SOPInstanceUID
    assert stored.Rows == 32
    assert np.array_equal(stored.pixel_array, pixels)


def test_storage_failure_answers_a700_and_keeps_serving(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    blocked, fine = make_ct_series(1)[0], make_ct_series(1)[0]
    # A file where the study folder should go: a real OSError from the real storage.
    (node.storage.root / blocked.StudyInstanceUID).write_text("not a folder")

    assert c_store(node.port, [blocked, fine]) == [0xA700, 0x0000]
    assert c_store(node.port, [make_ct_series(1)[0]]) == [0x0000]
    assert "0xA700" in caplog.text and blocked.SOPInstanceUID in caplog.text
    assert not any(text in caplog.text for text in PATIENT_TEXT)


class FullDiskStorage(Storage):
    def store_instance(self, dataset_header: Dataset, encoded: bytes | None = None) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_oserror_from_storage_answers_a700(tmp_path: Path) -> None:
    for node in run_node(FullDiskStorage(tmp_path / "store")):
        assert c_store(node.port, make_ct_series(2)) == [0xA700, 0xA700]
        assert node.received == []


def test_missing_series_uid_answers_c210(node: Node) -> None:
    bad, good = make_ct_series(1)[0], make_ct_series(1)[0]
    del bad.SeriesInstanceUID

    assert c_store(node.port, [bad, good]) == [0xC210, 0x0000]
    assert [r.sop_instance_uid for r in node.received] == [good.SOPInstanceUID]


def test_failing_listener_does_not_fail_the_store(tmp_path: Path) -> None:
    def explode(instance: ReceivedInstance) -> None:
        raise RuntimeError("listener bug")

    storage = Storage(tmp_path / "store")
    server = start_scp(storage, ae_title=AE_TITLE, host="127.0.0.1", port=0, on_instance=explode)
    try:
        ds = make_ct_series(1)[0]
        assert c_store(server.server_address[1], [ds]) == [0x0000]
        assert storage.get_series(ds.SeriesInstanceUID, 0.0).instance_count == 1
    finally:
        server.shutdown()
        storage.close()


def test_calling_ae_allow_list(tmp_path: Path) -> None:
    for node in run_node(Storage(tmp_path / "store"), allowed_calling_aes=["SCANNER1"]):
        for calling, expected in (("SCANNER1", True), ("INTRUDER", False)):
            ae = AE(ae_title=calling)
            ae.add_requested_context(Verification)
            assoc = ae.associate("127.0.0.1", node.port, ae_title=AE_TITLE)
            assert assoc.is_established is expected
            if assoc.is_established:
                assoc.release()


def test_require_tool_skips_locally_and_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        require_tool("no-such-dicom-tool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_tool("no-such-dicom-tool")


def test_require_tool_ignores_pynetdicom_apps_in_the_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    venv_bin = Path(sys.prefix) / "bin"
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
    storescu = require_tool("storescu")
    version = run_tool(storescu, "--version")
    assert "dcmtk" in version.stdout

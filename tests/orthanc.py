"""A real Orthanc (the Debian ``orthanc`` package) as the PACS of a test, on loopback ports.

Import as ``from orthanc import run_orthanc`` (pytest puts ``tests/`` on ``sys.path``).

Each instance gets its own configuration, storage and log in a folder of the test's: free
HTTP and DICOM ports, no plugins, no remote access, no authentication, AE title ``ORTHANC``
(or the one given), any calling AE title may store. It is stopped by its own process id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tools import free_port, require_tool

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RunningOrthanc:
    http: str
    dicom_port: int
    aet: str
    pid: int
    log: Path

    @property
    def destination(self) -> str:
        """As ``CTPLAN_PACS`` spells it."""
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.http}{path}", timeout=10)
        if r.status_code != 200:
            raise AssertionError(f"Orthanc GET {path}: {r.status_code} {r.text}\n{self.log_tail()}")
        return r.json()

    def lookup_instance(self, sop_instance_uid: str) -> str | None:
        """Orthanc's id of the instance with this SOP Instance UID, None if it has none."""
        r = httpx.post(f"{self.http}/tools/lookup", content=sop_instance_uid, timeout=10)
        r.raise_for_status()
        ids = [hit["ID"] for hit in r.json() if hit["Type"] == "Instance"]
        return ids[0] if ids else None

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        tags: dict[str, Any] = self.get(f"/instances/{orthanc_id}/tags?simplify")
        return tags

    def instance_file(self, orthanc_id: str) -> bytes:
        r = httpx.get(f"{self.http}/instances/{orthanc_id}/file", timeout=30)
        r.raise_for_status()
        return r.content

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no Orthanc log at {self.log}: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def _config(folder: Path, http_port: int, dicom_port: int, aet: str) -> dict[str, Any]:
    return {
        "Name": f"ctplan-test-{aet}",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "Plugins": [],
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": True,
        "DicomAet": aet,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True,
        "DicomModalities": {},
        "SaveJobs": False,
        "StorageCompression": False,
        "WebDavEnabled": False,
    }


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited early ({proc.returncode}):\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/system", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"Orthanc not answering after {START_TIMEOUT_S} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextmanager
def run_orthanc(
    folder: Path, *, aet: str = "ORTHANC", dicom_port: int | None = None
) -> Iterator[RunningOrthanc]:
    """Start Orthanc with its own config in ``folder``; stop it (SIGTERM, then SIGKILL) after."""
    binary = require_tool("Orthanc")
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), dicom_port or free_port()
    config = folder / "orthanc.json"
    config.write_text(json.dumps(_config(folder, http_port, dicom_port, aet), indent=2))
    log = folder / "orthanc.log"
    # Nagle's algorithm costs Orthanc ~47 ms per received instance on loopback (DESIGN.md).
    env = {**os.environ, "TCP_NODELAY": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--verbose", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{http_port}"
    running = RunningOrthanc(url, dicom_port, aet, proc.pid, log)
    try:
        _wait_ready(url, proc, log)
        yield running
    except BaseException:
        print(f"--- Orthanc log tail ({log}) ---\n{running.log_tail()}")
        raise
    finally:
        _stop(proc)

"""The replay's side of the wire: C-STORE a series, follow it over HTTP, ask for a plan.

Talks to a running ``ctplan serve`` exactly as any client would (DICOM on its SCP, JSON on
its HTTP API); nothing of ``planner`` is imported. Input: the service's address and the files
of one series. Output: send results, the series' state, the plan JSON (or the HTTP error).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ImplicitVRLittleEndian

from dicom_node.scu import Destination, SendResult, echo, send_datasets
from sample_series.errors import SampleSeriesError


class ServiceUnreachable(SampleSeriesError):
    """No answer from the service's HTTP API or DICOM SCP."""


@dataclass(frozen=True)
class ServiceAddress:
    host: str
    dicom_port: int
    called_ae: str
    calling_ae: str
    http_url: str

    @property
    def dicom(self) -> str:
        return str(Destination(self.called_ae, self.host, self.dicom_port))


@dataclass(frozen=True)
class SeriesFiles:
    series_uid: str
    paths: tuple[Path, ...]
    description: str


@dataclass(frozen=True)
class SeriesState:
    state: str  # receiving, complete, invalid; "missing" when never indexed; "timeout"
    instance_count: int
    detail: str
    seconds: float


@dataclass(frozen=True)
class PlanAnswer:
    status_code: int
    plan: dict[str, Any] | None
    detail: str
    seconds: float


def find_series(folder: Path, *, recursive: bool) -> list[SeriesFiles]:
    """DICOM files under ``folder`` grouped by Series Instance UID (files that are not DICOM,
    or have no SOP Instance UID, e.g. a DICOMDIR, are skipped)."""
    pattern = "**/*" if recursive else "*"
    groups: dict[str, list[Path]] = {}
    described: dict[str, str] = {}
    for path in sorted(p for p in folder.glob(pattern) if p.is_file()):
        try:
            ds = dcmread(path, stop_before_pixels=True, force=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid or not ds.get("SOPInstanceUID"):
            continue
        groups.setdefault(uid, []).append(path)
        described.setdefault(uid, str(ds.get("SeriesDescription", "") or ""))
    return [SeriesFiles(u, tuple(p), described[u]) for u, p in groups.items()]


def _sendable(path: Path) -> Path | Dataset:
    """The path itself, or for a legacy file without a Part-10 header the dataset with the
    default transfer syntax (implicit VR little endian) that such files use."""
    ds = dcmread(path, stop_before_pixels=True, force=True)
    if ds.file_meta.get("TransferSyntaxUID"):
        return path
    full = dcmread(path, force=True)
    full.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return full


class ProgressBar:
    """``label [#####.....] 23/48`` on one line of a terminal; one summary line otherwise."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream, width
        self.tty = stream.isatty()
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.tty:
            return
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r  {self.label} [{bar}] {done}/{total}")
        self.stream.flush()

    def finish(self, summary: str) -> None:
        prefix = "\r" if self.tty else ""
        self.stream.write(f"{prefix}  {self.label}: {summary}{' ' * 20}\n")
        self.stream.flush()


class ServiceClient:
    """HTTP and DICOM client of one running service."""

    def __init__(self, address: ServiceAddress, *, http_timeout_s: float = 10.0) -> None:
        self.address = address
        self.http = httpx.Client(base_url=address.http_url, timeout=http_timeout_s)

    def close(self) -> None:
        self.http.close()

    def check_reachable(self) -> dict[str, Any]:
        """``GET /health`` and a C-ECHO; raises :class:`ServiceUnreachable` naming which."""
        try:
            r = self.http.get("/health", timeout=5.0)
            r.raise_for_status()
            health: dict[str, Any] = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnreachable(
                f"no answer from the HTTP API at {self.address.http_url}/health ({exc}); "
                "is `ctplan serve` running there? (--http, CTPLAN_HOST, CTPLAN_HTTP_PORT)"
            ) from None
        destination = Destination(
            self.address.called_ae, self.address.host, self.address.dicom_port
        )
        if not echo(destination, ae_title=self.address.calling_ae, timeout_s=5.0):
            raise ServiceUnreachable(
                f"no C-ECHO answer from {self.address.dicom}; check --host, --dicom-port and "
                "--ae-title (CTPLAN_HOST, CTPLAN_DICOM_PORT, CTPLAN_AE_TITLE)"
            )
        return health

    def alive(self) -> bool:
        try:
            return self.http.get("/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def send(self, series: SeriesFiles, label: str) -> list[SendResult]:
        """C-STORE every file of one series on one association (retried by the SCU)."""
        bar = ProgressBar(label)
        start = time.monotonic()
        results = send_datasets(
            [_sendable(p) for p in series.paths],
            ae_title=self.address.calling_ae,
            host=self.address.host,
            port=self.address.dicom_port,
            called_ae=self.address.called_ae,
            progress=bar,
        )
        ok = sum(r.ok for r in results)
        bar.finish(f"{ok}/{len(results)} images stored in {time.monotonic() - start:.1f} s")
        return results

    def wait_complete(self, series_uid: str, expected: int, timeout_s: float) -> SeriesState:
        """Poll ``GET /series/{uid}`` until ``complete`` with every image, ``invalid``, or the
        timeout."""
        start = time.monotonic()
        last: dict[str, Any] | None = None
        while True:
            r = self._get(f"/series/{series_uid}")
            if r.status_code == 200:
                last = r.json()
                if last["state"] == "invalid":
                    return self._state(last, start, str(last.get("invalid_reason")))
                if last["state"] == "complete" and last["instance_count"] >= expected:
                    return self._state(last, start, f"after {time.monotonic() - start:.1f} s")
            elif r.status_code != 404:
                return SeriesState("error", 0, f"HTTP {r.status_code}: {r.text[:300]}", 0.0)
            if time.monotonic() - start > timeout_s:
                if last is None:
                    return SeriesState("missing", 0, f"not indexed after {timeout_s:g} s", 0.0)
                detail = (
                    f"still {last['state']} after {timeout_s:g} s with "
                    f"{last['instance_count']}/{expected} images"
                )
                return SeriesState("timeout", int(last["instance_count"]), detail, timeout_s)
            time.sleep(0.3)

    def request_plan(
        self, series_uid: str, seed_lps_mm: Sequence[float], timeout_s: float
    ) -> PlanAnswer:
        start = time.monotonic()
        try:
            r = self.http.post(
                f"/series/{series_uid}/plans",
                json={"seed_lps_mm": [float(v) for v in seed_lps_mm]},
                timeout=timeout_s,
            )
        except httpx.TimeoutException:
            return PlanAnswer(0, None, f"no answer within {timeout_s:g} s", timeout_s)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"HTTP API lost while planning: {exc}") from None
        seconds = time.monotonic() - start
        if r.status_code == 201:
            return PlanAnswer(201, r.json(), "created", seconds)
        try:
            detail = str(r.json().get("detail", r.text))
        except ValueError:
            detail = r.text
        return PlanAnswer(r.status_code, None, detail[:500], seconds)

    def _get(self, url: str) -> httpx.Response:
        try:
            return self.http.get(url)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"HTTP API lost: {exc}") from None

    @staticmethod
    def _state(js: dict[str, Any], start: float, detail: str) -> SeriesState:
        return SeriesState(
            str(js["state"]), int(js["instance_count"]), detail, time.monotonic() - start
        )

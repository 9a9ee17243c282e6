"""Shared fixtures: a real `ctplan serve` process on free loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tools import free_port

SHARED_REAL_CT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-ct"


@dataclass(frozen=True)
class RunningService:
    http: str
    dicom_port: int
    ae_title: str
    storage_dir: Path
    pid: int


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ctplan serve exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"ctplan serve not healthy after {seconds} s:\n{log.read_text()[-3000:]}")


@contextmanager
def run_service(root: Path, **env: str) -> Iterator[RunningService]:
    """`ctplan serve` on free loopback ports with extra CTPLAN_* settings, stopped by its own
    process id."""
    http_port, dicom_port = free_port(), free_port()
    full_env = {
        **os.environ,
        "CTPLAN_HOST": "127.0.0.1",
        "CTPLAN_HTTP_PORT": str(http_port),
        "CTPLAN_DICOM_PORT": str(dicom_port),
        "CTPLAN_AE_TITLE": "CTPLAN",
        "CTPLAN_STORAGE_DIR": str(root / "storage"),
        "CTPLAN_STABLE_SECONDS": "1.0",
        **env,
    }
    root.mkdir(parents=True, exist_ok=True)
    log = root / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve"], env=full_env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_healthy(url, proc, log, 60.0)
        yield RunningService(url, dicom_port, "CTPLAN", root / "storage", proc.pid)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """One `ctplan serve` per test module."""
    with run_service(tmp_path_factory.mktemp("ctplan")) as running:
        yield running

"""Scanner → SCP → plan → Secondary Capture, through real processes on loopback."""

from __future__ import annotations

import subprocess
import time

import httpx
import pydicom
import pytest
from conftest import RunningService
from tools import dcmtk_env, require_tool

from sample_series.phantom import build_case, write_case

pytestmark = pytest.mark.e2e

CASE = "rib_lateral_small"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):
    # Full size (512 x 512 x 150, 0.8 mm): the 2 mm tolerance is below one voxel of the small build.
    case = build_case(CASE, full_size=True)
    folder = write_case(case, tmp_path_factory.mktemp("samples"))
    return case, folder


def _wait_complete(service: RunningService, series_uid: str, seconds: float = 60.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = httpx.get(f"{service.http}/series/{series_uid}", timeout=5)
        if r.status_code == 200 and r.json()["state"] == "complete":
            return r.json()
        time.sleep(0.3)
    raise AssertionError(f"series {series_uid} not complete after {seconds} s")


def test_scanner_push_to_plan_and_secondary_capture(service: RunningService, sample, tmp_path):
    storescu = require_tool("storescu")
    case, folder = sample
    truth = case.truth
    files = sorted(str(p) for p in (folder / "dicom").glob("*.dcm"))
    subprocess.run(
        [storescu, "-aec", service.ae_title, "127.0.0.1", str(service.dicom_port), *files],
        check=True,
        env=dcmtk_env(),
        timeout=120,
    )
    series_uid = str(case.datasets[0].SeriesInstanceUID)
    series = _wait_complete(service, series_uid)
    assert series["instance_count"] == len(files)
    assert series["geometry"]["slices"] == len(files)

    r = httpx.post(
        f"{service.http}/series/{series_uid}/plans",
        json={"seed_lps_mm": list(truth.seed_lps_mm)},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    plan = r.json()
    lesion, dose = plan["lesion"], plan["dose"]
    assert lesion["length_mm"] == pytest.approx(truth.length_mm, abs=2.0)
    assert lesion["width_mm"] == pytest.approx(truth.width_mm, abs=2.0)
    assert dose["anaesthetic_ml"] == truth.anaesthetic_ml
    assert dose["steroid"] == truth.steroid
    assert (dose["contrast_ml"], dose["needle_gauge"], dose["max_steroid_ampoules"]) == (1, 22, 2)
    assert plan["study_uid"] == str(case.datasets[0].StudyInstanceUID)
    assert plan["needles"], plan["warnings"]
    needle = plan["needles"][0]
    assert needle["needle_length_mm"] >= needle["depth_mm"]

    again = httpx.get(f"{service.http}/plans/{plan['plan_id']}", timeout=10)
    assert again.status_code == 200
    assert again.json()["lesion"] == lesion

    overlay = httpx.get(f"{service.http}/plans/{plan['plan_id']}/overlay", timeout=10)
    assert overlay.status_code == 200
    assert overlay.headers["content-type"] == "application/dicom"
    sc_path = tmp_path / "overlay.dcm"
    sc_path.write_bytes(overlay.content)
    sc = pydicom.dcmread(sc_path)
    ct_uids = {str(ds.SOPInstanceUID) for ds in case.datasets}
    assert sc.StudyInstanceUID == case.datasets[0].StudyInstanceUID
    assert sc.SeriesInstanceUID != series_uid
    assert sc.ConversionType == "WSD"
    assert sc.BurnedInAnnotation == "YES"
    assert list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID in ct_uids
    assert sc.pixel_array.shape[2] == 3

    dciodvfy = require_tool("dciodvfy")
    report = subprocess.run([dciodvfy, str(sc_path)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (report.stdout + report.stderr).splitlines() if "Error" in line]
    assert errors == [], errors


def test_unknown_series_and_plan_are_404(service: RunningService):
    assert httpx.get(f"{service.http}/series/1.2.3.4", timeout=5).status_code == 404
    r = httpx.post(f"{service.http}/series/1.2.3.4/plans", json={"seed_lps_mm": [0, 0, 0]})
    assert r.status_code == 404
    assert httpx.get(f"{service.http}/plans/nope", timeout=5).status_code == 404

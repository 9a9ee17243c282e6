"""Scanner → ctplan → plan → SC, SEG and SR on a real Orthanc, through real processes.

The CT is the small synthetic lesion series of ``synthetic_lesion`` (fast, plannable); it is
sent with dcmtk's ``storescu`` to a ``ctplan serve`` subprocess and to Orthanc (the PACS also
holds the CT, as in a hospital). ctplan's pushes use its own pynetdicom SCU.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningService, run_service
from orthanc import RunningOrthanc, run_orthanc
from synthetic_lesion import LesionCT, make_lesion_ct
from tools import dcmtk_env, free_port, require_tool, write_series

pytestmark = pytest.mark.e2e

CT_SERIES_NUMBER = 2


def _ctplan(root: Path, **env: str):
    """`ctplan serve` with quick push retries for these tests."""
    quick = {
        "CTPLAN_STABLE_SECONDS": "0.5",
        "CTPLAN_PUSH_RETRIES": "1",
        "CTPLAN_PUSH_BACKOFF_SECONDS": "0.2",
        "CTPLAN_PUSH_TIMEOUT_SECONDS": "10",
    }
    return run_service(root, **{**quick, **env})


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[LesionCT, list[Path]]:
    ct = make_lesion_ct()
    return ct, write_series(ct.datasets, tmp_path_factory.mktemp("ct"))


def _storescu(ae_title: str, port: int, files: list[Path]) -> None:
    storescu = require_tool("storescu")
    subprocess.run(
        [storescu, "-aec", ae_title, "127.0.0.1", str(port), *map(str, files)],
        check=True,
        env=dcmtk_env(),
        timeout=60,
    )


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, case) -> Iterator[RunningOrthanc]:
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as orthanc:
        _storescu(orthanc.aet, orthanc.dicom_port, case[1])  # the scanner sends it there too
        yield orthanc


@pytest.fixture(autouse=True)
def _orthanc_log_on_failure(request, capsys, pacs: RunningOrthanc):
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        with capsys.disabled():
            print(f"\n--- Orthanc log tail ({pacs.log}) ---\n{pacs.log_tail()}")


def _plan(service: RunningService, case: tuple[LesionCT, list[Path]]) -> dict[str, Any]:
    ct, files = case
    _storescu(service.ae_title, service.dicom_port, files)
    series_uid = str(ct.datasets[0].SeriesInstanceUID)
    deadline = time.monotonic() + 30
    while httpx.get(f"{service.http}/series/{series_uid}").json().get("state") != "complete":
        assert time.monotonic() < deadline, "series not complete after 30 s"
        time.sleep(0.2)
    r = httpx.post(
        f"{service.http}/series/{series_uid}/plans",
        json={"seed_lps_mm": list(ct.seed_lps_mm)},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def manual(tmp_path_factory, pacs, case) -> Iterator[tuple[RunningService, dict[str, Any]]]:
    """ctplan with the Orthanc as its PACS, automatic push off, and one plan."""
    with _ctplan(tmp_path_factory.mktemp("manual"), CTPLAN_PACS=pacs.destination) as service:
        yield service, _plan(service, case)


def _assert_in_ct_study(orthanc: RunningOrthanc, objects: list[dict], ct: LesionCT) -> None:
    """Each object is on the PACS, in the CT's study, in a series of its own kind."""
    study_uid, ct_series = ct.datasets[0].StudyInstanceUID, ct.datasets[0].SeriesInstanceUID
    series_of_kind: dict[str, set[str]] = {}
    for o in objects:
        orthanc_id = orthanc.lookup_instance(o["sop_instance_uid"])
        assert orthanc_id is not None, f"{o['kind']} {o['sop_instance_uid']} not on the PACS"
        tags = orthanc.instance_tags(orthanc_id)
        assert tags["StudyInstanceUID"] == study_uid
        assert tags["SeriesInstanceUID"] != ct_series
        assert tags["SOPClassUID"] == o["sop_class_uid"]
        series_of_kind.setdefault(o["kind"], set()).add(tags["SeriesInstanceUID"])
    assert set(series_of_kind) == {"sc", "seg", "sr"}
    assert all(len(s) == 1 for s in series_of_kind.values())
    assert len(set.union(*series_of_kind.values())) == 3


def test_send_on_request_puts_sc_seg_and_sr_in_the_ct_study(manual, pacs, case):
    service, plan = manual
    ct = case[0]
    objects = httpx.get(f"{service.http}/plans/{plan['plan_id']}/objects").json()
    assert sorted({o["kind"] for o in objects}) == ["sc", "seg", "sr"]
    assert httpx.get(f"{service.http}/plans/{plan['plan_id']}").json()["pushes"] == []

    r = httpx.post(f"{service.http}/plans/{plan['plan_id']}/send", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True, r.json()

    _assert_in_ct_study(pacs, objects, ct)
    study_uid = ct.datasets[0].StudyInstanceUID
    studies = [pacs.get(f"/studies/{s}") for s in pacs.get("/studies")]
    (study,) = [s for s in studies if s["MainDicomTags"]["StudyInstanceUID"] == study_uid]
    numbers = sorted(
        int(pacs.get(f"/series/{s}")["MainDicomTags"]["SeriesNumber"]) for s in study["Series"]
    )
    assert numbers == [CT_SERIES_NUMBER, 9901, 9902, 9903]

    pushes = httpx.get(f"{service.http}/plans/{plan['plan_id']}").json()["pushes"]
    assert sorted(
        (p["destination"], p["sop_instance_uid"], p["kind"], p["status"]) for p in pushes
    ) == sorted((pacs.destination, o["sop_instance_uid"], o["kind"], "ok") for o in objects)


def test_what_the_pacs_holds_passes_dciodvfy(manual, pacs, tmp_path):
    service, plan = manual
    dciodvfy = require_tool("dciodvfy")
    objects = httpx.get(f"{service.http}/plans/{plan['plan_id']}/objects").json()
    httpx.post(f"{service.http}/plans/{plan['plan_id']}/send", timeout=60).raise_for_status()
    for o in objects:
        path = tmp_path / f"{o['kind']}-{o['index']}.dcm"
        path.write_bytes(pacs.instance_file(pacs.lookup_instance(o["sop_instance_uid"]) or ""))
        report = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
        errors = [x for x in (report.stdout + report.stderr).splitlines() if "Error" in x]
        assert errors == [], (o["kind"], errors)


def test_dead_destination_records_failures_and_resend_succeeds_once_up(
    manual, pacs, case, tmp_path
):
    service, plan = manual
    plan_url = f"{service.http}/plans/{plan['plan_id']}"
    port = free_port()
    late = f"LATE@127.0.0.1:{port}"
    r = httpx.post(f"{plan_url}/send", json={"destinations": [late]}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False
    assert {p["status"] for p in r.json()["pushes"]} == {"failed"}
    failed = [p for p in httpx.get(plan_url).json()["pushes"] if p["destination"] == late]
    objects = httpx.get(f"{plan_url}/objects").json()
    assert len(failed) == len(objects)
    assert all(
        p["status"] == "failed" and "gave up after 2 attempts" in p["detail"] for p in failed
    )
    for o in objects:  # nothing lost: every object can still be fetched
        assert httpx.get(f"{service.http}{o['url']}").status_code == 200

    with run_orthanc(tmp_path / "late", aet="LATE", dicom_port=port) as late_pacs:
        r = httpx.post(f"{plan_url}/send", json={"destinations": [late]}, timeout=60)
        assert r.json()["ok"] is True, r.json()
        _assert_in_ct_study(late_pacs, objects, case[0])
    latest = [p for p in httpx.get(plan_url).json()["pushes"] if p["destination"] == late]
    assert {p["status"] for p in latest} == {"ok"}
    assert len(latest) == len(objects)


def test_auto_push_sends_new_plans_in_the_background(tmp_path, pacs, case):
    with _ctplan(tmp_path, CTPLAN_PACS=pacs.destination, CTPLAN_AUTO_PUSH="true") as service:
        plan = _plan(service, case)
        assert plan["pushes"] == []  # the POST answered before the push was done or not
        deadline = time.monotonic() + 30
        while True:
            pushes = httpx.get(f"{service.http}/plans/{plan['plan_id']}").json()["pushes"]
            if len(pushes) == len(plan["objects"]) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert [p["status"] for p in pushes] == ["ok"] * len(plan["objects"]), pushes
    _assert_in_ct_study(pacs, plan["objects"], case[0])

"""HTTP access to a plan's derived objects (SC, SEG, SR), in process with real storage."""

from __future__ import annotations

import copy
import io
import time

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError
from synthetic_lesion import make_lesion_ct
from tools import free_port

from api.app import create_app
from api.service import PlanningService
from api.settings import Settings
from dicom_node.pacs import Pusher, PushOptions
from dicom_node.storage import Storage

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory):
    """A client on a storage holding one complete synthetic series and one plan of it."""
    root = tmp_path_factory.mktemp("api")
    settings = Settings(storage_dir=root, stable_seconds=0.01)
    storage = Storage(root)
    pusher = Pusher(storage, (), PushOptions(retries=0, timeout_s=5))
    service = PlanningService(storage, settings.planning_rules(), 0.01, pusher=pusher)
    case = make_lesion_ct()
    for ds in case.datasets:
        storage.store_instance(copy.deepcopy(ds))
    time.sleep(0.05)
    client = TestClient(create_app(settings, service))
    uid = str(case.datasets[0].SeriesInstanceUID)
    r = client.post(f"/series/{uid}/plans", json={"seed_lps_mm": list(case.seed_lps_mm)})
    assert r.status_code == 201, r.text
    yield client, r.json(), case
    storage.close()


def test_plan_lists_sc_seg_and_sr_with_urls(planned):
    client, plan, case = planned
    objects = client.get(f"/plans/{plan['plan_id']}/objects").json()
    assert objects == plan["objects"]
    assert [o["kind"] for o in objects] == ["sc"] * len(plan["overlays"]) + ["seg", "sr"]
    by_kind = {o["kind"]: o for o in objects}
    assert by_kind["seg"]["sop_class_uid"] == SEG_CLASS
    assert by_kind["sr"]["sop_class_uid"] == SR_CLASS
    assert by_kind["sr"]["sop_class_name"] == "Comprehensive 3D SR Storage"
    for o in objects:
        r = client.get(o["url"])
        assert r.status_code == 200, o
        assert r.headers["content-type"] == "application/dicom"
        ds = pydicom.dcmread(io.BytesIO(r.content))
        assert ds.SOPInstanceUID == o["sop_instance_uid"]
        assert ds.StudyInstanceUID == case.datasets[0].StudyInstanceUID


def test_overlay_png_preview_has_the_sc_pixels(planned):
    client, plan, _ = planned
    sc = pydicom.dcmread(io.BytesIO(client.get(f"/plans/{plan['plan_id']}/overlay").content))
    r = client.get(f"/plans/{plan['plan_id']}/overlay", params={"format": "png", "index": 0})
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert (image.mode, image.size) == ("RGB", (sc.Columns, sc.Rows))
    assert np.array_equal(np.asarray(image), sc.pixel_array)
    assert client.get(f"/plans/{plan['plan_id']}/overlay?format=bmp").status_code == 422
    assert client.get(f"/plans/{plan['plan_id']}/overlay?format=png&index=9").status_code == 404


def test_unknown_plan_is_404_everywhere(planned):
    client, _, _ = planned
    for path in ("objects", "sr", "seg", "overlay?format=png"):
        assert client.get(f"/plans/nope/{path}").status_code == 404, path
    assert (
        client.post("/plans/nope/send", json={"destinations": ["X@127.0.0.1:1"]}).status_code == 404
    )


def test_send_without_destination_is_409_with_what_to_do(planned):
    client, plan, _ = planned
    r = client.post(f"/plans/{plan['plan_id']}/send")
    assert r.status_code == 409
    assert "CTPLAN_PACS" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{"destinations": []}, {"destinations": ["PACS-no-port"]}, {"destinations": ["A@h:1,B@h:2"]}],
)
def test_send_with_malformed_destinations_is_422(planned, body):
    client, plan, _ = planned
    assert client.post(f"/plans/{plan['plan_id']}/send", json=body).status_code == 422


def test_send_to_a_closed_port_records_failures_in_the_plan(planned):
    client, plan, _ = planned
    dead = f"DEAD@127.0.0.1:{free_port()}"
    r = client.post(f"/plans/{plan['plan_id']}/send", json={"destinations": [dead]})
    assert r.status_code == 200
    sent = r.json()
    assert sent["ok"] is False
    assert {p["status"] for p in sent["pushes"]} == {"failed"}
    assert len(sent["pushes"]) == len(plan["objects"])
    pushes = client.get(f"/plans/{plan['plan_id']}").json()["pushes"]
    assert {(p["destination"], p["status"]) for p in pushes} == {(dead, "failed")}
    assert sorted(p["kind"] for p in pushes) == sorted(o["kind"] for o in plan["objects"])
    assert all("refused or no answer" in p["detail"] for p in pushes)


def test_ct_without_frame_of_reference_gets_plan_and_overlay_but_a_warning(tmp_path):
    settings = Settings(storage_dir=tmp_path, stable_seconds=0.01)
    with Storage(tmp_path) as storage:
        service = PlanningService(storage, settings.planning_rules(), 0.01)
        client = TestClient(create_app(settings, service))
        case = make_lesion_ct(slices=16, size=80)
        for ds in case.datasets:
            del ds.FrameOfReferenceUID
            storage.store_instance(ds)
        time.sleep(0.05)
        uid = str(case.datasets[0].SeriesInstanceUID)
        r = client.post(f"/series/{uid}/plans", json={"seed_lps_mm": list(case.seed_lps_mm)})
        assert r.status_code == 201, r.text
        plan = r.json()
        assert {o["kind"] for o in plan["objects"]} == {"sc"}
        assert any("SEG" in w and "Frame Of Reference" in w for w in plan["warnings"])
        assert client.get(f"/plans/{plan['plan_id']}/seg").status_code == 404


def test_settings_validate_pacs_and_auto_push(tmp_path):
    settings = Settings(storage_dir=tmp_path, pacs="ORTHANC@127.0.0.1:4242, PACS@[::1]:104")
    assert [(d.ae_title, d.host, d.port) for d in settings.pacs_destinations()] == [
        ("ORTHANC", "127.0.0.1", 4242),
        ("PACS", "::1", 104),
    ]
    assert settings.auto_push is False
    with pytest.raises(ValidationError, match="AUTO_PUSH"):
        Settings(storage_dir=tmp_path, auto_push=True)
    with pytest.raises(ValidationError, match="port"):
        Settings(storage_dir=tmp_path, pacs="ORTHANC@127.0.0.1")

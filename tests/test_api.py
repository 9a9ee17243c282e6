"""HTTP behaviour of the API app (in process, real storage, real planner)."""

from __future__ import annotations

import copy
import time

import pytest
from fastapi.testclient import TestClient
from tools import make_ct_series

from api.app import create_app
from api.service import PlanningService
from api.settings import Settings
from dicom_node.storage import Storage


def _client(tmp_path, stable_seconds: float) -> tuple[TestClient, Storage]:
    settings = Settings(storage_dir=tmp_path, stable_seconds=stable_seconds)
    storage = Storage(tmp_path)
    service = PlanningService(storage, settings.planning_rules(), stable_seconds)
    return TestClient(create_app(settings, service)), storage


def _store(storage: Storage, datasets) -> str:
    for ds in datasets:
        storage.store_instance(copy.deepcopy(ds))
    time.sleep(0.05)  # let the short quiet time of these tests pass
    return str(datasets[0].SeriesInstanceUID)


def test_health(tmp_path):
    client, _ = _client(tmp_path, 5.0)
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_series_listed_with_geometry_and_409_while_receiving(tmp_path):
    client, storage = _client(tmp_path, 3600.0)
    uid = _store(storage, make_ct_series(slices=6, size=16))
    listed = client.get("/series").json()
    assert [s["series_uid"] for s in listed] == [uid]
    one = client.get(f"/series/{uid}").json()
    assert one["state"] == "receiving"
    assert one["geometry"]["slices"] == 6
    assert one["geometry"]["slice_spacing_mm"] == pytest.approx(2.5)
    r = client.post(f"/series/{uid}/plans", json={"seed_lps_mm": [0, 0, -95]})
    assert r.status_code == 409
    assert "receiving" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"seed_lps_mm": [0, 0]},
        {"seed_lps_mm": [0, 0, 0], "seed_voxel": [1, 1, 1]},
        {"seed_voxel": [1, 1, 1], "patient_position": "UPSIDE-DOWN"},
        {"seed_voxel": [1, 1, 1], "hu_window": [100, 0]},
    ],
)
def test_malformed_plan_requests_are_422(tmp_path, body):
    client, storage = _client(tmp_path, 0.01)
    uid = _store(storage, make_ct_series(slices=6, size=16))
    r = client.post(f"/series/{uid}/plans", json=body)
    assert r.status_code == 422


def test_seed_in_air_is_refused_with_what_is_there(tmp_path):
    client, storage = _client(tmp_path, 0.01)
    uid = _store(storage, make_ct_series(slices=6, size=16))
    r = client.post(f"/series/{uid}/plans", json={"seed_voxel": [0, 0, 2]})
    assert r.status_code == 422
    assert "outside the patient" in r.json()["detail"] or "air" in r.json()["detail"]
    r = client.post(f"/series/{uid}/plans", json={"seed_voxel": [99, 0, 2]})
    assert r.status_code == 422
    assert "outside the volume" in r.json()["detail"]


def test_invalid_series_is_marked_and_422(tmp_path):
    client, storage = _client(tmp_path, 0.01)
    datasets = make_ct_series(slices=6, size=16)
    del datasets[3]
    uid = _store(storage, datasets)
    r = client.post(f"/series/{uid}/plans", json={"seed_voxel": [8, 8, 2]})
    assert r.status_code == 422
    assert "missing" in r.json()["detail"]
    assert client.get(f"/series/{uid}").json()["state"] == "invalid"


def test_unknown_plan_and_overlay_404(tmp_path):
    client, _ = _client(tmp_path, 5.0)
    assert client.get("/plans/abc").status_code == 404
    assert client.get("/plans/abc/overlay").status_code == 404


def test_background_preparation_marks_a_broken_series_invalid_before_any_request(tmp_path):
    from api.prepare import SeriesPreparer

    client, storage = _client(tmp_path, 0.01)
    good = _store(storage, make_ct_series(slices=6, size=16))
    broken = make_ct_series(slices=6, size=16)
    del broken[2]
    bad = _store(storage, broken)
    SeriesPreparer(client.app.state.service).prepare_complete_series()
    assert storage.get_series(bad, 0.01).state == "invalid"
    assert "missing" in (storage.get_series(bad, 0.01).invalid_reason or "")
    assert storage.get_series(good, 0.01).state == "complete"

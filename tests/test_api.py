"""HTTP behaviour of the API app (in process, real storage, real planner)."""

from __future__ import annotations

import copy
import time

import pytest
from fastapi.testclient import TestClient
from synthetic_lesion import make_lesion_ct
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
        {"seed_voxel": [1, 1, 1], "measurement_mode": "2d"},
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


def test_axial_measurement_mode_is_applied_and_recorded(tmp_path):
    client, storage = _client(tmp_path, 0.01)
    case = make_lesion_ct()
    uid = _store(storage, case.datasets)
    seed = list(case.seed_lps_mm)
    default = client.post(f"/series/{uid}/plans", json={"seed_lps_mm": seed})
    assert default.status_code == 201, default.text
    assert default.json()["inputs"]["request"]["measurement_mode"] == "3d"
    assert default.json()["lesion"]["measurement_mode"] == "3d"
    assert default.json()["lesion"]["measurement_slice_index"] is None
    # A sphere in fat shows its edge all round.
    assert default.json()["lesion"]["unseen_edge_fraction"] == pytest.approx(0.0, abs=0.05)
    r = client.post(f"/series/{uid}/plans", json={"seed_lps_mm": seed, "measurement_mode": "axial"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["inputs"]["request"]["measurement_mode"] == "axial"
    lesion = plan["lesion"]
    assert lesion["measurement_mode"] == "axial"
    # The sphere's centre (z 0) lies halfway between slices 11 and 12 (z -1.25 and +1.25).
    assert lesion["measurement_slice_index"] in (11, 12)
    assert abs(lesion["measurement_slice_position_mm"]) == pytest.approx(1.25)
    for ends in (lesion["length_endpoints_lps_mm"], lesion["width_endpoints_lps_mm"]):
        assert [p[2] for p in ends] == pytest.approx([lesion["measurement_slice_position_mm"]] * 2)
    # One slice of the same outline: no longer than its 3-D diameter; the rest is shared.
    assert lesion["length_mm"] <= default.json()["lesion"]["length_mm"] + 1e-6
    assert lesion["voxel_volume_ml"] == default.json()["lesion"]["voxel_volume_ml"]
    titles = [o["title"] for o in plan["overlays"]]
    slice_view = f"lesion measurement, axial slice {lesion['measurement_slice_index']}"
    assert slice_view in titles or len(titles) == len(default.json()["overlays"])
    stored = client.get(f"/plans/{plan['plan_id']}").json()
    assert stored["inputs"]["request"]["measurement_mode"] == "axial"
    assert stored["lesion"]["measurement_slice_index"] == lesion["measurement_slice_index"]


def test_manual_mode_takes_the_given_size_whatever_the_measurement_mode(tmp_path):
    client, storage = _client(tmp_path, 0.01)
    case = make_lesion_ct()
    uid = _store(storage, case.datasets)
    body = {"center_lps_mm": list(case.seed_lps_mm), "length_mm": 20.0, "width_mm": 15.0}
    r = client.post(f"/series/{uid}/plans", json={**body, "measurement_mode": "axial"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert (plan["lesion"]["length_mm"], plan["lesion"]["width_mm"]) == (20.0, 15.0)
    assert plan["lesion"]["measurement_mode"] is None
    assert plan["lesion"]["unseen_edge_fraction"] is None
    assert any("measurement mode 'axial' not applied" in w for w in plan["warnings"])


def test_clinical_rules_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CTPLAN_OUTLINE_ERROR_MM", "0.5")
    monkeypatch.setenv("CTPLAN_NEAR_SPINE_MM", "25")
    rules = Settings(storage_dir=tmp_path).planning_rules()
    assert rules.segmentation.outline_error_mm == 0.5
    assert rules.dosing.near_spine_mm == 25.0

"""``ctplan replay``: path checks on hand-made label volumes, plan checks on literal plans, and
the command against a real ``ctplan serve`` (the planner's accuracy is not asserted here: the
report must be right about whatever the service answered)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import RunningService
from tools import free_port, make_ct_series, write_series

from sample_series import cli
from sample_series.geometry import GridGeometry, PatientPosition, axial_grid
from sample_series.phantom import build_case, load_truth
from sample_series.replay_checks import Stage, Tolerances, evaluate
from sample_series.replay_paths import check_path, skin_contact
from sample_series.tissues import LabelCode

ROOT = Path(__file__).resolve().parents[1]
IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
UP = (0.0, -1.0, 0.0)  # anterior, as for a supine patient


def _phantom() -> tuple[np.ndarray, GridGeometry]:
    """20 x 20 columns/rows of 1 mm, 10 slices of 2 mm, voxel centres at integer mm: soft
    tissue for y > 4.5 and 1.5 < x < 17.5 (air around: the top skin faces -y), a bone bar
    over x 7.5-9.5, y 9.5-11.5 and a lung bar over x 11.5-13.5, y 14.5-16.5, every slice."""
    labels = np.full((10, 20, 20), LabelCode.AIR, dtype=np.uint8)
    labels[:, 5:, 2:18] = LabelCode.SOFT_TISSUE
    labels[:, 10:12, 8:10] = LabelCode.BONE
    labels[:, 15:17, 12:14] = LabelCode.LUNG
    return labels, GridGeometry((0.0, 0.0, 0.0), (1.0, 1.0, 2.0), IDENTITY, (10, 20, 20))


def _check(entry, target, **kw: Any):
    labels, geo = _phantom()
    kw = {"up_lps": UP, "lesion_centre_lps_mm": target, **kw}
    return check_path(labels, geo, entry, target, **kw)


def test_path_through_soft_tissue_crosses_nothing() -> None:
    report = _check((5.0, 5.0, 10.0), (5.0, 18.0, 10.0))
    assert report.crossings == ()
    assert report.length_mm == pytest.approx(13.0)
    assert report.entry_label == report.target_label == "soft tissue"


def test_path_through_a_bone_voxel_is_reported_where_it_meets_it() -> None:
    report = _check((8.5, 5.0, 10.0), (8.5, 18.0, 10.0), bone_allowance_mm=0.0)
    assert report.crossed == ("bone",)
    bone = report.crossings[0]
    assert bone.first_at_mm == pytest.approx(4.5, abs=0.3)  # voxel 10 starts at y = 9.5
    assert bone.length_mm == pytest.approx(2.0, abs=0.3)


def test_bone_next_to_the_target_is_its_own_bone() -> None:
    target = (8.5, 13.0, 10.0)  # 1.5 mm below the bar
    assert _check((8.5, 5.0, 10.0), target, bone_allowance_mm=6.0).crossings == ()
    assert _check((8.5, 5.0, 10.0), target, bone_allowance_mm=1.0).crossed == ("bone",)


def test_lung_air_and_outside_the_image_are_reported() -> None:
    assert _check((12.5, 5.0, 10.0), (12.5, 19.0, 10.0)).crossed == ("lung",)
    # leaves the body sideways (x > 17.5 is air) and then the image (x > 19.5)
    assert _check((15.0, 6.0, 10.0), (25.0, 6.0, 10.0)).crossed == (
        "air outside the body",
        "outside the image",
    )


def test_air_before_the_skin_is_allowed_within_the_skin_tolerance() -> None:
    entry, target = (5.0, 3.0, 10.0), (5.0, 15.0, 10.0)  # 1.5 mm above the skin
    assert _check(entry, target).crossed == ("air outside the body",)
    assert _check(entry, target, air_allowance_mm=2.0).crossings == ()


def test_entry_distance_to_the_skin_and_its_normal() -> None:
    labels, geo = _phantom()
    on_skin_voxel = skin_contact(labels, geo, (10.0, 5.0, 10.0))
    assert on_skin_voxel.distance_mm == pytest.approx(0.5)  # skin face at y = 4.5
    assert not on_skin_voxel.entry_outside_body
    assert on_skin_voxel.normal_lps == pytest.approx((0.0, -1.0, 0.0))
    assert skin_contact(labels, geo, (10.0, 7.5, 10.0)).distance_mm == pytest.approx(3.0)
    outside = skin_contact(labels, geo, (10.0, 2.0, 10.0))
    assert outside.distance_mm == pytest.approx(2.5) and outside.entry_outside_body
    # near the corner x = 2 - 0.5 the nearest face is the side one
    assert skin_contact(labels, geo, (2.0, 9.0, 10.0)).distance_mm == pytest.approx(0.5)


def test_entry_side_follows_the_skin_normal() -> None:
    entry, target = (10.0, 5.0, 10.0), (10.0, 15.0, 10.0)
    up = _check(entry, target)
    assert up.faces_up and up.up_angle_deg == pytest.approx(0.0)
    down = _check(entry, target, up_lps=(0.0, 1.0, 0.0))
    assert not down.faces_up and down.up_angle_deg == pytest.approx(180.0)


def test_lps_to_index_follows_the_grid_orientation() -> None:
    """Prone (HFP) grid: rows and columns run against x and y; the bone voxel is placed by
    its LPS point and must be found there."""
    geo = axial_grid(
        PatientPosition.HFP, rows=20, columns=20, pixel_mm=1.0, n_slices=5, slice_mm=2.0,
        centre_lps_mm=(0.0, 0.0, 0.0),
    )  # fmt: skip
    labels = np.full(geo.shape, LabelCode.SOFT_TISSUE, dtype=np.uint8)
    k, j, i = np.rint(geo.lps_to_kji((4.0, -3.0, 0.0))).astype(int)
    labels[k, j, i] = LabelCode.BONE
    centre = geo.kji_to_lps((k, j, i))
    kw: dict[str, Any] = {
        "up_lps": (0, 1, 0),
        "lesion_centre_lps_mm": (0, 0, 0),
        "bone_allowance_mm": 0,
    }
    hit = check_path(labels, geo, centre + (-5, 0, 0), centre + (5, 0, 0), **kw)
    assert hit.crossed == ("bone",)
    miss = check_path(labels, geo, centre + (-5, 2, 0), centre + (5, 2, 0), **kw)
    assert miss.crossed == ()


# ------------------------------------------------------------------- plan checks on literals


@pytest.fixture(scope="module")
def no_path_case():
    return build_case("vertebral_body_no_path")


def _plan(truth, **changes: Any) -> dict[str, Any]:
    """A plan JSON that agrees with the truth, then ``changes`` (dotted keys)."""
    plan: dict[str, Any] = {
        "lesion": {
            "length_mm": truth.length_mm,
            "width_mm": truth.width_mm,
            "center_lps_mm": list(truth.lesion_centre_lps_mm),
        },
        "dose": {
            "caliper_volume_ml": truth.caliper_volume_ml,
            "anaesthetic_ml": truth.anaesthetic_ml,
            "borderline": truth.borderline,
            "alternative_anaesthetic_ml": [],
            "steroid": truth.steroid,
        },
        "needles": [],
        "warnings": ["no safe straight path within 145 mm: of 900 paths, 900 crosses bone"],
    }
    for key, value in changes.items():
        part, field = key.split(".") if "." in key else (None, key)
        (plan[part] if part else plan)[field] = value
    return plan


def _failed(evaluation) -> dict[str, Stage]:
    return {c.name: c.stage for c in evaluation.checks if not c.ok}


def test_a_plan_agreeing_with_the_truth_passes(no_path_case) -> None:
    c = no_path_case
    e = evaluate(_plan(c.truth), c.truth, c.labels, c.geometry, Tolerances())
    assert _failed(e) == {}
    assert e.length_error_mm == pytest.approx(0.0)


def test_failures_are_labelled_by_stage(no_path_case) -> None:
    c = no_path_case
    t = c.truth
    plan = _plan(
        t,
        **{"lesion.length_mm": t.length_mm + 10.0, "dose.steroid": "triamcinolone"},
        warnings=["large vessels are not segmented yet: check the path against vessels"],
    )
    e = evaluate(plan, t, c.labels, c.geometry, Tolerances())
    assert _failed(e) == {
        "length": Stage.MEASUREMENT,
        "steroid": Stage.DOSING,
        "dose from own volume": Stage.DOSING,  # V was not recomputed from the new L
        "no-path reason": Stage.OUTPUT,
    }
    assert e.length_error_mm == pytest.approx(10.0)


def test_a_lesion_measured_elsewhere_fails_the_measurement(no_path_case) -> None:
    c = no_path_case
    t = c.truth
    elsewhere = np.add(t.lesion_centre_lps_mm, (0.0, 0.0, 40.0))
    e = evaluate(
        _plan(t, **{"lesion.center_lps_mm": list(elsewhere)}), t, c.labels, c.geometry, Tolerances()
    )
    assert _failed(e) == {"position": Stage.MEASUREMENT}
    assert e.centre_error_mm == pytest.approx(40.0)


def test_a_needle_where_none_is_safe_fails_the_trajectory(no_path_case) -> None:
    c = no_path_case
    t = c.truth
    centre = np.asarray(t.lesion_centre_lps_mm)
    entry = centre + 60.0 * np.asarray(t.up_direction_lps)
    needle = {
        "entry_lps_mm": list(entry), "target_lps_mm": list(centre), "depth_mm": 60.0,
        "needle_length_mm": 50.0, "craniocaudal_angle_deg": 0.0,
    }  # fmt: skip
    e = evaluate(_plan(t, needles=[needle]), t, c.labels, c.geometry, Tolerances())
    failed = _failed(e)
    assert failed["no path expected"] is Stage.TRAJECTORY
    assert failed["needle length"] is Stage.TRAJECTORY
    assert "bone" in e.needles[0].path.crossed  # straight through the vertebra's back


def test_truth_borderline_accepts_either_named_tier(no_path_case) -> None:
    c = no_path_case
    t = dataclasses.replace(c.truth, borderline=True, alternative_anaesthetic_ml=5.0)
    other = _plan(t, **{"dose.anaesthetic_ml": 5.0, "dose.borderline": True})
    other["dose"]["alternative_anaesthetic_ml"] = [t.anaesthetic_ml]
    other["dose"]["caliper_volume_ml"] = 10.0  # so that its own tier is 5 mL
    other["lesion"]["length_mm"], other["lesion"]["width_mm"] = 20.0, 10.0 * math.sqrt(10.0)
    failed = _failed(evaluate(other, t, c.labels, c.geometry, Tolerances(tol_mm=100.0)))
    assert "tier" not in failed and "borderline" not in failed
    unflagged = _plan(t, **{"dose.borderline": False})
    assert _failed(evaluate(unflagged, t, c.labels, c.geometry, Tolerances()))["borderline"] == (
        Stage.DOSING
    )


# ----------------------------------------------------------------------------- the command


def test_replay_has_help_for_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="ctplan")
    cli.register(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["replay", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--all", "--full-size", "--no-check", "--host", "--dicom-port", "--ae-title", "--http",
        "--timeout-s", "--tol-mm", "--tol-voxels", "--skin-tol-mm", "--json", "--junit",
    ):  # fmt: skip
        assert option in out
    assert "exit codes" in out


def _replay(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTPLAN_")}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "replay", *argv],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_unknown_input_is_a_usage_error() -> None:
    done = _replay("no_such_case")
    assert done.returncode == 2
    assert "neither a case folder nor a case name" in done.stderr


def test_unreachable_service_has_its_own_exit_code(tmp_path: Path) -> None:
    port = free_port()
    report = tmp_path / "r.json"
    done = _replay(
        "rib_lateral_small", "--http", f"http://127.0.0.1:{port}", "--dicom-port", str(port),
        "--json", str(report), "--junit", str(tmp_path / "r.xml"),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "no answer from the HTTP API" in done.stderr
    cases = json.loads(report.read_text())["cases"]
    assert [c["failures"] for c in cases] == [["ingest:service reachable"]]


E2E_CASES = ("rib_lateral_small", "vertebral_body_no_path", "costovertebral_tilted")


@pytest.fixture(scope="module")
def replayed(service: RunningService, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("replay")
    done = _replay(
        *E2E_CASES, "--build-dir", str(out / "cases"), "--http", service.http,
        "--dicom-port", str(service.dicom_port), "--ae-title", service.ae_title,
        "--timeout-s", "30", "--json", str(out / "r.json"), "--junit", str(out / "r.xml"),
        timeout=240,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done, json.loads((out / "r.json").read_text()), ET.parse(out / "r.xml"), out


@pytest.mark.e2e
def test_replay_reports_every_case_and_exits_by_the_outcome(replayed) -> None:
    done, report, _, _ = replayed
    cases = {c["name"]: c for c in report["cases"]}
    assert list(cases) == list(E2E_CASES)
    rows = [line.split() for line in done.stdout.splitlines()]
    for name, case in cases.items():
        row = next(r for r in rows if r and r[0] == name)
        assert ("PASS" if case["passed"] else "FAIL") in row
        assert case["passed"] == all(c["ok"] for c in case["checks"])
        ingest = [c for c in case["checks"] if c["stage"] == "ingest"]
        assert ingest and all(c["ok"] for c in ingest), ingest
        if case["plan"] is None:  # refused by the service: a measurement failure saying why
            created = next(c for c in case["checks"] if c["name"] == "plan created")
            assert (created["stage"], created["ok"]) == ("measurement", False)
            assert "HTTP 422" in created["detail"]
    assert report["passed"] == all(c["passed"] for c in cases.values())
    assert done.returncode == (0 if report["passed"] else 1) == report["exit_code"]


@pytest.mark.e2e
def test_junit_has_one_failure_per_failed_check(replayed) -> None:
    _, report, junit, _ = replayed
    testcases = {t.get("name"): t for t in junit.getroot().iter("testcase")}
    assert list(testcases) == list(E2E_CASES)
    for case in report["cases"]:
        failures = testcases[case["name"]].findall("failure")
        assert [f"{f.get('type')}:{f.get('message').split('] ')[1]}" for f in failures] == case[
            "failures"
        ]


@pytest.mark.e2e
def test_report_figures_follow_from_the_saved_plan(replayed) -> None:
    _, report, _, out = replayed
    case = next(c for c in report["cases"] if c["plan"] is not None)
    truth = load_truth(out / "cases" / case["name"])
    plan, evaluation = case["plan"], case["evaluation"]
    error = plan["lesion"]["length_mm"] - truth.length_mm
    assert evaluation["length_error_mm"] == pytest.approx(error)
    limit = max(1.5, 1.5 * max(truth.geometry.spacing_mm))
    length_check = next(c for c in case["checks"] if c["name"] == "length")
    assert length_check["ok"] == (abs(error) <= limit)
    tier_ok = next(c for c in case["checks"] if c["name"] == "tier")["ok"]
    assert tier_ok == (plan["dose"]["anaesthetic_ml"] == truth.anaesthetic_ml)
    for needle, checked in zip(plan["needles"], evaluation["needles"], strict=True):
        span = np.subtract(needle["target_lps_mm"], needle["entry_lps_mm"])
        assert checked["path"]["length_mm"] == pytest.approx(float(np.linalg.norm(span)))


@pytest.mark.e2e
def test_no_path_case_is_judged_on_the_needles_given(replayed) -> None:
    _, report, _, _ = replayed
    case = next(c for c in report["cases"] if c["name"] == "vertebral_body_no_path")
    check = next(c for c in case["checks"] if c["name"] == "no path expected")
    assert check["stage"] == "trajectory"
    assert check["ok"] == (case["plan"]["needles"] == [])


@pytest.mark.e2e
def test_no_check_sends_any_folder_and_prints_the_state(
    service: RunningService, tmp_path: Path
) -> None:
    write_series(make_ct_series(slices=6), tmp_path / "study" / "a")
    write_series(make_ct_series(slices=4), tmp_path / "study" / "b")
    done = _replay(
        "--no-check", str(tmp_path / "study"), "--http", service.http,
        "--dicom-port", str(service.dicom_port), "--timeout-s", "30",
        "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mode"] == "no-check"
    assert sorted(c["series_state"]["instance_count"] for c in report["cases"]) == [4, 6]
    assert done.stdout.count("complete") == 2


def test_the_replay_imports_nothing_of_the_planner_or_the_api() -> None:
    """It must test what users get: the service over DICOM and HTTP, not planner internals."""
    code = (
        "import sys, sample_series.cli, sample_series.replay;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('planner', 'api')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

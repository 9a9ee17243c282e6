"""The sample catalogue: coverage of the clinical space, every case builds, access holds."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from sample_series.catalogue import CASES, E2E_CASE, list_cases
from sample_series.geometry import PatientPosition
from sample_series.phantom import SampleCase, build_case
from sample_series.reach import SurveySettings, check_access
from sample_series.spec import BoneSite, NeedleAccess
from sample_series.tissues import LabelCode
from sample_series.truth import anaesthetic_tier, borderline_check, caliper_volume_ml


@cache
def built(name: str) -> SampleCase:
    return build_case(name)


def _volume(spec) -> float:
    m = spec.lesion.measures
    return caliper_volume_ml(m.length_mm, m.width_mm)


def test_catalogue_names_and_listing() -> None:
    assert len(CASES) >= 12
    assert all(name == spec.name for name, spec in CASES.items())
    assert [s.name for s in list_cases()] == list(CASES)
    assert len({s.seed for s in list_cases()}) == len(CASES)


def test_catalogue_covers_sites_positions_tiers_and_access() -> None:
    specs = list_cases()
    assert {s.site for s in specs} == set(BoneSite)
    assert {s.position for s in specs} == set(PatientPosition)
    assert {anaesthetic_tier(_volume(s)).anaesthetic_ml for s in specs} == {1.5, 5.0, 10.0, 15.0}
    assert {s.access for s in specs} == set(NeedleAccess)
    assert any(s.contrast for s in specs)
    assert any(s.instances_reversed for s in specs) and any(not s.instances_reversed for s in specs)


@pytest.mark.parametrize("boundary_ml", [10.0, 20.0, 50.0])
def test_borderline_cases_near_each_boundary(boundary_ml: float) -> None:
    near = [s for s in list_cases() if abs(_volume(s) / boundary_ml - 1.0) <= 0.05]
    assert near, f"no case within 5 % of {boundary_ml} mL"
    for spec in near:
        m = spec.lesion.measures
        for scan in (spec.small, spec.full):
            error = max(scan.pixel_mm, scan.slice_mm)
            assert borderline_check(m.length_mm, m.width_mm, error).borderline, spec.name


def test_non_borderline_cases_are_clear_at_both_sizes() -> None:
    near = (10.0, 20.0, 50.0)
    for spec in list_cases():
        v = _volume(spec)
        if any(abs(v / b - 1.0) <= 0.1 for b in near):
            continue
        m = spec.lesion.measures
        error = max(spec.small.pixel_mm, spec.small.slice_mm)
        assert not borderline_check(m.length_mm, m.width_mm, error).borderline, spec.name


def test_e2e_case_is_a_small_lateral_rib_lesion() -> None:
    case = built(E2E_CASE)
    t = case.truth
    assert (t.site, t.patient_position, t.anaesthetic_ml) == ("rib_lateral", "HFS", 1.5)
    assert t.length_mm == pytest.approx(15.0) and t.width_mm == pytest.approx(10.0)
    assert not t.borderline and t.path_expected and t.steroid == "triamcinolone"
    assert case.geometry.shape[1] <= 192


@pytest.mark.parametrize("name", list(CASES))
def test_every_case_builds_small(name: str) -> None:
    case = built(name)
    spec, t = case.spec, case.truth
    scan = spec.small
    assert case.geometry.shape == (scan.n_slices, scan.rows, scan.columns)
    assert len(case.datasets) == scan.n_slices
    assert case.labels.dtype == np.uint8 and case.labels.shape == case.geometry.shape
    lesion = np.argwhere(case.labels == LabelCode.LESION)
    assert len(lesion) > 10
    # the whole lesion is inside the scan, with margin
    assert lesion[:, 0].min() > 0 and lesion[:, 0].max() < scan.n_slices - 1
    assert (
        case.labels[tuple(np.rint(case.geometry.lps_to_kji(t.seed_lps_mm)).astype(int))]
        == LabelCode.LESION
    )
    fractions = dict(t.replaced_fractions)
    assert fractions.get(spec.bone_group, 0.0) >= 0.05, fractions
    # the lesion stays in the body and off the canal and the vessels
    assert not {"air", "table", "canal", "vessel"} & set(fractions), fractions
    assert fractions.get("lung", 0.0) < 0.05, fractions
    assert t.path_expected == (spec.access is not NeedleAccess.NONE)
    assert (t.no_path_reason is None) == t.path_expected


def test_access_declarations_hold() -> None:
    failures = []
    for spec in list_cases():
        check = check_access(spec)
        if not check.consistent:
            failures.append(
                (spec.name, [(s.settings.tilts_deg, s.safe_tilts_deg) for s in check.evidence])
            )
    assert not failures, failures


def test_access_is_judged_by_the_clinical_clearance_rule() -> None:
    """The truth's survey keeps the planner's rule (22 G radius + 3 mm margin) from every
    forbidden structure; the tilted-only case has a tilted route with that clearance and no
    route within 10 degrees of the axial plane, even crossing the target bone near the lesion."""
    rule_mm = 0.72 / 2 + 3.0
    assert SurveySettings().clearance_mm == pytest.approx(rule_mm)
    near, far = check_access(CASES["costovertebral_tilted"]).evidence
    assert max(c for _, c in far.clearance_by_tilt_mm) >= rule_mm
    assert max(c for _, c in near.clearance_by_tilt_mm) < rule_mm

"""Plans whose automatic outline is not to be trusted say so first: a series coarser than the
validated grid, an outline on no visible edge."""

from __future__ import annotations

import dataclasses

import pytest
from synthetic_lesion import make_lesion_ct

from planner.anatomy import segment_anatomy
from planner.manual import ManualMeasurement
from planner.plan import PlanRequest, make_plan
from planner.rules import PlanningRules
from planner.volume import load_volume


def _plan(pixel_mm: float, slice_mm: float, slices: int, rules: PlanningRules, manual=False):
    ct = make_lesion_ct(pixel_mm=pixel_mm, slice_mm=slice_mm, slices=slices)
    volume = load_volume(ct.datasets)
    anatomy = segment_anatomy(volume)
    if manual:
        request = PlanRequest(
            manual=ManualMeasurement(center_lps_mm=ct.seed_lps_mm, length_mm=18, width_mm=18)
        )
    else:
        request = PlanRequest(seed_lps_mm=ct.seed_lps_mm)
    return make_plan(volume, anatomy, request, rules)


def _grid_warnings(plan) -> list[str]:
    return [w for w in plan.warnings if w.startswith("UNVALIDATED GRID")]


@pytest.mark.parametrize(("pixel_mm", "slice_mm"), [(1.0, 2.5), (1.2, 1.0)])
def test_a_coarse_series_is_flagged_first(pixel_mm, slice_mm):
    plan = _plan(pixel_mm, slice_mm, 24, PlanningRules())
    assert plan.warnings[0].startswith("UNVALIDATED GRID"), plan.warnings
    assert f"{slice_mm:.2g} mm slices" in plan.warnings[0]
    assert "manual mode" in plan.warnings[0]


def test_a_series_on_the_validated_grid_is_not_flagged():
    plan = _plan(0.8, 1.0, 40, PlanningRules())
    assert plan.measurement.length_mm > 0
    assert _grid_warnings(plan) == []


def test_the_validated_grid_is_a_setting():
    rules = PlanningRules()
    coarse_ok = dataclasses.replace(
        rules,
        segmentation=dataclasses.replace(
            rules.segmentation, validated_pixel_mm=1.0, validated_slice_mm=2.5
        ),
    )
    assert _grid_warnings(_plan(1.0, 2.5, 24, coarse_ok)) == []


def test_manual_measurements_are_not_flagged():
    assert _grid_warnings(_plan(1.0, 2.5, 24, PlanningRules(), manual=True)) == []


def test_an_uncertain_outline_comes_first_in_the_plan():
    rules = PlanningRules()
    strict = dataclasses.replace(
        rules, segmentation=dataclasses.replace(rules.segmentation, max_unseen_edge_fraction=-1.0)
    )
    assert not any(w.startswith("UNCERTAIN OUTLINE") for w in _plan(0.8, 1.0, 40, rules).warnings)
    assert _plan(0.8, 1.0, 40, strict).warnings[0].startswith("UNCERTAIN OUTLINE")


def test_an_automatic_diameter_carries_the_outline_error_a_manual_one_a_voxel():
    rules = PlanningRules()
    wider = dataclasses.replace(
        rules, segmentation=dataclasses.replace(rules.segmentation, outline_error_mm=2.5)
    )
    auto, auto_wider = _plan(0.8, 1.0, 40, rules), _plan(0.8, 1.0, 40, wider)
    m, mw = auto.measurement, auto_wider.measurement
    assert (m.length_mm, m.width_mm) == (mw.length_mm, mw.width_mm)
    # one voxel along the diameter (0.8 to 1.0 mm here) plus the outline's error
    assert 1.8 - 1e-9 <= m.length_uncertainty_mm <= 2.0 + 1e-9
    assert mw.length_uncertainty_mm == pytest.approx(m.length_uncertainty_mm + 1.5)
    assert mw.width_uncertainty_mm == pytest.approx(m.width_uncertainty_mm + 1.5)
    low, high = auto_wider.dose.volume_interval_ml
    assert low < auto.dose.volume_interval_ml[0] and high > auto.dose.volume_interval_ml[1]
    manual = _plan(0.8, 1.0, 40, rules, manual=True).measurement
    assert 0.8 - 1e-9 <= manual.length_uncertainty_mm <= 1.0 + 1e-9

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

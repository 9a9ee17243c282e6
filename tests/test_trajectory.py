"""Needle path search on a small synthetic patient (fat block, bone slab, lesion sphere)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_lesion import make_lesion_ct

from planner.anatomy import segment_anatomy
from planner.plan import PlanRequest, make_plan
from planner.rules import PlanningRules, TrajectoryRules
from planner.trajectory import skin_surface_point
from planner.volume import load_volume


@pytest.fixture(scope="module")
def patient():
    ct = make_lesion_ct()
    volume = load_volume(ct.datasets)
    return ct, volume, segment_anatomy(volume)


def test_entry_is_moved_onto_the_skin_boundary(patient):
    _, volume, anatomy = patient
    geo = volume.geometry
    skin = geo.kji_to_lps(anatomy.skin_kji)
    normals = anatomy.skin_normals_lps.astype(float)
    for n in range(0, len(skin), max(1, len(skin) // 25)):
        p = skin_surface_point(volume, skin[n], -normals[n])
        outward = geo.lps_to_kji(p + 0.6 * normals[n])
        inward = geo.lps_to_kji(p - 0.6 * normals[n])
        hu_out = volume.hu[
            tuple(np.clip(np.rint(outward), 0, np.asarray(geo.shape) - 1).astype(int))
        ]
        hu_in = volume.hu[tuple(np.clip(np.rint(inward), 0, np.asarray(geo.shape) - 1).astype(int))]
        assert hu_out < -500 < hu_in or np.linalg.norm(p - skin[n]) == 0.0


def test_plan_enters_from_the_up_side_and_keeps_clear_of_bone(patient):
    ct, volume, anatomy = patient
    plan = make_plan(volume, anatomy, PlanRequest(seed_lps_mm=ct.seed_lps_mm), PlanningRules())
    assert plan.trajectory.needles, plan.warnings
    needle = plan.trajectory.needles[0]
    assert needle.entry_lps_mm[1] < needle.target_lps_mm[1]  # HFS: enters anteriorly
    assert needle.clearance_mm["lung or air"] >= 3.36
    assert needle.needle_length_mm >= needle.depth_mm + 10.0
    assert "bone" in " ".join(plan.trajectory.structures_checked)


def test_prone_override_moves_the_entry_to_the_back_or_refuses_with_a_reason(patient):
    ct, volume, anatomy = patient
    plan = make_plan(
        volume,
        anatomy,
        PlanRequest(seed_lps_mm=ct.seed_lps_mm, patient_position="HFP"),
        PlanningRules(),
    )
    for needle in plan.trajectory.needles:
        assert needle.entry_lps_mm[1] > needle.target_lps_mm[1]
    if not plan.trajectory.needles:
        assert any("no safe straight path" in w or "no reachable" in w for w in plan.warnings)


def test_no_path_when_needles_are_too_short(patient):
    ct, volume, anatomy = patient
    rules = PlanningRules(trajectory=TrajectoryRules(needle_lengths_mm=(15.0,)))
    plan = make_plan(volume, anatomy, PlanRequest(seed_lps_mm=ct.seed_lps_mm), rules)
    assert plan.trajectory.needles == ()
    assert any("no reachable skin entry" in w for w in plan.warnings), plan.warnings
    assert plan.dose.anaesthetic_ml > 0  # the dose card stands without a path


def test_a_leaked_outline_never_lets_a_path_cross_bone_away_from_the_target(patient):
    from planner.lesion import LesionMask
    from planner.trajectory import plan_trajectories

    ct, volume, anatomy = patient
    geo = volume.geometry
    good = make_plan(volume, anatomy, PlanRequest(seed_lps_mm=ct.seed_lps_mm), PlanningRules())
    target = good.target_lps_mm
    # An outline that leaked over the whole patient, bone included.
    leaked = LesionMask(
        mask=anatomy.body.copy(),
        offset_kji=(0, 0, 0),
        seed_lps_mm=ct.seed_lps_mm,
        hu_window=None,
    )
    for position in ("HFS", "HFP", "HFDL"):
        rules = TrajectoryRules()
        result = plan_trajectories(volume, anatomy, leaked, target, position, rules)
        for needle in (*result.needles, *result.alternatives):
            e, t = np.asarray(needle.entry_lps_mm), np.asarray(needle.target_lps_mm)
            depth = float(np.linalg.norm(t - e))
            s = np.linspace(0.0, 1.0, int(depth * 4) + 2)
            pts = e + s[:, None] * (t - e)
            far = depth * (1.0 - s) > rules.target_bone_allowance_mm + 1.0
            idx = np.rint(geo.lps_to_kji(pts[far])).astype(int)
            assert not anatomy.bone[idx[:, 0], idx[:, 1], idx[:, 2]].any(), position


def _exhaustive_choice(volume, anatomy, lesion, target, rules):
    """What checking every candidate and ranking the safe ones gives (no pruning)."""
    from planner.path_check import PathChecker
    from planner.path_search import (
        CLEARANCE_SCORE_CAP_MM,
        MAX_CANDIDATES,
        MIN_ALTERNATIVE_SEPARATION_MM,
        path_scores,
    )
    from planner.trajectory import UP_LPS, _candidates

    target = np.asarray(target, dtype=float)
    cands, _, _ = _candidates(volume, anatomy, target, np.asarray(UP_LPS["HFS"]), rules)
    checker = PathChecker(volume, anatomy, lesion, target, cands.entries_lps_mm, 3.36, rules)
    n = cands.depth_mm.size
    idx = np.arange(n)
    if n > MAX_CANDIDATES:
        idx = idx[np.linspace(0, n - 1, MAX_CANDIDATES).astype(int)]
    full = checker.check(idx)
    ok = idx[full.ok]
    capped = [np.minimum(c[full.ok], CLEARANCE_SCORE_CAP_MM) for c in full.clearance_mm.values()]
    scores = path_scores(rules, cands, ok, np.minimum.reduce(capped))
    chosen: list[int] = []
    for o in np.argsort(scores, kind="stable"):
        e = cands.entries_lps_mm[ok[o]]
        far = [np.linalg.norm(e - cands.entries_lps_mm[ok[c]]) for c in chosen]
        if all(d >= MIN_ALTERNATIVE_SEPARATION_MM for d in far):
            chosen.append(int(o))
        if len(chosen) > rules.alternatives:
            break
    expected = [(float(scores[c]), float(cands.depth_mm[ok[c]])) for c in chosen]
    return checker, idx, full, expected


def test_best_first_search_finds_what_checking_every_candidate_finds(patient):
    from planner.trajectory import plan_trajectories

    ct, volume, anatomy = patient
    plan = make_plan(volume, anatomy, PlanRequest(seed_lps_mm=ct.seed_lps_mm), PlanningRules())
    rules = TrajectoryRules()
    result = plan_trajectories(volume, anatomy, plan.lesion, plan.target_lps_mm, "HFS", rules)
    checker, idx, full, expected = _exhaustive_choice(
        volume, anatomy, plan.lesion, plan.target_lps_mm, rules
    )
    got = [(n.score.total, n.score.depth_mm) for n in (*result.needles, *result.alternatives)]
    assert np.allclose(got, expected, rtol=0.0, atol=1e-9), (got, expected)
    assert result.candidates_evaluated == idx.size
    assert result.candidates_checked < result.candidates_evaluated  # some were pruned
    # The screen never passes over a path the full check would accept.
    assert np.all(checker.screen(idx)[full.ok])


def test_the_fill_targets_cover_the_rest_of_the_junction(patient):
    from planner.lesion import segment_lesion
    from planner.measure import measure_lesion
    from planner.target import (
        FILL_TARGET_COUNT,
        FILL_TARGET_SPACING_MM,
        TargetMode,
        _junction,
        choose_targets,
        fill_targets,
    )

    ct, volume, anatomy = patient
    geo = volume.geometry
    lesion = segment_lesion(volume, anatomy, ct.seed_lps_mm, PlanningRules().segmentation)
    centre = measure_lesion(lesion, geo).center_lps_mm
    first, _ = choose_targets(
        volume, anatomy, lesion, centre, (0.0, -1.0, 0.0), TargetMode.PERIOSTEAL, 5
    )
    tried = np.array([t.lps_mm for t in first])
    filled = np.array([t.lps_mm for t in fill_targets(volume, anatomy, lesion, tried)])
    assert len(filled) > len(tried)
    # Each is a junction voxel (on the grid, slice snapped), 2 mm or more from all before it.
    junction, _ = _junction(anatomy, lesion, geo)
    junction_lps = geo.kji_to_lps(junction)
    for n, p in enumerate(filled):
        assert np.linalg.norm(junction_lps - p, axis=1).min() <= 0.5 * max(geo.spacing_mm)
        before = np.vstack([tried, filled[:n]])
        assert np.linalg.norm(before - p, axis=1).min() >= FILL_TARGET_SPACING_MM - 0.5
    # Below the cap, together they leave no part of the junction farther than the spacing
    # from a target.
    assert len(filled) < FILL_TARGET_COUNT
    every = np.vstack([tried, filled])
    gaps = np.linalg.norm(junction_lps[:, None, :] - every[None, :, :], axis=2).min(axis=1)
    assert gaps.max() < FILL_TARGET_SPACING_MM + max(geo.spacing_mm)


def test_a_safe_window_between_the_transverse_processes_is_found():
    # costovertebral_tilted at full size: its only safe route is tilted between two transverse
    # processes and opens onto a few millimetres of the junction. None of the first spread
    # candidates lies there (on this outline); the fill finds it.
    from sample_series.catalogue import CASES
    from sample_series.phantom import build_case

    case = build_case(CASES["costovertebral_tilted"], full_size=True)
    volume = load_volume(case.datasets)
    anatomy = segment_anatomy(volume)
    plan = make_plan(
        volume, anatomy, PlanRequest(seed_lps_mm=case.truth.seed_lps_mm), PlanningRules()
    )
    assert plan.trajectory.needles, plan.warnings
    assert plan.trajectory.needles[0].craniocaudal_angle_deg > 1.0

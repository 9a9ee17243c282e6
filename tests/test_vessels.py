"""Large vessels: found on contrast-enhanced CT, honestly not checked on non-contrast CT, and
never crossed by a planned path.

Two kinds of patient: a tiny synthetic one (a soft-tissue block with one blood-pool cylinder,
built as a CTVolume directly) for the path checks, and the sample phantom with a
contrast-enhanced aorta and heart (``vertebral_body_t8``) for the segmentation against the
ground-truth labels.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from planner.anatomy import Anatomy, segment_anatomy
from planner.distance import distance_map_mm
from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask
from planner.path_check import PathChecker
from planner.rules import TrajectoryRules
from planner.trajectory import plan_trajectories
from planner.vessels import NON_CONTRAST_WARNING
from planner.volume import CTVolume, load_volume
from sample_series.catalogue import CASES
from sample_series.phantom import SampleCase, build_case
from sample_series.tissues import LabelCode

SHAPE = (40, 96, 96)  # slices of 2.5 mm, 1 mm pixels
VESSEL_CENTRE_XY = (0.0, -8.0)  # LPS: anterior of the centre (HFS: anterior faces up)
VESSEL_RADIUS_MM = 9.0
REQUIRED_MM = 0.36 + 3.0  # 22 G radius + the default clearance margin


def _block_volume(blood_hu: float, agent: str) -> CTVolume:
    """Soft tissue (40 HU, noise 10 HU) in air, with a blood-pool cylinder along z."""
    geo = VolumeGeometry(
        origin_lps_mm=(-47.5, -47.5, -48.75),
        spacing_mm=(1.0, 1.0, 2.5),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        shape=SHAPE,
    )
    x = geo.origin_lps_mm[0] + np.arange(SHAPE[2])
    y = geo.origin_lps_mm[1] + np.arange(SHAPE[1])
    yy, xx = np.meshgrid(y, x, indexing="ij")
    body = (xx / 42.0) ** 2 + (yy / 36.0) ** 2 <= 1.0
    vessel = (xx - VESSEL_CENTRE_XY[0]) ** 2 + (
        yy - VESSEL_CENTRE_XY[1]
    ) ** 2 <= VESSEL_RADIUS_MM**2
    hu = np.full(SHAPE, -1000.0)
    hu[:, body] = 40.0
    hu[:, vessel] = blood_hu
    hu[:, body] += np.random.default_rng(7).normal(0.0, 10.0, (SHAPE[0], int(body.sum())))
    return CTVolume(
        hu=np.rint(hu).astype(np.int16),
        geometry=geo,
        patient_position="HFS",
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        frame_of_reference_uid="1.2.3.5",
        slices=(),
        contrast_agent=agent,
    )


@cache
def _block(blood_hu: float, agent: str) -> tuple[CTVolume, Anatomy]:
    volume = _block_volume(blood_hu, agent)
    return volume, segment_anatomy(volume)


def _true_vessel(volume: CTVolume) -> np.ndarray:
    pts = volume.geometry.kji_to_lps(np.indices(SHAPE).reshape(3, -1).T)
    r2 = (pts[:, 0] - VESSEL_CENTRE_XY[0]) ** 2 + (pts[:, 1] - VESSEL_CENTRE_XY[1]) ** 2
    return (r2 <= VESSEL_RADIUS_MM**2).reshape(SHAPE)


def _small_lesion(volume: CTVolume, centre_lps_mm: tuple[float, float, float]) -> LesionMask:
    """A 3 mm sphere of 'lesion' around a target point."""
    geo = volume.geometry
    kji = np.rint(geo.lps_to_kji(centre_lps_mm)).astype(int)
    lo = kji - [2, 4, 4]
    grid = np.indices((5, 9, 9)).reshape(3, -1).T + lo
    near = np.linalg.norm(geo.kji_to_lps(grid) - np.asarray(centre_lps_mm), axis=1) <= 3.0
    return LesionMask(
        mask=near.reshape(5, 9, 9),
        offset_kji=(int(lo[0]), int(lo[1]), int(lo[2])),
        seed_lps_mm=centre_lps_mm,
        hu_window=None,
    )


def test_blood_pool_of_a_contrast_series_is_a_large_vessel_not_bone() -> None:
    volume, anatomy = _block(250.0, "IODINATED CONTRAST")
    assert anatomy.contrast_enhanced
    assert "large vessels" in anatomy.structures_found
    assert "large vessel" in anatomy.distance_mm
    assert anatomy.vessel is not None and anatomy.vessel_warning is None
    truth = _true_vessel(volume)
    assert (anatomy.vessel & truth).sum() >= 0.9 * truth.sum()
    assert not (anatomy.vessel & ~truth).any()
    assert not (anatomy.bone & anatomy.vessel).any()  # 250 HU, but not bone


def test_a_large_opacified_pool_shows_contrast_without_the_header() -> None:
    _, anatomy = _block(250.0, "")
    assert anatomy.contrast_enhanced and "large vessels" in anatomy.structures_found


def test_non_contrast_series_says_vessels_are_not_checked() -> None:
    volume, anatomy = _block(40.0, "")
    assert not anatomy.contrast_enhanced and anatomy.vessel is None
    assert "large vessel" not in anatomy.distance_mm
    assert anatomy.vessel_warning == NON_CONTRAST_WARNING
    target = (0.0, 10.0, 0.0)
    result = plan_trajectories(
        volume, anatomy, _small_lesion(volume, target), target, "HFS", TrajectoryRules()
    )
    assert NON_CONTRAST_WARNING in result.warnings
    assert not any("large vessel" in s for s in result.structures_checked)


def test_contrast_header_without_an_opacified_vessel_is_warned() -> None:
    _, anatomy = _block(40.0, "OMNIPAQUE")
    assert anatomy.contrast_enhanced and anatomy.vessel is None
    assert anatomy.vessel_warning is not None
    assert "no opacified large vessel found" in anatomy.vessel_warning
    assert "OMNIPAQUE" in anatomy.vessel_warning


def test_a_path_through_the_vessel_is_refused() -> None:
    volume, anatomy = _block(250.0, "IODINATED CONTRAST")
    target = np.array([0.0, 12.0, 0.0])  # 11 mm behind the vessel's posterior wall
    straight_entry = np.array([[0.0, -36.0, 0.0]])  # anterior skin, in line with the vessel
    checker = PathChecker(
        volume,
        anatomy,
        _small_lesion(volume, tuple(target)),
        target,
        straight_entry,
        REQUIRED_MM,
        TrajectoryRules(),
    )
    checks = checker.check(np.array([0]))
    assert not checks.ok[0] and checks.rejected["crosses large vessel"][0]
    assert checks.clearance_mm["large vessel"][0] == 0.0

    result = plan_trajectories(
        volume,
        anatomy,
        _small_lesion(volume, tuple(target)),
        tuple(target),
        "HFS",
        TrajectoryRules(),
    )
    assert result.needles, result.warnings  # around the vessel, with its clearance
    assert "large vessel" in result.structures_checked
    for needle in (*result.needles, *result.alternatives):
        assert needle.clearance_mm["large vessel"] >= REQUIRED_MM
        e, t = np.asarray(needle.entry_lps_mm), np.asarray(needle.target_lps_mm)
        pts = e + np.linspace(0.0, 1.0, 400)[:, None] * (t - e)
        idx = np.rint(volume.geometry.lps_to_kji(pts)).astype(int)
        assert not anatomy.vessel[idx[:, 0], idx[:, 1], idx[:, 2]].any()


def test_a_target_against_the_vessel_has_no_safe_path() -> None:
    """Near the target bone may be touched (periosteum), a vessel never."""
    volume, anatomy = _block(250.0, "IODINATED CONTRAST")
    target = (0.0, 3.0, 0.0)  # 2 mm behind the vessel's posterior wall
    lesion = _small_lesion(volume, target)
    result = plan_trajectories(volume, anatomy, lesion, target, "HFS", TrajectoryRules())
    assert result.needles == ()
    reason = result.warnings[-1]
    assert f"of {result.candidates_evaluated} paths" in reason
    assert f"{result.candidates_evaluated} crosses large vessel" in reason
    # The same patient without contrast: the vessel is not seen, so not the reason.
    plain_volume, plain = _block(40.0, "")
    plain_result = plan_trajectories(
        plain_volume, plain, _small_lesion(plain_volume, target), target, "HFS", TrajectoryRules()
    )
    assert not any("crosses large vessel" in w for w in plain_result.warnings)
    assert NON_CONTRAST_WARNING in plain_result.warnings


@cache
def _phantom(contrast: bool) -> tuple[SampleCase, Anatomy]:
    spec = dataclasses.replace(CASES["vertebral_body_t8"], contrast=contrast)
    case = build_case(spec)
    return case, segment_anatomy(load_volume(case.datasets))


def test_contrast_phantom_aorta_and_heart_found_and_bone_left_alone() -> None:
    case, anatomy = _phantom(True)
    assert anatomy.contrast_enhanced and anatomy.vessel is not None
    labels = case.labels
    vessel_label = labels == LabelCode.LARGE_VESSEL
    found = anatomy.vessel
    recall = (found & vessel_label).sum() / vessel_label.sum()
    precision = (found & vessel_label).sum() / found.sum()
    assert recall >= 0.85, recall
    assert precision >= 0.95, precision
    # Bone labels inside the mask only as a partial-volume rim: no deeper than one voxel.
    spacing = case.geometry.spacing_mm[::-1]
    depth_in_bone = distance_map_mm(labels != LabelCode.BONE, spacing)
    assert depth_in_bone[found & (labels == LabelCode.BONE)].max(initial=0.0) <= max(spacing)
    assert not (anatomy.bone & found).any()
    assert (anatomy.bone & vessel_label).sum() <= 0.01 * vessel_label.sum()


def test_non_contrast_phantom_has_no_vessel_mask_and_says_why() -> None:
    _, anatomy = _phantom(False)
    assert not anatomy.contrast_enhanced and anatomy.vessel is None
    assert anatomy.vessel_warning == NON_CONTRAST_WARNING


@pytest.mark.parametrize("agent", ["NONE", "  "])
def test_an_empty_or_none_contrast_agent_is_no_evidence(agent: str) -> None:
    _, anatomy = _block(40.0, agent)
    assert not anatomy.contrast_enhanced
    assert anatomy.vessel_warning == NON_CONTRAST_WARNING

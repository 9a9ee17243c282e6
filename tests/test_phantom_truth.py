"""Ground truth of the phantom: clinical rules, exact lesion measures, agreement with labels."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from sample_series.lesion import LesionShape, Lobe, fibonacci_sphere, surface_points
from sample_series.phantom import SampleCase, build_case
from sample_series.tissues import LabelCode
from sample_series.truth import (
    DEFAULT_DOSE_TIERS,
    DoseTier,
    GroundTruth,
    anaesthetic_tier,
    borderline_check,
    caliper_volume_ml,
)


@cache
def built(name: str) -> SampleCase:
    return build_case(name)


@pytest.mark.parametrize(
    ("volume_ml", "anaesthetic_ml"),
    [
        (0.0, 1.5),
        (9.999, 1.5),
        (10.0, 5.0),  # 10 <= V <= 20
        (15.0, 5.0),
        (20.0, 5.0),
        (20.0001, 10.0),  # 20 < V <= 50
        (50.0, 10.0),
        (50.0001, 15.0),
        (400.0, 15.0),
    ],
)
def test_tier_table_with_inclusive_boundaries(volume_ml: float, anaesthetic_ml: float) -> None:
    assert anaesthetic_tier(volume_ml).anaesthetic_ml == anaesthetic_ml


def test_tier_boundaries_are_configurable() -> None:
    exclusive_10 = (
        DoseTier(None, 10.0, False, True, 1.5),
        DoseTier(10.0, None, False, False, 5.0),
    )
    assert anaesthetic_tier(10.0, exclusive_10).anaesthetic_ml == 1.5
    assert anaesthetic_tier(10.0, DEFAULT_DOSE_TIERS).anaesthetic_ml == 5.0


def test_caliper_volume_formula() -> None:
    assert caliper_volume_ml(15.0, 10.0) == pytest.approx(0.75)
    assert caliper_volume_ml(34.0, 24.5) == pytest.approx(34 * 24.5**2 / 2 / 1000)


def test_borderline_when_one_voxel_crosses_a_tier_boundary() -> None:
    near_10 = borderline_check(34.0, 24.5, 1.0)  # 10.2 mL, interval about 8.9 to 11.6
    assert near_10.borderline and near_10.anaesthetic_ml == (1.5, 5.0)
    assert near_10.alternative_anaesthetic_ml == 1.5
    lo, hi = near_10.interval_ml
    assert lo == pytest.approx(caliper_volume_ml(33.0, 23.5))
    assert hi == pytest.approx(caliper_volume_ml(35.0, 25.5))
    small = borderline_check(15.0, 10.0, 3.0)
    assert not small.borderline and small.alternative_anaesthetic_ml is None
    near_20 = borderline_check(45.0, 30.0, 1.0)  # 20.25 mL: 5 mL tier is the alternative
    assert near_20.borderline and near_20.alternative_anaesthetic_ml == 5.0


def test_single_ellipsoid_measures_are_exact() -> None:
    axes = Lobe.oriented((0, 0, 0), (1, 1, 1), (0.3, -0.5, 0.8), (1.0, 0.2, 0.1)).axes
    lobe = Lobe((10.0, -20.0, 5.0), (14.0, 9.0, 6.0), axes)
    m = LesionShape((lobe,)).measures
    assert m.length_mm == pytest.approx(28.0, abs=1e-6)
    assert m.width_mm == pytest.approx(18.0, abs=1e-6)
    assert abs(np.dot(m.length_axis, axes[0])) == pytest.approx(1.0, abs=1e-6)
    assert m.volume_ml == pytest.approx(4 / 3 * math.pi * 14 * 9 * 6 / 1000, rel=5e-3)
    assert m.centroid_lps_mm == pytest.approx((10.0, -20.0, 5.0), abs=0.05)


def test_lobulated_measures_match_a_dense_point_cloud() -> None:
    lobes = (
        Lobe.oriented((0, 0, 0), (12, 7, 5), (1, 0.2, 0.3), (0, 0, 1)),
        Lobe.oriented((9, 6, -3), (8, 6, 6), (0.2, 1, 0), (0, 0, 1)),
        Lobe.oriented((-6, -4, 7), (6, 5, 4), (0, 0.4, 1), (1, 0, 0)),
    )
    shape = LesionShape(lobes)
    m = shape.measures
    cloud = surface_points(shape, per_lobe=2500)
    sq = (cloud * cloud).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * cloud @ cloud.T
    assert np.sqrt(d2.max()) == pytest.approx(m.length_mm, abs=0.15)
    assert np.sqrt(d2.max()) <= m.length_mm + 1e-6
    u = np.asarray(m.length_axis)
    flat = cloud - np.outer(cloud @ u, u)  # projection on the plane perpendicular to L
    dirs = fibonacci_sphere(4000)
    dirs = dirs - np.outer(dirs @ u, u)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    proj = flat @ dirs.T
    assert (proj.max(0) - proj.min(0)).max() == pytest.approx(m.width_mm, abs=0.15)


@pytest.mark.parametrize("name", ["rib_lateral_small", "sternum_borderline_10", "sacrum_prone"])
def test_label_volume_extent_matches_length_and_width(name: str) -> None:
    case = built(name)
    t = case.truth
    kji = np.argwhere(case.labels == LabelCode.LESION)
    pts = case.geometry.kji_to_lps(kji)
    voxel_diag = float(np.linalg.norm(case.geometry.spacing_mm))
    u = np.asarray(t.length_axis_lps)
    along = pts @ u
    assert along.max() - along.min() == pytest.approx(t.length_mm, abs=voxel_diag)
    v = np.asarray(t.width_axis_lps)
    assert abs(float(u @ v)) < 1e-6
    across = pts @ v
    assert across.max() - across.min() == pytest.approx(t.width_mm, abs=voxel_diag)
    assert t.label_volume_ml == pytest.approx(len(kji) * case.geometry.voxel_volume_ml)
    assert t.label_volume_ml == pytest.approx(t.voxel_volume_ml, rel=0.3)


def test_truth_fields_follow_the_rules() -> None:
    for name in ("rib_lateral_small", "costovertebral_tilted", "femur_borderline_20"):
        t = built(name).truth
        assert t.caliper_volume_ml == pytest.approx(caliper_volume_ml(t.length_mm, t.width_mm))
        assert t.anaesthetic_ml == anaesthetic_tier(t.caliper_volume_ml).anaesthetic_ml
        bl = borderline_check(t.length_mm, t.width_mm, max(t.geometry.spacing_mm))
        assert (t.borderline, t.alternative_anaesthetic_ml) == (
            bl.borderline,
            bl.alternative_anaesthetic_ml,
        )
        near = t.spine_distance_mm <= t.settings.near_spine_mm
        assert t.steroid == ("cortivazol" if near else "triamcinolone")
        shape = LesionShape(t.lobes)
        assert shape.contains(np.array([t.seed_lps_mm]))[0]
        assert shape.contains(np.array([t.lesion_centre_lps_mm]))[0]


def test_steroid_choice_by_site() -> None:
    assert built("costovertebral_tilted").truth.steroid == "cortivazol"
    assert built("costovertebral_tilted").truth.spine_distance_mm < 10.0
    assert built("rib_lateral_small").truth.steroid == "triamcinolone"
    assert built("rib_lateral_small").truth.spine_distance_mm > 60.0


def test_truth_json_round_trip(tmp_path) -> None:
    t = built("femur_borderline_20").truth
    again = GroundTruth.from_json(t.to_json())
    assert again == t
    assert t.borderline and t.alternative_anaesthetic_ml == 5.0 and t.anaesthetic_ml == 10.0

import pytest

from planner.dosing import Site, Steroid, caliper_volume_ml, dose_card, suggested_needles, tier_for
from planner.rules import DEFAULT_TIERS, DosingRules

RULES = DosingRules()


@pytest.mark.parametrize(
    ("volume_ml", "anaesthetic_ml"),
    [
        (0.1, 1.5),
        (9.99, 1.5),
        (10.0, 5.0),
        (15.0, 5.0),
        (20.0, 5.0),
        (20.01, 10.0),
        (50.0, 10.0),
        (50.01, 15.0),
        (400.0, 15.0),
    ],
)
def test_tiers_follow_clinical_table_with_inclusive_boundaries(volume_ml, anaesthetic_ml):
    assert tier_for(volume_ml, DEFAULT_TIERS).anaesthetic_ml == anaesthetic_ml


def test_caliper_volume_is_l_w_squared_over_two_in_ml():
    assert caliper_volume_ml(40.0, 30.0) == pytest.approx(40 * 30 * 30 / 2 / 1000)


def test_volume_interval_takes_each_diameters_uncertainty():
    # 45 x 30.9 mm: 21.5 mL. With one 0.8 mm voxel on each diameter the interval stays above
    # 20 mL; with the outline's 1 mm error added it reaches below and names the 5 mL tier too.
    voxel_only = dose_card(45.0, 30.9, 0.8, 0.8, 80.0, RULES)
    assert not voxel_only.borderline
    card = dose_card(45.0, 30.9, 1.8, 1.8, 80.0, RULES)
    assert card.volume_interval_ml[0] == pytest.approx(caliper_volume_ml(43.2, 29.1))
    assert card.volume_interval_ml[1] == pytest.approx(caliper_volume_ml(46.8, 32.7))
    assert card.borderline
    assert (card.anaesthetic_ml, card.alternative_anaesthetic_ml) == (10.0, (5.0,))


def test_clear_case_is_not_borderline():
    card = dose_card(20.0, 10.0, 0.8, 0.8, 80.0, RULES)
    assert card.caliper_volume_ml == pytest.approx(1.0)
    assert card.anaesthetic_ml == 1.5
    assert not card.borderline
    assert card.alternative_anaesthetic_ml == ()
    assert card.steroid is Steroid.TRIAMCINOLONE
    assert (card.contrast_ml, card.needle_gauge, card.max_steroid_ampoules) == (1.0, 22, 2)


def test_volume_interval_crossing_a_boundary_is_borderline_and_names_both_tiers():
    # 34 x 24.4² / 2 = 10.12 mL; one voxel less on each diameter is below 10 mL.
    card = dose_card(34.0, 24.4, 0.8, 0.8, None, RULES)
    assert card.anaesthetic_ml == 5.0
    assert card.borderline
    assert card.alternative_anaesthetic_ml == (1.5,)
    low, high = card.volume_interval_ml
    assert low < 10.0 < high


def test_steroid_by_spine_distance_and_site_override():
    assert dose_card(20, 10, 1, 1, 12.0, RULES).steroid is Steroid.CORTIVAZOL
    assert dose_card(20, 10, 1, 1, 30.0, RULES).steroid is Steroid.CORTIVAZOL
    assert dose_card(20, 10, 1, 1, 30.5, RULES).steroid is Steroid.TRIAMCINOLONE
    overridden = dose_card(20, 10, 1, 1, 200.0, RULES, site=Site.SPINAL)
    assert overridden.steroid is Steroid.CORTIVAZOL
    assert "request" in overridden.steroid_reason


def test_configurable_near_spine_limit():
    assert dose_card(20, 10, 1, 1, 12.0, DosingRules(near_spine_mm=10)).steroid is (
        Steroid.TRIAMCINOLONE
    )


@pytest.mark.parametrize(
    ("length_mm", "needles"), [(20, 1), (50, 1), (51, 2), (80, 2), (81, 3), (500, 4)]
)
def test_needle_count_heuristic_is_bounded(length_mm, needles):
    assert suggested_needles(length_mm, RULES) == needles

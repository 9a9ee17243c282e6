"""Stage: lesion measurement in, dose card out.

Input: length and width (mm) with their uncertainty, the lesion's distance to the
spine (mm, None when no spine was found) and an optional site override.
Output: :class:`DoseCard` per CLINICAL.md: caliper volume L×W²/2, anaesthetic tier, borderline
flag with the alternative tier, steroid, contrast, needle gauge, steroid ampoule cap, needles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from planner.rules import DoseTier, DosingRules


class Steroid(StrEnum):
    CORTIVAZOL = "cortivazol"
    TRIAMCINOLONE = "triamcinolone"


class Site(StrEnum):
    """Request override for the steroid choice."""

    SPINAL = "spinal"
    PERIPHERAL = "peripheral"


@dataclass(frozen=True)
class DoseCard:
    caliper_volume_ml: float
    volume_interval_ml: tuple[float, float]
    anaesthetic_ml: float
    borderline: bool
    alternative_anaesthetic_ml: tuple[float, ...]
    steroid: Steroid
    steroid_reason: str
    near_spine: bool
    spine_distance_mm: float | None
    contrast_ml: float
    needle_gauge: int
    max_steroid_ampoules: int
    suggested_needles: int


def caliper_volume_ml(length_mm: float, width_mm: float) -> float:
    """CLINICAL.md: volume = L × W² / 2, with L and W in mm, in mL."""
    return length_mm * width_mm * width_mm / 2.0 / 1000.0


def tier_for(volume_ml: float, tiers: tuple[DoseTier, ...]) -> DoseTier:
    for tier in tiers:
        if tier.contains_upper(volume_ml):
            return tier
    return tiers[-1]


def suggested_needles(length_mm: float, rules: DosingRules) -> int:
    r = rules.needle_count
    if length_mm <= r.single_needle_max_length_mm:
        return 1
    extra = math.ceil((length_mm - r.single_needle_max_length_mm) / r.extra_needle_per_mm)
    return int(min(r.max_needles, 1 + extra))


def dose_card(
    length_mm: float,
    width_mm: float,
    length_uncertainty_mm: float,
    width_uncertainty_mm: float,
    spine_distance_mm: float | None,
    rules: DosingRules,
    site: Site | None = None,
) -> DoseCard:
    """Dose card for a lesion of the given caliper size (mm) and spine distance (mm).

    The volume interval takes each diameter's uncertainty (mm) off and on."""
    volume = caliper_volume_ml(length_mm, width_mm)
    low = caliper_volume_ml(
        max(length_mm - length_uncertainty_mm, 0.0), max(width_mm - width_uncertainty_mm, 0.0)
    )
    high = caliper_volume_ml(length_mm + length_uncertainty_mm, width_mm + width_uncertainty_mm)
    tier = tier_for(volume, rules.tiers)
    in_interval = {
        tier_for(low, rules.tiers).anaesthetic_ml,
        tier_for(high, rules.tiers).anaesthetic_ml,
    }
    alternatives = tuple(sorted(ml for ml in in_interval if ml != tier.anaesthetic_ml))

    near_spine = spine_distance_mm is not None and spine_distance_mm <= rules.near_spine_mm
    if site is not None:
        steroid = Steroid.CORTIVAZOL if site is Site.SPINAL else Steroid.TRIAMCINOLONE
        reason = f"site given as {site.value} in the request"
    elif spine_distance_mm is None:
        steroid = Steroid.TRIAMCINOLONE
        reason = "no spine found in the series: peripheral lesion assumed; check the site"
    elif near_spine:
        steroid = Steroid.CORTIVAZOL
        reason = (
            f"lesion {spine_distance_mm:.0f} mm from the spine "
            f"(near-spine limit {rules.near_spine_mm:.0f} mm)"
        )
    else:
        steroid = Steroid.TRIAMCINOLONE
        reason = (
            f"lesion {spine_distance_mm:.0f} mm from the spine "
            f"(beyond the near-spine limit of {rules.near_spine_mm:.0f} mm)"
        )
    return DoseCard(
        caliper_volume_ml=volume,
        volume_interval_ml=(low, high),
        anaesthetic_ml=tier.anaesthetic_ml,
        borderline=bool(alternatives),
        alternative_anaesthetic_ml=alternatives,
        steroid=steroid,
        steroid_reason=reason,
        near_spine=near_spine if site is None else site is Site.SPINAL,
        spine_distance_mm=spine_distance_mm,
        contrast_ml=rules.contrast_ml,
        needle_gauge=rules.needle_gauge,
        max_steroid_ampoules=rules.max_steroid_ampoules,
        suggested_needles=suggested_needles(length_mm, rules),
    )

"""Clinical rules as data, with the defaults documented in CLINICAL.md.

The composition root builds these from settings; every stage receives them explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DoseTier:
    """Tumours up to ``upper_ml`` (inclusive or not) get ``anaesthetic_ml`` of the mixture.

    ``upper_ml`` None means no upper bound (the last tier).
    """

    upper_ml: float | None
    upper_inclusive: bool
    anaesthetic_ml: float

    def contains_upper(self, volume_ml: float) -> bool:
        if self.upper_ml is None:
            return True
        return volume_ml <= self.upper_ml if self.upper_inclusive else volume_ml < self.upper_ml


# CLINICAL.md: V < 10 → 1.5 mL; 10 ≤ V ≤ 20 → 5; 20 < V ≤ 50 → 10; V > 50 → 15.
DEFAULT_TIERS: tuple[DoseTier, ...] = (
    DoseTier(10.0, False, 1.5),
    DoseTier(20.0, True, 5.0),
    DoseTier(50.0, True, 10.0),
    DoseTier(None, True, 15.0),
)


@dataclass(frozen=True)
class NeedleCountRule:
    """Suggested needles by lesion length (our default; the source gives no rule).

    One needle covers a lesion up to ``single_needle_max_length_mm``; each further
    ``extra_needle_per_mm`` of length adds one, capped at ``max_needles``.
    """

    single_needle_max_length_mm: float = 50.0
    extra_needle_per_mm: float = 30.0
    max_needles: int = 4


@dataclass(frozen=True)
class DosingRules:
    tiers: tuple[DoseTier, ...] = DEFAULT_TIERS
    # Source gives no figure for "near-spine": our default, configurable.
    near_spine_mm: float = 30.0
    contrast_ml: float = 1.0
    needle_gauge: int = 22
    max_steroid_ampoules: int = 2
    needle_count: NeedleCountRule = field(default_factory=NeedleCountRule)


@dataclass(frozen=True)
class SegmentationRules:
    """Defaults for seeded lytic-lesion segmentation."""

    search_radius_mm: float = 60.0
    hu_min: float = -20.0
    hu_max: float = 120.0
    # Bridges to neighbouring soft tissue thinner than twice this are cut (the opening's
    # smallest radius). A thin lesion loses the ends thinner than that too (a sternal lesion
    # lost 3.4 mm of its length on one noise draw); 1.5 mm kept them, but cost the
    # costovertebral case 2 mm of width and its needle path.
    opening_radius_mm: float = 2.0
    min_volume_ml: float = 0.05
    # Automatic L and W are validated on grids up to these spacings: within 1 mm of the truth
    # on 51 of 52 builds there, 4 noise draws of each sample case, worst 1.04 mm
    # (bench/resolution.py; coarser grids fall far short). On a coarser series the plan says
    # so and asks for a check or a manual measurement.
    validated_pixel_mm: float = 0.8
    validated_slice_mm: float = 1.0
    # An outline with more than this share of its voxels on no visible edge was probably grown
    # into tissue of the lesion's own density: the plan says so (bench/resolution.py on every
    # grid: at most 0.20 on the outlines within tolerance and 0.27 on the others but one, 0.75
    # on a +26 mm leak into muscle at 1.0 mm pixels).
    max_unseen_edge_fraction: float = 0.5
    # Error of the outline itself on an automatic L or W, added to the one voxel of the
    # volume interval: a lesion whose one-voxel interval meets a tier bound is then flagged
    # borderline as long as the outline is within this of the truth (the accuracy target;
    # bench/resolution.py measures how often it holds).
    outline_error_mm: float = 1.0


@dataclass(frozen=True)
class TrajectoryRules:
    """Needle path constraints; the source leaves these to us (CLINICAL.md)."""

    needle_lengths_mm: tuple[float, ...] = (90.0, 150.0, 200.0)
    # Needle hub and skin mark need some length outside the patient.
    needle_length_margin_mm: float = 10.0
    needle_gauge: int = 22
    clearance_margin_mm: float = 3.0
    max_angle_to_skin_normal_deg: float = 60.0
    max_craniocaudal_angle_deg: float = 35.0
    craniocaudal_step_deg: float = 5.0
    # Entry points whose outward normal is within this angle of "up" are reachable.
    max_entry_angle_from_up_deg: float = 80.0
    alternatives: int = 3
    # The last part of the path may touch the target's own bone (periosteum).
    target_bone_allowance_mm: float = 6.0
    # Scoring (lower is better): in-plane paths first, then shallow, clear, perpendicular.
    weight_craniocaudal_per_deg: float = 2.0
    weight_depth_per_mm: float = 0.2
    weight_clearance_per_mm: float = 0.5
    weight_skin_angle_per_deg: float = 0.1


@dataclass(frozen=True)
class PlanningRules:
    dosing: DosingRules = field(default_factory=DosingRules)
    segmentation: SegmentationRules = field(default_factory=SegmentationRules)
    trajectory: TrajectoryRules = field(default_factory=TrajectoryRules)


# 22 G outer diameter is 0.72 mm.
NEEDLE_OUTER_DIAMETER_MM = {18: 1.27, 20: 0.91, 21: 0.82, 22: 0.72, 25: 0.51}

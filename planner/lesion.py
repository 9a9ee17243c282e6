"""Stage: HU volume, anatomy and a seed in; segmented lytic lesion out.

Input: :class:`~planner.volume.CTVolume`, :class:`~planner.anatomy.Anatomy`, a seed point in
LPS mm, :class:`~planner.rules.SegmentationRules`.
Output: :class:`LesionMask`, the lesion as a boolean mask cropped to its bounding box
(``offset_kji`` gives the box's first voxel on the volume grid), and the HU window used.
Measurement of the mask is the next stage (:mod:`planner.measure`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk
from scipy import ndimage

from planner.anatomy import Anatomy, distance_map_mm
from planner.errors import InvalidSeed, LesionNotFound
from planner.rules import SegmentationRules
from planner.volume import CTVolume

SEED_PROBE_RADIUS_MM = 3.0
ADAPTIVE_SIGMAS = 3.0
MIN_HALF_WINDOW_HU = 6.0
MAX_HALF_WINDOW_HU = 20.0
PARTIAL_VOLUME_REACH = 1.5
MEDIAN_RADIUS_VOXELS = 1
# Trabecular bone at its least dense (CLINICAL.md: 150-400 HU).
BONE_PARTIAL_HU = 200.0
NEAR_SEED_MM = 10.0
# Soft tissue within this distance outside the grown region is its neighbour.
SHELL_MM = 3.0
MIN_NEIGHBOUR_CONTRAST_HU = 4.0
BAND_MM = 4.0
OPENING_FRACTION = 0.35
MAX_OPENING_MM = 6.0


@dataclass(frozen=True)
class LesionMask:
    mask: npt.NDArray[np.bool_]
    offset_kji: tuple[int, int, int]
    seed_lps_mm: tuple[float, float, float]
    hu_window: tuple[float, float] | None  # None when the lesion was not segmented
    touches_search_limit: bool

    def full_mask(self, shape: tuple[int, int, int]) -> npt.NDArray[np.bool_]:
        out = np.zeros(shape, dtype=bool)
        k, j, i = self.offset_kji
        dk, dj, di = self.mask.shape
        out[k : k + dk, j : j + dj, i : i + di] = self.mask
        return out

    def points_kji(self) -> npt.NDArray[np.float64]:
        return np.argwhere(self.mask).astype(np.float64) + np.asarray(self.offset_kji)


def _median(
    hu: npt.NDArray[np.int16], spacing: tuple[float, float, float]
) -> npt.NDArray[np.float32]:
    image = sitk.GetImageFromArray(np.ascontiguousarray(hu))
    # Thick slices are too far apart to share a neighbourhood: filter those in-plane only.
    z_radius = MEDIAN_RADIUS_VOXELS if spacing[0] <= 2.0 * max(spacing[1:]) else 0
    filtered = sitk.Median(image, [MEDIAN_RADIUS_VOXELS, MEDIAN_RADIUS_VOXELS, z_radius])
    return sitk.GetArrayFromImage(filtered).astype(np.float32)


def _open_around_seed(
    candidate: npt.NDArray[np.bool_],
    partial: npt.NDArray[np.bool_],
    seed: tuple[int, ...],
    spacing: tuple[float, float, float],
    rules: SegmentationRules,
) -> npt.NDArray[np.bool_] | None:
    """Morphological opening of the candidate, scaled to the lesion, kept around the seed.

    Neighbouring muscle often has the lesion's density; it joins the lesion through necks
    narrower than the lesion itself. The opening radius is a fraction of the lesion's own
    inscribed radius near the seed, so necks are cut while the lesion keeps its outline.
    """
    labels, _ = ndimage.label(candidate)
    if labels[seed] == 0:
        return None
    component = labels == labels[seed]
    inside_mm = distance_map_mm(~component, spacing)
    grid = np.ogrid[tuple(slice(0, n) for n in candidate.shape)]
    near_seed = (
        sum(((g - s) * sp) ** 2 for g, s, sp in zip(grid, seed, spacing, strict=True))
        <= NEAR_SEED_MM**2
    )
    inscribed_mm = float(inside_mm[near_seed & component].max())
    # Never below a voxel and a half in-plane: a thinner opening cuts nothing on coarse grids.
    floor = max(rules.opening_radius_mm, 1.5 * max(spacing[1], spacing[2]))
    radius = float(np.clip(OPENING_FRACTION * inscribed_mm, floor, max(floor, MAX_OPENING_MM)))
    seed_mm = np.sqrt(
        sum(((g - s) * sp) ** 2 for g, s, sp in zip(grid, seed, spacing, strict=True))
    )
    # The opened lesion must contain the seed: shrink the ball until one fits over it, down
    # to a single voxel for lesions only a few voxels across.
    smallest = min(spacing[1], spacing[2])
    while True:
        covering = component & (inside_mm >= radius) & (seed_mm <= radius)
        if covering.any() or radius <= smallest:
            break
        radius = max(smallest, radius * 0.7)
    if not covering.any():
        return component
    core_labels, _ = ndimage.label(inside_mm >= radius)
    keep = np.isin(core_labels, np.unique(core_labels[covering]))
    reach = distance_map_mm(keep, spacing)
    # The opening shaves the partial-volume rim against bone; that rim is given back.
    opened = reach <= radius + 0.5 * min(spacing)
    rim = partial & (reach <= radius + PARTIAL_VOLUME_REACH * max(spacing[1:]))
    return np.asarray(component & (opened | rim))


def _split_from_neighbour(
    region: npt.NDArray[np.bool_],
    smooth: npt.NDArray[np.float32],
    partial: npt.NDArray[np.bool_],
    candidate: npt.NDArray[np.bool_],
    seed: tuple[int, ...],
    spacing: tuple[float, float, float],
) -> npt.NDArray[np.bool_] | None:
    """Re-threshold the region halfway between the lesion and the soft tissue around it.

    Muscle a few HU denser than the lesion gets into the first window through its noisy
    edge. The soft tissue just outside the grown region tells its density; the midpoint
    between the two medians separates them better than any fixed window.
    """
    around = distance_map_mm(region, spacing)
    shell = (around > 0) & (around <= SHELL_MM) & (smooth > -30.0) & (smooth < 150.0)
    if shell.sum() < 20:
        return None
    lesion_hu = float(np.median(smooth[region & ~partial]))
    neighbour_hu = float(np.median(smooth[shell]))
    if neighbour_hu <= lesion_hu + MIN_NEIGHBOUR_CONTRAST_HU:
        return None  # no denser neighbour to split from
    cut = (lesion_hu + neighbour_hu) / 2.0
    # Only the outer band is re-judged: a heterogeneous lesion keeps its core.
    depth_mm = distance_map_mm(~region, spacing)
    band = depth_mm <= BAND_MM
    refined = candidate & ((smooth <= cut) | partial | ~band)
    return refined if refined[seed] else None


def _describe(hu: float) -> str:
    if hu < -400:
        return "air or lung"
    if hu < -30:
        return "fat"
    return "bone"


def segment_lesion(
    volume: CTVolume,
    anatomy: Anatomy,
    seed_lps_mm: tuple[float, float, float],
    rules: SegmentationRules,
    search_radius_mm: float | None = None,
    hu_window: tuple[float, float] | None = None,
) -> LesionMask:
    """Grow the soft-tissue-density lesion around the seed; refuse seeds that are not on one."""
    geo = volume.geometry
    spacing = geo.spacing_kji_mm()
    seed_kji = geo.lps_to_kji(seed_lps_mm)
    if not geo.contains_kji(seed_kji):
        raise InvalidSeed("the seed point lies outside the scanned volume")
    seed = tuple(int(v) for v in np.rint(seed_kji))
    if not anatomy.body[seed]:
        raise InvalidSeed("the seed point lies outside the patient's body")

    radius = search_radius_mm or rules.search_radius_mm
    lo_idx = [max(0, s - int(np.ceil(radius / sp))) for s, sp in zip(seed, spacing, strict=True)]
    hi_idx = [
        min(n, s + int(np.ceil(radius / sp)) + 1)
        for s, n, sp in zip(seed, geo.shape, spacing, strict=True)
    ]
    box = tuple(slice(a, b) for a, b in zip(lo_idx, hi_idx, strict=True))
    # Median, not Gaussian: it quiets the noise enough to tell a lesion from muscle 10 HU
    # denser without smearing cortical bone into the lesion's edge.
    smooth = _median(volume.hu[box], spacing)
    local_seed = tuple(s - a for s, a in zip(seed, lo_idx, strict=True))

    grid = np.ogrid[tuple(slice(0, n) for n in smooth.shape)]
    dist2 = sum(((g - s) * sp) ** 2 for g, s, sp in zip(grid, local_seed, spacing, strict=True))
    seed_values = smooth[dist2 <= SEED_PROBE_RADIUS_MM**2]
    seed_hu = float(np.median(seed_values))
    lo_rule, hi_rule = hu_window or (rules.hu_min, rules.hu_max)
    if not lo_rule <= seed_hu <= hi_rule:
        raise InvalidSeed(
            f"the seed is on {_describe(seed_hu)} ({seed_hu:.0f} HU), not on a soft-tissue "
            f"density lesion ({lo_rule:.0f} to {hi_rule:.0f} HU); move the seed into the lesion"
        )
    if hu_window is None:
        # Robust spread: the probe may graze bone or fat at the lesion's edge.
        mad_sigma = 1.4826 * float(np.median(np.abs(seed_values - seed_hu)))
        half = float(np.clip(ADAPTIVE_SIGMAS * mad_sigma, MIN_HALF_WINDOW_HU, MAX_HALF_WINDOW_HU))
        lo, hi = max(lo_rule, seed_hu - half), min(hi_rule, seed_hu + half)
    else:
        lo, hi = lo_rule, hi_rule

    in_sphere = dist2 <= radius**2
    # Lesion voxels against bone read denser (partial volume): next to bone, accept up to the
    # lesion/bone midpoint.
    # Smoothing would spread the bone into them, so they are judged on the raw HU.
    near_bone = anatomy.distance_mm["bone"][box] <= PARTIAL_VOLUME_REACH * max(spacing[1:])
    raw = volume.hu[box]
    partial = near_bone & (raw >= lo) & (raw <= (seed_hu + BONE_PARTIAL_HU) / 2)
    candidate = (((smooth >= lo) & (smooth <= hi)) | partial) & in_sphere & anatomy.body[box]
    candidate &= ~anatomy.air[box] & ~anatomy.bone[box]

    region = _open_around_seed(candidate, partial, local_seed, spacing, rules)
    if region is None:
        raise LesionNotFound(
            "no lesion could be grown from the seed: the soft tissue there is "
            f"outside the {lo:.0f} to {hi:.0f} HU window"
        )
    if hu_window is None:
        refined = _split_from_neighbour(region, smooth, partial, candidate, local_seed, spacing)
        if refined is not None:
            region = _open_around_seed(refined, partial, local_seed, spacing, rules)
            if region is None:  # cannot happen: the seed passed both windows
                region = refined
    region = ndimage.binary_fill_holes(region)
    voxel_ml = geo.voxel_volume_ml
    if region.sum() * voxel_ml < rules.min_volume_ml:
        raise LesionNotFound(
            f"the region grown from the seed is smaller than {rules.min_volume_ml} mL: "
            "no lesion found there"
        )
    shell = in_sphere & ~ndimage.binary_erosion(in_sphere)
    touches = bool((region & shell).any())

    found = np.argwhere(region)
    a, b = found.min(axis=0), found.max(axis=0) + 1
    cropped = region[a[0] : b[0], a[1] : b[1], a[2] : b[2]].copy()
    offset = tuple(int(x) for x in np.asarray(lo_idx) + a)
    return LesionMask(
        mask=cropped,
        offset_kji=(offset[0], offset[1], offset[2]),
        seed_lps_mm=(float(seed_lps_mm[0]), float(seed_lps_mm[1]), float(seed_lps_mm[2])),
        hu_window=(float(lo), float(hi)),
        touches_search_limit=touches,
    )

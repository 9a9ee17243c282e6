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

from planner.anatomy import Anatomy, enclosed_in_plane
from planner.distance import distance_map_mm
from planner.errors import InvalidSeed, LesionNotFound
from planner.rules import SegmentationRules
from planner.volume import CTVolume

SEED_PROBE_RADIUS_MM = 3.0
ADAPTIVE_SIGMAS = 3.0
MIN_HALF_WINDOW_HU = 6.0
# A real tumour's texture is wider than the phantoms' noise: on the real thorax 3 sigmas at
# the seed are 27 HU, and a 20 HU cap left the tumour's denser half out.
MAX_HALF_WINDOW_HU = 30.0
PARTIAL_VOLUME_REACH = 1.5
MEDIAN_RADIUS_VOXELS = 1
# Trabecular bone at its least dense (CLINICAL.md: 150-400 HU).
BONE_PARTIAL_HU = 200.0
FAT_HU = -30.0  # below this: fat (-100 to -30 HU)
NEAR_SEED_MM = 10.0
MIN_NEIGHBOUR_CONTRAST_HU = 4.0
BAND_MM = 4.0
# Edge refinement: voxels within EDGE_BAND_MM inside the outline, or EDGE_STEP_MM outside it,
# are judged against the tissue read EDGE_RING_MM beyond the outline; EDGE_PASSES passes, so
# the outline moves out by at most EDGE_PASSES * EDGE_STEP_MM from the windowed region.
# With a step of one voxel the band reached deeper inside (2.5 mm) than outside: the noise
# could pull the outline in further than push it out, and outlines came out short (mean L
# -0.5 mm over four noise draws of the catalogue); at 1.25 mm the mean error is -0.1 mm.
EDGE_BAND_MM = 2.5
EDGE_STEP_MM = 1.25
EDGE_RING_MM = 3.0
EDGE_PASSES = 3
# Against soft tissue a voxel is judged on its 3x3x3 median blended with this share of its own
# value. The median alone reads an edge voxel whose neighbourhood is mostly the neighbour as the
# neighbour, which pulls a convex outline in (costovertebral_tilted W -0.8 mm without noise);
# the raw value carries the whole noise. Dev harness (the catalogue noise-free and on 8 noise
# draws, 117 builds within 1 mm): share 0 112, 0.15 114, 0.2 115, 0.25 115, 0.3 111, 0.35 107
# (noisy muscle voxels come in as bumps).
RAW_SHARE = 0.2
# Gaussian smoothing of the final mask: single-voxel bumps from noise on a 10 HU edge would
# otherwise set the Feret diameters, which are extremes.
MASK_SIGMA_MM = 0.8
# The smoothed share of the refinement passes that took a voxel, cut at this level. Each pass
# re-judges the edge against the tissue read beyond the outline it was given, and on a 10 HU
# edge at 10 HU noise a voxel can flip from pass to pass; the last pass alone left outlines
# up to 1.5 mm short or long. The passes' mean lies a little inside the last pass (the first
# starts from the window's outline): 0.48 rather than 0.5 (dev harness, the catalogue
# noise-free and on 8 noise draws: the cut at 0.50, 0.48, 0.46 puts 110, 112, 111 of 117
# builds within 1 mm).
OUTLINE_LEVEL = 0.48
# The passes are averaged only when the last one changed at most this share of the region's
# voxels (median 3.5 %, 95th percentile 16 % on the catalogue's builds). A region still
# shrinking out of a leak into muscle is the last pass alone: averaged, the leak the earlier
# passes held came back (rib_lateral_small on one noise draw: 64 % dropped by the third pass,
# L +25 mm).
MAX_CHANGE_TO_AVERAGE = 0.2
# The search starts in a small sphere, and uses the whole search radius when the lesion
# touches the small sphere's edge: most lesions fit, and a small box is fast.
FIRST_SEARCH_RADIUS_MM = 25.0
OPENING_FRACTION = 0.35
MAX_OPENING_MM = 6.0
# A piece the opening cut off is joined back only from this size: smaller ones are noise.
REJOIN_MIN_ML = 0.2
# ... and only up to this many times the kept core: larger is an organ the lesion touches.
REJOIN_MAX_FACTOR = 3.0


@dataclass(frozen=True)
class LesionMask:
    mask: npt.NDArray[np.bool_]
    offset_kji: tuple[int, int, int]
    seed_lps_mm: tuple[float, float, float]
    hu_window: tuple[float, float] | None  # None when the lesion was not segmented
    # Share of the outline with no visible edge beyond it (None when not segmented).
    unseen_edge_fraction: float | None = None
    # The Gaussian-smoothed outline (0 to 1; 0.5 or more exactly on ``mask``) on the mask's box
    # grown by one voxel on every side: its 0.5 level is the lesion's surface to a fraction of
    # a voxel. None when the lesion was not segmented (the mask's own surface is used).
    membership: npt.NDArray[np.float32] | None = None

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


def _fat_bone_edge(smooth: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Voxels with fat and bone both within a voxel: never lesion.

    Where fat meets bone (fatty marrow against cortex) the blurred edge passes through the
    lesion's density, and an outline grown against the cortex would creep along it.
    """
    return np.asarray(
        (ndimage.minimum_filter(smooth, size=3) < FAT_HU)
        & (ndimage.maximum_filter(smooth, size=3) > BONE_PARTIAL_HU)
    )


def _open_around_seed(
    candidate: npt.NDArray[np.bool_],
    partial: npt.NDArray[np.bool_],
    smooth: npt.NDArray[np.float32],
    seed: tuple[int, ...],
    seed_hu: float,
    spacing: tuple[float, float, float],
    rules: SegmentationRules,
) -> npt.NDArray[np.bool_] | None:
    """Morphological opening of the candidate, scaled to the lesion, kept around the seed.

    Neighbouring muscle often has the lesion's density; it joins the lesion through necks
    narrower than the lesion itself. The opening radius is a fraction of the lesion's own
    inscribed radius near the seed, so necks are cut while the lesion keeps its outline.
    Pieces of the lesion itself that the opening cut off are joined back
    (:func:`_rejoin_cut_pieces`).
    """
    labels, _ = ndimage.label(candidate)
    if labels[seed] == 0:
        return None
    component = labels == labels[seed]
    # Depth is measured with the noise's one-voxel pores closed: near a tapered tip they make
    # the tip look thinner than it is, and the opening took the whole tip (a rib lesion's end
    # against intercostal soft tissue: L 3.4 mm short on one noise draw).
    solid = component | ndimage.binary_closing(
        component, structure=ndimage.generate_binary_structure(3, 1)
    )
    inside_mm = distance_map_mm(~solid, spacing)
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
    keep, necks = _rejoin_cut_pieces(core_labels, keep, component, smooth, seed_hu, radius, spacing)
    reach = distance_map_mm(keep, spacing)
    # The opening shaves the partial-volume rim against bone; that rim is given back.
    opened = (reach <= radius + 0.5 * min(spacing)) | necks
    rim = partial & (reach <= radius + PARTIAL_VOLUME_REACH * max(spacing[1:]))
    return np.asarray(component & (opened | rim))


def _rejoin_cut_pieces(
    core_labels: npt.NDArray[np.int32],
    keep: npt.NDArray[np.bool_],
    component: npt.NDArray[np.bool_],
    smooth: npt.NDArray[np.float32],
    seed_hu: float,
    radius: float,
    spacing: tuple[float, float, float],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """The opened core with the lesion's own pieces the opening cut off, and the necks to them.

    The opening also cuts the lesion itself where it narrows: a soft-tissue extension through
    a cortical breach, or a stretch the noise left porous on a coarse grid. A core piece comes
    back when it is
    - large enough: at least REJOIN_MIN_ML, and at most REJOIN_MAX_FACTOR times the kept core
      (an organ of the lesion's density, bowel or heart, is told by its size);
    - near: within two opening radii and a voxel and a half of the kept core;
    - of the lesion's density: the median of every voxel of its opened footprint, not only of
      those the window let in, is within MIN_NEIGHBOUR_CONTRAST_HU of the seed's (muscle cut
      off by the opening reads the muscle's density there).
    The neck is the candidate lying within the gap of both cores.
    """
    necks = np.zeros_like(keep)
    sizes = np.bincount(core_labels.ravel())
    min_voxels = REJOIN_MIN_ML * 1000.0 / float(np.prod(spacing))
    kept = np.unique(core_labels[keep])
    max_voxels = REJOIN_MAX_FACTOR * float(keep.sum())
    pieces = [
        q
        for q in np.flatnonzero((sizes >= min_voxels) & (sizes <= max_voxels))
        if q != 0 and q not in kept
    ]
    if not pieces:
        return keep, necks
    reach_kept = distance_map_mm(keep, spacing)
    joined = keep.copy()
    for q in pieces:
        piece = core_labels == q
        gap = float(reach_kept[piece].min())
        if gap > 2.0 * radius + 1.5 * max(spacing):
            continue
        reach_piece = distance_map_mm(piece, spacing)
        if float(np.median(smooth[reach_piece <= radius])) > seed_hu + MIN_NEIGHBOUR_CONTRAST_HU:
            continue
        joined |= piece
        necks |= component & (reach_kept <= gap) & (reach_piece <= gap)
    return joined, necks


def _split_from_neighbour(
    region: npt.NDArray[np.bool_],
    smooth: npt.NDArray[np.float32],
    partial: npt.NDArray[np.bool_],
    candidate: npt.NDArray[np.bool_],
    seed: tuple[int, ...],
    spacing: tuple[float, float, float],
    seed_hu: float,
) -> npt.NDArray[np.bool_] | None:
    """Re-threshold the region halfway between the lesion and the soft tissue around it.

    Muscle a few HU denser than the lesion gets into the first window through its noisy
    edge. The soft tissue EDGE_STEP_MM to EDGE_RING_MM outside the grown region tells its
    density; the midpoint between the two medians separates them better than any fixed
    window. The first voxels outside are not read: they are mostly the lesion's own, left
    out by the window where the noise pushed them above it, and read as a neighbour they
    split a lesion from itself (a sternal lesion lost 2 to 3 mm of length on 3 of 8 noise
    draws).
    """
    around = distance_map_mm(region, spacing)
    shell = (around > EDGE_STEP_MM) & (around <= EDGE_RING_MM) & (smooth > -30.0) & (smooth < 150.0)
    if shell.sum() < 20:
        return None
    lesion_hu = float(np.median(smooth[region & ~partial]))
    if lesion_hu > seed_hu + MIN_NEIGHBOUR_CONTRAST_HU:
        # The region is clearly denser than the lesion at the seed: it has already taken in
        # the neighbour, and only the seed tells the lesion's own density.
        lesion_hu = seed_hu
    neighbour_hu = float(np.median(smooth[shell]))
    if neighbour_hu <= lesion_hu + MIN_NEIGHBOUR_CONTRAST_HU:
        return None  # no denser neighbour to split from
    cut = (lesion_hu + neighbour_hu) / 2.0
    # Only the outer band is re-judged: a heterogeneous lesion keeps its core. The band is
    # measured from the outline, not from the noise's holes inside it: around every hole it
    # would make the core porous, and the opening would then keep only a few voxels.
    depth_mm = distance_map_mm(~ndimage.binary_fill_holes(region), spacing)
    band = depth_mm <= BAND_MM
    refined = candidate & ((smooth <= cut) | partial | ~band)
    return refined if refined[seed] else None


@dataclass(frozen=True)
class _Beyond:
    """What lies just outside an outline, on a box around it."""

    box: tuple[slice, slice, slice]
    inside_mm: npt.NDArray[np.float32]  # depth inside the outline (0 outside)
    outside_mm: npt.NDArray[np.float32]  # distance outside the outline (0 inside)
    lesion_hu: float  # median of the outline's core
    beyond_hu: npt.NDArray[np.float32]  # per voxel: the value at the nearest ring voxel
    beyond_in_bone: npt.NDArray[np.bool_]  # per voxel: that ring voxel is enclosed by bone


def _beyond(
    region: npt.NDArray[np.bool_],
    smooth: npt.NDArray[np.float32],
    spacing: tuple[float, float, float],
    in_bone: npt.NDArray[np.bool_] | None = None,
) -> _Beyond | None:
    """The lesion's density and the tissue read EDGE_STEP_MM to EDGE_RING_MM outside it;
    ``in_bone`` marks the soft tissue that bone encloses on its slice."""
    margin = np.asarray([int(np.ceil((EDGE_RING_MM + 1.0) / sp)) for sp in spacing])
    found = np.argwhere(region)
    lo = np.maximum(found.min(axis=0) - margin, 0)
    hi = np.minimum(found.max(axis=0) + 1 + margin, region.shape)
    box = (
        slice(int(lo[0]), int(hi[0])),
        slice(int(lo[1]), int(hi[1])),
        slice(int(lo[2]), int(hi[2])),
    )
    inner, values = region[box], smooth[box]
    inside_mm = distance_map_mm(~inner, spacing)
    outside_mm = distance_map_mm(inner, spacing)
    core = inside_mm > EDGE_BAND_MM
    lesion_hu = float(np.median(values[core] if core.sum() >= 20 else values[inner]))
    ring = (outside_mm > EDGE_STEP_MM) & (outside_mm <= EDGE_RING_MM)
    if not ring.any():
        return None
    nearest = ndimage.distance_transform_edt(
        ~ring, sampling=spacing, return_distances=False, return_indices=True
    )
    beyond_in_bone = (
        np.zeros(inner.shape, dtype=bool) if in_bone is None else in_bone[box][tuple(nearest)]
    )
    return _Beyond(box, inside_mm, outside_mm, lesion_hu, values[tuple(nearest)], beyond_in_bone)


def _refine_edges(
    region: npt.NDArray[np.bool_],
    smooth: npt.NDArray[np.float32],
    raw: npt.NDArray[np.int16],
    allowed: npt.NDArray[np.bool_],
    in_bone: npt.NDArray[np.bool_],
    spacing: tuple[float, float, float],
) -> npt.NDArray[np.bool_]:
    """Re-judge the voxels near the outline against the tissue just beyond it.

    Against a denser neighbour (muscle, marrow, cortex) a voxel belongs to the lesion when its
    value is below the midpoint of the lesion's and the neighbour's: that is where a blurred
    edge crosses, so the outline lands on the true edge whatever the neighbour and however
    blurred the image. The neighbour is read at the nearest voxel of a ring EDGE_STEP_MM to
    EDGE_RING_MM outside. Voxels are judged on the median-filtered HU with RAW_SHARE of their
    own value, but against bone on the raw HU: there the noise is small beside the contrast, and
    the median moves a curved edge (it put cortex voxels on the iliac lesion's tips, 1 mm beyond
    each end; L +2.0 mm without noise). Edges against lighter tissue (fat, lung) are left as the
    window drew them: a thin strip of muscle on fat looks like the lesion's own partial-volume
    rim there and would be drawn in. Inside bone there is no muscle: against lighter tissue that
    bone encloses (``in_bone``: fatty marrow, the canal's fluid) the voxel belongs to the lesion
    when its raw value is above the midpoint; the window alone left the outline short there (the
    femoral lesion's end in the medulla by 0.7-0.9 mm, tilting its length axis). Raw, because
    that marrow is often a thin layer between the lesion and the cortex, and the median reads a
    thin layer, and the lesion's last voxel beside it, halfway between its neighbours (a lesion
    2 mm from a long bone's cortex read 1.1-1.4 mm narrow).
    """
    beyond = _beyond(region, smooth, spacing, in_bone)
    if beyond is None:
        return region
    box = beyond.box
    inner = region[box]
    midpoint = (beyond.lesion_hu + beyond.beyond_hu) / 2.0
    denser = beyond.beyond_hu > beyond.lesion_hu + MIN_NEIGHBOUR_CONTRAST_HU
    lighter_in_bone = beyond.beyond_in_bone & (
        beyond.beyond_hu < beyond.lesion_hu - MIN_NEIGHBOUR_CONTRAST_HU
    )
    on_raw = (beyond.beyond_hu > BONE_PARTIAL_HU) | lighter_in_bone
    values = np.where(on_raw, raw[box], (1.0 - RAW_SHARE) * smooth[box] + RAW_SHARE * raw[box])
    judged = np.where(
        denser, values < midpoint, np.where(lighter_in_bone, values > midpoint, inner)
    )
    band = (beyond.inside_mm <= EDGE_BAND_MM) & (beyond.outside_mm <= EDGE_STEP_MM)
    out = region.copy()
    out[box] = np.where(band, judged, inner) & allowed[box]
    return out


def _unseen_edge_fraction(
    region: npt.NDArray[np.bool_],
    smooth: npt.NDArray[np.float32],
    spacing: tuple[float, float, float],
) -> float:
    """The fraction of the outline's voxels with no edge beyond them.

    An outline voxel has no edge when the tissue just outside reads within
    MIN_NEIGHBOUR_CONTRAST_HU of the lesion. A lesion in muscle shows its 10 HU edge almost
    all round; a region grown into tissue of its own density ends where the search or the
    opening stopped it, on no edge at all.
    """
    beyond = _beyond(region, smooth, spacing)
    if beyond is None:
        return 0.0
    outline = region[beyond.box] & (beyond.inside_mm <= min(spacing) + 1e-6)
    contrast = np.abs(beyond.beyond_hu[outline] - beyond.lesion_hu)
    return float(np.mean(contrast < MIN_NEIGHBOUR_CONTRAST_HU))


def _smooth_outline(
    votes: npt.NDArray[np.float32], seed: tuple[int, ...], spacing: tuple[float, float, float]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """The Gaussian-smoothed votes of the refinement passes at OUTLINE_LEVEL (the seed's
    component, holes filled), and the smoothed votes themselves shifted to agree with it: 0.5 or
    more on the mask, less outside.

    The smoothed mask's level is the outline to a fraction of a voxel. The binary mask's
    surface is a staircase whose corners reach up to half a voxel beyond the edge, and a
    diameter read on it is 0.3-0.4 mm long on average.
    """
    sigma = [MASK_SIGMA_MM / sp for sp in spacing]
    field = ndimage.gaussian_filter(votes, sigma)
    labels, n = ndimage.label(field >= OUTLINE_LEVEL)
    if n == 0:  # a lesion a few voxels across: nothing left to smooth
        mask = np.asarray(ndimage.binary_fill_holes(votes >= OUTLINE_LEVEL))
        return mask, mask.astype(np.float32)
    keep = labels[seed] or 1 + int(np.argmax(np.bincount(labels[votes > 0], minlength=n + 1)[1:]))
    mask = np.asarray(ndimage.binary_fill_holes(labels == keep))
    field += 0.5 - OUTLINE_LEVEL
    membership = np.where(mask, np.maximum(field, 0.5), np.minimum(field, 0.499))
    return mask, membership.astype(np.float32)


def _describe(hu: float) -> str:
    if hu < -400:
        return "air or lung"
    if hu < -30:
        return "fat"
    return "bone"


@dataclass(frozen=True)
class _Grown:
    region: npt.NDArray[np.bool_]  # on the search box
    box_start_kji: tuple[int, int, int]
    hu_window: tuple[float, float]
    touches_search_limit: bool
    smooth: npt.NDArray[np.float32]  # the median-filtered HU of the search box
    membership: npt.NDArray[np.float32]  # the smoothed outline on the search box


def _grow(
    volume: CTVolume,
    anatomy: Anatomy,
    seed: tuple[int, int, int],
    radius_mm: float,
    rules: SegmentationRules,
    hu_window: tuple[float, float] | None,
) -> _Grown:
    """The lesion around the seed within ``radius_mm`` of it."""
    spacing = volume.geometry.spacing_kji_mm()
    lo_idx = [max(0, s - int(np.ceil(radius_mm / sp))) for s, sp in zip(seed, spacing, strict=True)]
    hi_idx = [
        min(n, s + int(np.ceil(radius_mm / sp)) + 1)
        for s, n, sp in zip(seed, volume.geometry.shape, spacing, strict=True)
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

    in_sphere = dist2 <= radius_mm**2
    allowed = in_sphere & anatomy.body[box] & ~anatomy.air[box] & ~_fat_bone_edge(smooth)
    # Lesion voxels against bone read denser (partial volume): next to bone, accept up to the
    # lesion/bone midpoint.
    # Smoothing would spread the bone into them, so they are judged on the raw HU.
    near_bone = anatomy.distance_mm["bone"][box] <= PARTIAL_VOLUME_REACH * max(spacing[1:])
    raw = volume.hu[box]
    partial = near_bone & (raw >= lo) & (raw <= (seed_hu + BONE_PARTIAL_HU) / 2)
    candidate = (((smooth >= lo) & (smooth <= hi)) | partial) & allowed & ~anatomy.bone[box]

    region = _open_around_seed(candidate, partial, smooth, local_seed, seed_hu, spacing, rules)
    if region is None:
        raise LesionNotFound(
            "no lesion could be grown from the seed: the soft tissue there is "
            f"outside the {lo:.0f} to {hi:.0f} HU window"
        )
    if hu_window is None:
        refined = _split_from_neighbour(
            region, smooth, partial, candidate, local_seed, spacing, seed_hu
        )
        if refined is not None:
            region = _open_around_seed(
                refined, partial, smooth, local_seed, seed_hu, spacing, rules
            )
            if region is None:  # cannot happen: the seed passed both windows
                region = refined
    # What bone encloses on its slice: a long bone's medulla where its cortex is whole, the canal.
    in_bone = enclosed_in_plane(anatomy.bone[box])[0] > 0
    passes = []
    for _ in range(EDGE_PASSES):
        region = _refine_edges(region, smooth, raw, allowed, in_bone, spacing)
        passes.append(region)
    changed = float((passes[-1] != passes[-2]).sum()) / max(1.0, float(passes[-1].sum()))
    converged = changed <= MAX_CHANGE_TO_AVERAGE
    votes = np.asarray(np.mean(passes if converged else passes[-1:], axis=0), dtype=np.float32)
    region, membership = _smooth_outline(votes, local_seed, spacing)
    edge = dist2 > (radius_mm - max(spacing)) ** 2
    return _Grown(
        region=region,
        box_start_kji=(lo_idx[0], lo_idx[1], lo_idx[2]),
        hu_window=(float(lo), float(hi)),
        touches_search_limit=bool((region & edge).any()),
        smooth=smooth,
        membership=membership,
    )


def unvalidated_grid_warning(volume: CTVolume, rules: SegmentationRules) -> str | None:
    """A warning when the series is coarser than the grids automatic L and W are validated on."""
    pixel_mm = max(volume.geometry.spacing_mm[:2])
    slice_mm = volume.geometry.spacing_mm[2]
    if pixel_mm <= rules.validated_pixel_mm + 1e-6 and slice_mm <= rules.validated_slice_mm + 1e-6:
        return None
    return (
        f"UNVALIDATED GRID: {pixel_mm:.2g} mm pixels, {slice_mm:.2g} mm slices; automatic L and W "
        f"are validated up to {rules.validated_pixel_mm:g} mm pixels and "
        f"{rules.validated_slice_mm:g} mm slices: check the outline on the image or measure "
        "the lesion yourself (manual mode), ideally on a thin-slice reconstruction"
    )


def unseen_edge_warning(lesion: LesionMask, rules: SegmentationRules) -> str | None:
    """A warning when much of the outline lies on no visible edge (a likely leak)."""
    fraction = lesion.unseen_edge_fraction
    if fraction is None or fraction <= rules.max_unseen_edge_fraction:
        return None
    return (
        f"UNCERTAIN OUTLINE: {100 * fraction:.0f} % of the lesion's outline shows no edge "
        "(the tissue beyond it has the lesion's density): the region may have grown into its "
        "neighbour; check the outline on the image or measure the lesion yourself (manual mode)"
    )


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
    seed_kji = geo.lps_to_kji(seed_lps_mm)
    if not geo.contains_kji(seed_kji):
        raise InvalidSeed("the seed point lies outside the scanned volume")
    seed = (int(np.rint(seed_kji[0])), int(np.rint(seed_kji[1])), int(np.rint(seed_kji[2])))
    if not anatomy.body[seed]:
        raise InvalidSeed("the seed point lies outside the patient's body")

    max_radius = search_radius_mm or rules.search_radius_mm
    radius = min(FIRST_SEARCH_RADIUS_MM, max_radius)
    grown = _grow(volume, anatomy, seed, radius, rules, hu_window)
    if grown.touches_search_limit and radius < max_radius:
        grown = _grow(volume, anatomy, seed, max_radius, rules, hu_window)
    if grown.touches_search_limit:
        raise LesionNotFound(
            f"the region grown from the seed reaches the {max_radius:.0f} mm search radius: "
            "the lesion cannot be told from the soft tissue around it here; measure it "
            "yourself (manual mode), or give a narrower HU window or a larger search radius"
        )

    region = grown.region
    if region.sum() * geo.voxel_volume_ml < rules.min_volume_ml:
        raise LesionNotFound(
            f"the region grown from the seed is smaller than {rules.min_volume_ml} mL: "
            "no lesion found there"
        )
    found = np.argwhere(region)
    a, b = found.min(axis=0), found.max(axis=0) + 1
    offset = np.asarray(grown.box_start_kji) + a
    return LesionMask(
        mask=region[a[0] : b[0], a[1] : b[1], a[2] : b[2]].copy(),
        offset_kji=(int(offset[0]), int(offset[1]), int(offset[2])),
        seed_lps_mm=(float(seed_lps_mm[0]), float(seed_lps_mm[1]), float(seed_lps_mm[2])),
        hu_window=grown.hu_window,
        unseen_edge_fraction=_unseen_edge_fraction(
            grown.region, grown.smooth, geo.spacing_kji_mm()
        ),
        membership=np.pad(grown.membership, 1)[
            a[0] : b[0] + 2, a[1] : b[1] + 2, a[2] : b[2] + 2
        ].copy(),
    )

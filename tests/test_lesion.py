"""Lesion segmentation on small synthetic volumes: the hard edges of a real lytic lesion.

The phantom is a lesion (40 HU) breaking through the cortex of a bone (marrow 250 HU, cortex
900 HU) into muscle only 10 HU denser than itself, imaged with partial volume (2x
supersampling), a half-voxel blur and 10 HU noise, like the sample cases at full size. One
test runs a full-size sample case on a noise draw where a lesion inside bone was split from
itself.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage
from tools import make_ct_series, set_ct_pixels

import planner.lesion as lesion_module
from planner.anatomy import segment_anatomy
from planner.errors import LesionNotFound
from planner.lesion import segment_lesion
from planner.measure import Measurement, measure_lesion
from planner.rules import PlanningRules
from planner.volume import CTVolume, load_volume
from sample_series.catalogue import CASES
from sample_series.phantom import build_case
from sample_series.spec import CaseSpec, noise_draw

SIZE = 56  # voxels per axis, 1 mm
SEMI_AXES_MM = (10.0, 6.5, 5.5)  # x, y, z: L = 20 mm, W = 13 mm
CENTRE_MM = (0.0, 0.0, 0.0)  # relative to the volume centre
CORTEX_Y_MM = (3.0, 5.0)  # the lesion sits across the cortex: marrow above, muscle below


def _tissue(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    hu = np.full(np.broadcast(x, y, z).shape, 50.0, dtype=np.float32)  # muscle
    hu[np.broadcast_to(x * x + y * y > 24.0**2, hu.shape)] = -100.0  # subcutaneous fat
    cortex = (y >= CORTEX_Y_MM[0]) & (y <= CORTEX_Y_MM[1]) & (x * x + y * y <= 24.0**2)
    marrow = (y > CORTEX_Y_MM[1]) & (y <= 15.0) & (x * x + y * y <= 24.0**2)
    hu[np.broadcast_to(marrow, hu.shape)] = 250.0
    hu[np.broadcast_to(cortex, hu.shape)] = 900.0
    a, b, c = SEMI_AXES_MM
    lesion = (x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2 <= 1.0
    hu[lesion] = 40.0
    return hu


def _phantom(noise_seed: int = 7) -> tuple[CTVolume, np.ndarray]:
    """Volume and the truth mask (voxel centres inside the lesion)."""
    fine = (np.arange(2 * SIZE) - (2 * SIZE - 1) / 2.0) / 2.0  # 0.5 mm sub-voxel centres
    z, y, x = np.meshgrid(fine, fine, fine, indexing="ij", sparse=True)
    hu = _tissue(x, y, z).reshape(SIZE, 2, SIZE, 2, SIZE, 2).mean(axis=(1, 3, 5))
    hu = ndimage.gaussian_filter(hu, 0.5)
    hu += np.random.default_rng(noise_seed).normal(0.0, 10.0, hu.shape).astype(np.float32)
    centres = np.arange(SIZE) - (SIZE - 1) / 2.0
    zc, yc, xc = np.meshgrid(centres, centres, centres, indexing="ij", sparse=True)
    a, b, c = SEMI_AXES_MM
    truth = (xc / a) ** 2 + (yc / b) ** 2 + (zc / c) ** 2 <= 1.0
    datasets = make_ct_series(SIZE, SIZE, spacing_mm=(1.0, 1.0, 1.0))
    for k, ds in enumerate(datasets):
        set_ct_pixels(ds, np.rint(hu[k]).astype(np.int16))
    return load_volume(datasets), truth


@pytest.fixture(scope="module")
def phantom() -> tuple[CTVolume, np.ndarray]:
    return _phantom()


def _seed_lps(volume: CTVolume) -> tuple[float, float, float]:
    c = (SIZE - 1) / 2.0
    p = volume.geometry.kji_to_lps(np.array([c, c, c]) + np.array(CENTRE_MM)[::-1])
    return (float(p[0]), float(p[1]), float(p[2]))


@pytest.mark.parametrize("noise_seed", [1, 2, 3, 4])
def test_lesion_across_a_cortical_breach_measures_within_one_and_a_half_voxels(noise_seed):
    # Over noise realisations the error spreads to about 1.5 mm (measured: 8 seeds, worst
    # 1.51 mm on L, 1.11 mm on W): the edge against muscle is 10 HU at 10 HU noise.
    volume, _ = _phantom(noise_seed)
    anatomy = segment_anatomy(volume)
    lesion = segment_lesion(volume, anatomy, _seed_lps(volume), PlanningRules().segmentation)
    m = measure_lesion(lesion, volume.geometry)
    assert m.length_mm == pytest.approx(2 * SEMI_AXES_MM[0], abs=1.6)
    assert m.width_mm == pytest.approx(2 * SEMI_AXES_MM[1], abs=1.6)


def test_outline_follows_the_edge_against_marrow_cortex_and_muscle(phantom):
    volume, truth = phantom
    anatomy = segment_anatomy(volume)
    lesion = segment_lesion(volume, anatomy, _seed_lps(volume), PlanningRules().segmentation)
    mask = lesion.full_mask(volume.geometry.shape)
    outside_mm = ndimage.distance_transform_edt(~truth)
    inside_mm = ndimage.distance_transform_edt(truth)
    assert outside_mm[mask].max() <= 1.5, "the outline leaks into the tissue around"
    # At 10 HU contrast and 10 HU noise the rim voxels are a coin toss and noise leaves
    # dents; the lesion's body must be there.
    deep = truth & (inside_mm > 1.5)
    assert (mask & deep).sum() >= 0.9 * deep.sum()
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) >= 0.8


def test_a_seed_in_plain_muscle_is_refused_when_the_region_fills_the_search_sphere(phantom):
    volume, _ = phantom
    anatomy = segment_anatomy(volume)
    c = (SIZE - 1) / 2.0
    in_muscle = volume.geometry.kji_to_lps(np.array([c, c - 14.0, c]))  # 14 mm anterior
    with pytest.raises(LesionNotFound, match="search radius"):
        segment_lesion(
            volume,
            anatomy,
            (float(in_muscle[0]), float(in_muscle[1]), float(in_muscle[2])),
            PlanningRules().segmentation,
            search_radius_mm=12.0,
        )


def test_a_region_that_took_in_muscle_is_split_at_the_seeds_own_density():
    # A small lesion (40 HU) whose first region also took in a block of muscle (50 HU) around
    # it: the region's median is the muscle's, so only the seed tells the lesion's density.
    rng = np.random.default_rng(3)
    shape, spacing = (40, 40, 40), (1.0, 1.0, 1.0)
    k, j, i = np.indices(shape)
    ball = (k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 5**2
    smooth = np.where(ball, 40.0, 50.0).astype(np.float32)
    smooth += rng.normal(0.0, 2.0, shape).astype(np.float32)
    region = (abs(k - 20) <= 12) & (abs(j - 20) <= 12) & (abs(i - 20) <= 12)
    partial = np.zeros(shape, dtype=bool)

    refined = lesion_module._split_from_neighbour(
        region, smooth, partial, region, (20, 20, 20), spacing, seed_hu=40.0
    )

    assert refined is not None
    band = ndimage.distance_transform_edt(region) <= lesion_module.BAND_MM
    assert (refined & band & ~ball).sum() < 0.05 * (band & ~ball).sum()
    assert refined[ball].all()


def test_the_split_re_judges_the_outer_band_not_the_rims_of_holes_inside_the_lesion():
    # A large lesion (40 HU) in muscle (50 HU) whose first region has single-voxel holes deep
    # inside, where the window rejected a noise spike; the voxels around each hole read 46 HU,
    # above the split's cut (45 HU) but inside the window. Measured from the holes, the band
    # would take them out and leave the core porous: the opening then kept a few voxels of a
    # 75 mm lesion. The band is the outer one, so the core stays whole.
    shape, spacing = (40, 40, 40), (1.0, 1.0, 1.0)
    k, j, i = np.indices(shape)
    ball = (k - 20) ** 2 + (j - 20) ** 2 + (i - 20) ** 2 <= 14**2
    smooth = np.where(ball, 40.0, 50.0).astype(np.float32)
    holes = np.zeros(shape, dtype=bool)
    for hole in [(20, 20, 24), (20, 24, 20), (24, 20, 20), (16, 20, 20)]:
        holes[hole] = True
    around_holes = ndimage.binary_dilation(holes) & ~holes
    smooth[around_holes] = 46.0
    region = ball & ~holes

    refined = lesion_module._split_from_neighbour(
        region, smooth, np.zeros(shape, dtype=bool), region, (20, 20, 20), spacing, seed_hu=40.0
    )

    assert refined is not None
    deep = ndimage.distance_transform_edt(ball) > lesion_module.BAND_MM + 1.0
    assert refined[deep & region].all(), "the lesion's core is not re-judged"


def test_pieces_of_the_lesion_cut_off_by_the_opening_are_joined_back_but_not_muscle():
    # Three balls in a row joined by thin necks, as an opening leaves them: the seed's (kept)
    # in the middle, on one side a piece of lesion density (a soft-tissue extension through a
    # breach), on the other side a ball of muscle, 10 HU denser, as near.
    spacing = (1.0, 1.0, 1.0)
    k, j, i = np.indices((30, 30, 44))
    muscle_i, seed_i, piece_i = 8, 20, 32
    balls = [
        (k - 15) ** 2 + (j - 15) ** 2 + (i - c) ** 2 <= 6**2 for c in (muscle_i, seed_i, piece_i)
    ]
    rod = ((k - 15) ** 2 + (j - 15) ** 2 <= 1) & (i >= muscle_i) & (i <= piece_i)
    component = balls[0] | balls[1] | balls[2] | rod
    smooth = np.where(balls[0], 50.0, 40.0).astype(np.float32)
    radius = 2.0
    inside = ndimage.distance_transform_edt(component)
    core_labels, n = ndimage.label(inside >= radius)
    assert n == 3  # the necks are narrower than the opening
    keep = core_labels == core_labels[15, 15, seed_i]

    joined, necks = lesion_module._rejoin_cut_pieces(
        core_labels, keep, component, smooth, 40.0, radius, spacing
    )

    assert joined[15, 15, piece_i], "the lesion's own piece is joined back"
    assert not joined[15, 15, muscle_i], "the muscle stays out"
    labels, _ = ndimage.label(joined | necks)
    assert labels[15, 15, seed_i] == labels[15, 15, piece_i], "the neck joins the two pieces"
    assert not necks[:, :, : seed_i - 4].any()


def test_an_organ_of_the_lesions_density_cut_off_by_the_opening_stays_out():
    # The seed's ball joined by a thin neck to a block of the same density many times its
    # size (bowel, heart): the opening's cut stands.
    spacing = (1.0, 1.0, 1.0)
    k, j, i = np.indices((30, 30, 60))
    ball = (k - 15) ** 2 + (j - 15) ** 2 + (i - 10) ** 2 <= 6**2
    organ = (abs(k - 15) <= 12) & (abs(j - 15) <= 12) & (i >= 17) & (i <= 50)
    rod = ((k - 15) ** 2 + (j - 15) ** 2 <= 1) & (i >= 10) & (i <= 17)
    component = ball | organ | rod
    smooth = np.full(component.shape, 40.0, dtype=np.float32)
    radius = 2.0
    core_labels, n = ndimage.label(ndimage.distance_transform_edt(component) >= radius)
    assert n == 2
    keep = core_labels == core_labels[15, 15, 10]

    joined, necks = lesion_module._rejoin_cut_pieces(
        core_labels, keep, component, smooth, 40.0, radius, spacing
    )

    assert not joined[15, 15, 35]
    assert not necks.any()


def test_an_outline_on_tissue_of_its_own_density_has_no_edge_and_one_in_muscle_has():
    k, j, i = np.indices((32, 32, 32))
    ball = (k - 16) ** 2 + (j - 16) ** 2 + (i - 16) ** 2 <= 8**2
    spacing = (1.0, 1.0, 1.0)
    in_muscle = np.where(ball, 40.0, 50.0).astype(np.float32)
    in_its_own = np.full(ball.shape, 40.0, dtype=np.float32)
    assert lesion_module._unseen_edge_fraction(ball, in_muscle, spacing) == 0.0
    assert lesion_module._unseen_edge_fraction(ball, in_its_own, spacing) == 1.0


def test_the_segmented_lesion_in_muscle_shows_its_edge(phantom):
    volume, _ = phantom
    anatomy = segment_anatomy(volume)
    lesion = segment_lesion(volume, anatomy, _seed_lps(volume), PlanningRules().segmentation)
    assert lesion.unseen_edge_fraction is not None
    assert lesion.unseen_edge_fraction < PlanningRules().segmentation.max_unseen_edge_fraction


def test_an_outline_without_edges_is_flagged_and_the_limit_is_a_setting():
    lesion = lesion_module.LesionMask(
        np.ones((2, 2, 2), dtype=bool), (0, 0, 0), (0.0, 0.0, 0.0), (30.0, 50.0), 0.8
    )
    rules = PlanningRules().segmentation
    warning = lesion_module.unseen_edge_warning(lesion, rules)
    assert warning is not None and warning.startswith("UNCERTAIN OUTLINE: 80 %")
    assert (
        lesion_module.unseen_edge_warning(lesion, replace(rules, max_unseen_edge_fraction=0.9))
        is None
    )
    manual = replace(lesion, unseen_edge_fraction=None)
    assert lesion_module.unseen_edge_warning(manual, rules) is None


def test_where_fat_meets_bone_the_blurred_edge_is_never_lesion():
    # Fatty marrow (-60 HU) against cortex (1200 HU), and the lesion (40 HU) against the same
    # cortex, both blurred: the fat-cortex edge passes through the lesion's density, and is
    # excluded; the lesion's own rim against the cortex is not.
    hu = np.full((7, 3, 40), 1200.0, dtype=np.float32)  # cortex from column 10 on
    hu[:3, :, :10] = -60.0  # slices 0-2: fat before the cortex
    hu[4:, :, :10] = 40.0  # slices 4-6: lesion before the cortex
    smooth = ndimage.gaussian_filter1d(hu, 1.0, axis=2)
    edge = lesion_module._fat_bone_edge(smooth)

    soft = (smooth > 0) & (smooth < 120)  # reads as soft tissue
    assert soft[1].any() and edge[1][soft[1]].all(), "the fat-cortex edge"
    assert soft[5].any() and not edge[5][soft[5]].any(), "the lesion's rim on the cortex"


LONG_BONE_LESION_SEMI_MM = (8.0, 12.0)  # across and along the bone: W = 16 mm, L = 24 mm


def _imaged(
    fine_hu: np.ndarray,
    sub: int,
    spacing_mm: tuple[float, float, float],
    noise_seed: int | None = None,
) -> CTVolume:
    """A phantom drawn on a grid ``sub`` times finer than the voxels along every axis, imaged:
    partial volume (the mean of each voxel's sub-voxels), a half-voxel blur, 10 HU noise when
    a seed is given. ``spacing_mm`` is (row spacing, column spacing, slice spacing)."""
    slices, rows, cols = (n // sub for n in fine_hu.shape)
    hu = fine_hu.reshape(slices, sub, rows, sub, cols, sub).mean(axis=(1, 3, 5))
    hu = ndimage.gaussian_filter(hu, 0.5)
    if noise_seed is not None:
        hu += np.random.default_rng(noise_seed).normal(0.0, 10.0, hu.shape).astype(np.float32)
    datasets = make_ct_series(slices, cols, spacing_mm=spacing_mm)
    for k, ds in enumerate(datasets):
        set_ct_pixels(ds, np.rint(hu[k]).astype(np.int16))
    return load_volume(datasets)


def _measured_from_the_centre(volume: CTVolume) -> Measurement:
    """L and W of the lesion segmented from a seed at the volume's centre."""
    centre = volume.geometry.kji_to_lps(np.asarray(volume.geometry.shape, float) / 2.0 - 0.5)
    seed = (float(centre[0]), float(centre[1]), float(centre[2]))
    lesion = segment_lesion(volume, segment_anatomy(volume), seed, PlanningRules().segmentation)
    return measure_lesion(lesion, volume.geometry)


def _long_bone_phantom(noise_seed: int) -> CTVolume:
    """A long bone along z (fatty marrow, -60 HU, in a whole cortex) in muscle, with a lytic
    lesion in its medulla: 1 mm voxels, the lesion's ends and sides against the fatty marrow."""
    size, slices = 40, 48
    fine_xy = (np.arange(2 * size) - (2 * size - 1) / 2.0) / 2.0
    fine_z = (np.arange(2 * slices) - (2 * slices - 1) / 2.0) / 2.0
    z, y, x = np.meshgrid(fine_z, fine_xy, fine_xy, indexing="ij", sparse=True)
    r2 = x * x + y * y
    hu = np.full(np.broadcast(x, y, z).shape, 50.0, dtype=np.float32)  # muscle
    hu[np.broadcast_to(r2 <= 13.0**2, hu.shape)] = 1200.0  # cortex
    hu[np.broadcast_to(r2 <= 10.0**2, hu.shape)] = -60.0  # fatty marrow
    a, c = LONG_BONE_LESION_SEMI_MM
    hu[(x / a) ** 2 + (y / a) ** 2 + (z / c) ** 2 <= 1.0] = 40.0
    return _imaged(hu, 2, (1.0, 1.0, 1.0), noise_seed)


@pytest.mark.parametrize("noise_seed", [1, 2])
def test_a_lesion_in_fatty_marrow_reaches_its_ends_inside_the_bone(noise_seed):
    # No muscle lies inside bone, so against the marrow the bone encloses the edge is refined
    # at the midpoint, not left where the lesion's window cut the blurred fat edge. It is
    # judged on the raw HU: the 2 mm of marrow between the lesion's sides and the cortex reads
    # halfway to the lesion after the median filter, and so does the lesion's last voxel.
    # Measured over noise seeds 1-6: L -0.24 to -0.13 mm, W -0.09 to +0.58 mm. Judged on the
    # median W was -1.07 to -0.61 mm (-1.4 to -1.1 on the smoothed mask's surface); with the
    # window's edge L was 1.6 to 3.2 mm short and W 1.0 to 1.7 mm.
    m = _measured_from_the_centre(_long_bone_phantom(noise_seed))
    a, c = LONG_BONE_LESION_SEMI_MM
    assert m.length_mm == pytest.approx(2 * c, abs=1.0)
    assert m.width_mm == pytest.approx(2 * a, abs=1.0)


def _assert_within_a_millimetre(spec: CaseSpec) -> None:
    """The catalogue case built at full size: its L and W are within 1 mm of the truth."""
    case = build_case(spec, full_size=True)
    volume = load_volume(case.datasets)
    anatomy = segment_anatomy(volume)
    lesion = segment_lesion(volume, anatomy, case.truth.seed_lps_mm, PlanningRules().segmentation)
    m = measure_lesion(lesion, volume.geometry)
    assert abs(m.length_mm - case.truth.length_mm) <= 1.0
    assert abs(m.width_mm - case.truth.width_mm) <= 1.0


def test_a_lesion_in_bone_is_not_split_from_its_own_noisy_rim():
    # sternum_borderline_10 at full size, noise draw 4 (seed + 4000). The voxels just outside
    # the windowed region are mostly lesion that the noise pushed above the window; read as
    # the denser neighbour, they split the lesion from itself and its craniocaudal ends lost
    # 3 slices (L -2.2 mm). Read 1.25-3 mm out, as the edge refinement reads it, L is within
    # 1 mm.
    _assert_within_a_millimetre(noise_draw(CASES["sternum_borderline_10"], 4))


def test_a_lesion_ending_on_cortex_ends_where_the_cortex_begins():
    # iliac_borderline_50 at full size without noise: its tips lie on the iliac cortex. Judged
    # on the median-filtered HU, the cortex voxels at each tip read below the lesion/cortex
    # midpoint (the median moves a curved edge) and L came out 2.0 mm long; judged on the raw
    # HU against bone, L is within 1 mm.
    _assert_within_a_millimetre(replace(CASES["iliac_borderline_50"], noise_sd_hu=0.0))


def test_a_tapered_lesion_end_is_not_opened_away_with_the_noise():
    # rib_lateral_decubitus at full size, noise draw 2 (seed + 2000): the lesion's tapered
    # ends lie against intercostal soft tissue. The noise left one-voxel pores in the
    # windowed region near a tip, the tip looked thinner than the opening's ball, and the
    # opening took it: L 3.4 mm short. With the pores closed before the depth is measured,
    # L is within 1 mm.
    _assert_within_a_millimetre(noise_draw(CASES["rib_lateral_decubitus"], 2))


def _sphere_in_marrow(radius_mm: float, centre_mm: tuple[float, float, float]) -> CTVolume:
    """A lesion sphere in marrow (250 HU), 0.8 mm pixels and 1 mm slices, with partial volume
    (3x supersampling) and a half-voxel blur, without noise."""
    size, slices, pixel_mm, slice_mm, sub = 40, 32, 0.8, 1.0, 3
    fine_xy = ((np.arange(size * sub) + 0.5) / sub - size / 2) * pixel_mm
    fine_z = ((np.arange(slices * sub) + 0.5) / sub - slices / 2) * slice_mm
    z, y, x = np.meshgrid(fine_z, fine_xy, fine_xy, indexing="ij", sparse=True)
    hu = np.full(np.broadcast(x, y, z).shape, 250.0, dtype=np.float32)
    cx, cy, cz = centre_mm
    hu[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm**2] = 40.0
    return _imaged(hu, sub, (pixel_mm, pixel_mm, slice_mm))


@pytest.mark.parametrize("centre_mm", [(0.0, 0.0, 0.0), (0.3, 0.2, 0.35)])
def test_a_spheres_diameters_are_read_off_its_surface_not_off_the_voxel_staircase(centre_mm):
    # The binary mask's surface is a staircase whose corners stand out of the sphere: read on
    # it, a 13 mm sphere's L was 0.5-0.7 mm long (W 0.2-0.3 mm). Read at the half level of
    # the smoothed mask, both are within 0.15 mm.
    radius_mm = 6.5
    m = _measured_from_the_centre(_sphere_in_marrow(radius_mm, centre_mm))
    assert m.length_mm == pytest.approx(2 * radius_mm, abs=0.3)
    assert m.width_mm == pytest.approx(2 * radius_mm, abs=0.3)

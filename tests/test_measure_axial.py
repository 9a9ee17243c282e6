"""The axial measurement mode: L and W on the axial slice where the lesion is widest."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synthetic_lesion import make_lesion_ct

from planner.anatomy import segment_anatomy
from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask
from planner.measure import MeasurementMode, measure_lesion
from planner.overlay import PANEL_WIDTH_PX, SKY_BLUE, render_overlays
from planner.plan import PlanRequest, make_plan
from planner.rules import PlanningRules
from planner.volume import load_volume

AXES = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
SPACING_MM = (0.8, 0.8, 2.0)
SHAPE = (40, 90, 90)
# Lesion centre, LPS mm: on slice 20, between voxel centres in-plane so no boundary of the
# ellipses below falls exactly on a voxel centre.
CENTRE_MM = (35.3, 36.1, 40.0)


def _ellipsoid(semi_axes_mm, rotation) -> tuple[VolumeGeometry, LesionMask]:
    """Voxels whose centre lies in the ellipsoid with these semi-axes along the columns of
    ``rotation`` (a 3x3 matrix, LPS)."""
    g = VolumeGeometry((0.0, 0.0, 0.0), SPACING_MM, AXES, SHAPE)
    k, j, i = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1], 0 : SHAPE[2]].astype(float)
    rel = np.stack([i * SPACING_MM[0], j * SPACING_MM[1], k * SPACING_MM[2]], axis=-1)
    local = (rel - np.asarray(CENTRE_MM)) @ np.asarray(rotation)
    mask = ((local / np.asarray(semi_axes_mm)) ** 2).sum(axis=-1) <= 1.0
    return g, LesionMask(mask, (0, 0, 0), CENTRE_MM, (0.0, 100.0))


def _in_plane(angle_deg: float) -> np.ndarray:
    t = np.deg2rad(angle_deg)
    return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])


def _tilted(angle_deg: float) -> np.ndarray:
    """Long axis turned out of the axial plane, from x toward z."""
    t = np.deg2rad(angle_deg)
    return np.array([[np.cos(t), 0.0, -np.sin(t)], [0.0, 1.0, 0.0], [np.sin(t), 0.0, np.cos(t)]])


def _direction(ends) -> np.ndarray:
    d = np.subtract(ends[1], ends[0])
    return d / np.linalg.norm(d)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 65.0])
def test_axial_length_and_width_of_an_ellipsoid_on_its_widest_slice(angle_deg):
    g, lesion = _ellipsoid((18.0, 11.0, 9.0), _in_plane(angle_deg))
    m = measure_lesion(lesion, g, MeasurementMode.AXIAL)
    assert m.mode is MeasurementMode.AXIAL
    assert m.slice_index == 20  # the ellipsoid's equator: the widest section
    assert m.slice_position_mm == pytest.approx(40.0)
    assert m.length_mm == pytest.approx(36.0, abs=m.length_uncertainty_mm)
    assert m.width_mm == pytest.approx(22.0, abs=m.width_uncertainty_mm)
    l_dir, w_dir = _direction(m.length_endpoints_lps_mm), _direction(m.width_endpoints_lps_mm)
    assert abs(l_dir @ w_dir) < 1e-6
    t = np.deg2rad(angle_deg)
    # A digital ellipse has flat ends a few pixels wide: its Feret may run corner to corner.
    assert abs(l_dir @ (np.cos(t), np.sin(t), 0.0)) > np.cos(np.deg2rad(10.0))
    # Both lines lie on the measured slice.
    for p in (*m.length_endpoints_lps_mm, *m.width_endpoints_lps_mm):
        assert p[2] == pytest.approx(40.0)
    # The rest is as in the 3-D mode.
    m3 = measure_lesion(lesion, g)
    assert m.voxel_volume_ml == m3.voxel_volume_ml
    assert m.center_lps_mm == m3.center_lps_mm
    assert m.length_uncertainty_mm == pytest.approx(0.8)  # in-plane: one pixel


def test_the_widest_slice_wins_even_off_the_centre_slice():
    # Two stacked discs: a small one on the centre slice region and a wider one above it.
    g = VolumeGeometry((0.0, 0.0, 0.0), SPACING_MM, AXES, SHAPE)
    j, i = np.mgrid[0 : SHAPE[1], 0 : SHAPE[2]].astype(float)
    r_mm = np.hypot(i * 0.8 - 36.1, j * 0.8 - 36.1)
    mask = np.zeros(SHAPE, dtype=bool)
    mask[15:22] = r_mm <= 6.0
    mask[22:24] = r_mm <= 10.0
    m = measure_lesion(LesionMask(mask, (0, 0, 0), CENTRE_MM, None), g, "axial")
    assert m.slice_index == 22  # equal widths on 22 and 23: the one nearer the centre
    assert m.length_mm == pytest.approx(20.0, abs=0.8)
    assert m.width_mm == pytest.approx(20.0, abs=0.8)


def test_an_oblique_lesion_measures_shorter_on_the_axial_slice_than_in_3d():
    # A cigar tilted 45 degrees out of the axial plane: its 3-D Feret runs through slices.
    a, b = 20.0, 6.0
    g, lesion = _ellipsoid((a, b, b), _tilted(45.0))
    m3 = measure_lesion(lesion, g)
    ma = measure_lesion(lesion, g, MeasurementMode.AXIAL)
    assert m3.mode is MeasurementMode.THREE_D and m3.slice_index is None
    assert m3.length_mm == pytest.approx(2 * a, abs=m3.length_uncertainty_mm)
    # The central section of the ellipsoid by the axial plane: semi-axis along x is
    # 1 / sqrt(cos^2/a^2 + sin^2/b^2), along y it is b.
    in_plane_semi_mm = 1.0 / np.sqrt(0.5 / a**2 + 0.5 / b**2)
    assert ma.slice_index == 20
    assert ma.length_mm == pytest.approx(2 * in_plane_semi_mm, abs=ma.length_uncertainty_mm)
    assert ma.width_mm == pytest.approx(2 * b, abs=ma.width_uncertainty_mm)
    assert ma.length_mm < m3.length_mm - 10.0


def test_axial_mode_follows_a_rotated_grid():
    # Decubitus-like frame: columns run along -y, rows along +x. The answer is in LPS mm.
    direction = ((0.0, 1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    g = VolumeGeometry((-40.0, 40.0, 0.0), (0.8, 0.8, 2.0), direction, (20, 100, 100))
    kji = np.stack(np.mgrid[0:20, 0:100, 0:100], axis=-1).reshape(-1, 3)
    lps = g.kji_to_lps(kji)
    local = (lps - (0.3, 0.2, 20.0)) / (15.0, 7.0, 5.0)
    mask = ((local**2).sum(axis=1) <= 1.0).reshape(20, 100, 100)
    m = measure_lesion(LesionMask(mask, (0, 0, 0), (0.0, 0.0, 20.0), None), g, "axial")
    assert m.slice_index == 10
    assert m.length_mm == pytest.approx(30.0, abs=0.8)
    assert m.width_mm == pytest.approx(14.0, abs=0.8)
    assert abs(_direction(m.length_endpoints_lps_mm)[0]) > 0.99  # L along x (LPS)


def _caliper_pixels(view) -> int:
    """Pixels of the L colour in the image part of a view (the side panel names L too)."""
    image = view.rgb[:, : view.rgb.shape[1] - PANEL_WIDTH_PX]
    return int(np.all(image == SKY_BLUE, axis=-1).sum())


def test_overlay_draws_axial_calipers_on_the_measured_slice_only():
    case = make_lesion_ct()
    volume = load_volume(case.datasets)
    request = PlanRequest(seed_lps_mm=case.seed_lps_mm, measurement_mode=MeasurementMode.AXIAL)
    plan = make_plan(volume, segment_anatomy(volume), request, PlanningRules())
    k = plan.measurement.slice_index
    assert k is not None
    top = max(int(i) for i in np.flatnonzero(plan.lesion.mask.any(axis=(1, 2))))
    top_lps = volume.geometry.kji_to_lps((plan.lesion.offset_kji[0] + top, 48.0, 48.0))
    # As planned, and with no needle and the target on another slice than the measured one.
    elsewhere = dataclasses.replace(
        plan,
        trajectory=dataclasses.replace(plan.trajectory, needles=()),
        target_lps_mm=tuple(float(v) for v in top_lps),
    )
    for p in (plan, elsewhere):
        views = render_overlays(volume, p)
        axial = [v for v in views if "oblique" not in v.title]
        assert [v.slice_index for v in axial].count(k) == 1
        for v in axial:
            assert (_caliper_pixels(v) > 0) == (v.slice_index == k), v.title
    titles = [v.title for v in render_overlays(volume, elsewhere)]
    assert titles == ["lesion (no needle)", f"lesion measurement, axial slice {k}"]

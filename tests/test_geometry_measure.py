import numpy as np
import pytest
from scipy import ndimage

from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask
from planner.measure import measure_lesion, voxel_step_mm

AXES = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def test_index_and_lps_round_trip_for_a_rotated_grid():
    # Decubitus-like frame: any orthonormal frame must round-trip.
    direction = ((0.0, 1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    g = VolumeGeometry((10.0, -20.0, 5.0), (0.7, 0.7, 2.5), direction, (10, 20, 30))
    kji = np.array([[3.0, 4.0, 5.0], [0.0, 0.0, 0.0]])
    assert np.allclose(g.lps_to_kji(g.kji_to_lps(kji)), kji)
    # Column index i moves along the first column of the direction matrix.
    assert np.allclose(g.index_to_lps([1, 0, 0]) - g.index_to_lps([0, 0, 0]), [0.0, -0.7, 0.0])


def _ellipsoid_mask(spacing, semi_axes, angle_deg):
    g = VolumeGeometry((0.0, 0.0, 0.0), spacing, AXES, (70, 110, 110))
    k, j, i = np.mgrid[0:70, 0:110, 0:110].astype(float)
    x, y, z = i * spacing[0] - 44, j * spacing[1] - 44, k * spacing[2] - 70
    t = np.deg2rad(angle_deg)
    u = x * np.cos(t) + y * np.sin(t)
    v = -x * np.sin(t) + y * np.cos(t)
    a, b, c = semi_axes
    return g, (u / a) ** 2 + (v / b) ** 2 + (z / c) ** 2 <= 1


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 65.0])
def test_feret_length_and_width_of_ellipsoid_within_clinical_tolerance(angle_deg):
    g, mask = _ellipsoid_mask((0.8, 0.8, 2.0), (20.0, 12.0, 8.0), angle_deg)
    m = measure_lesion(LesionMask(mask, (0, 0, 0), (0, 0, 0), (0, 100)), g)
    assert m.length_mm == pytest.approx(40.0, abs=1.0)
    assert m.width_mm == pytest.approx(24.0, abs=1.0)
    l_dir = np.subtract(*m.length_endpoints_lps_mm)
    w_dir = np.subtract(*m.width_endpoints_lps_mm)
    assert abs(np.dot(l_dir, w_dir)) / (np.linalg.norm(l_dir) * np.linalg.norm(w_dir)) < 1e-6
    assert m.voxel_volume_ml == pytest.approx(4 / 3 * np.pi * 20 * 12 * 8 / 1000, rel=0.05)


def test_voxel_step_follows_direction():
    g = VolumeGeometry((0.0, 0.0, 0.0), (0.8, 0.8, 5.0), AXES, (5, 5, 5))
    assert voxel_step_mm((1.0, 0.0, 0.0), g) == pytest.approx(0.8)
    assert voxel_step_mm((0.0, 0.0, 1.0), g) == pytest.approx(5.0)


def test_the_width_of_a_noisy_outline_does_not_follow_the_noise_at_its_blunt_ends():
    # An ellipsoid (44 x 30 x 24 mm) whose outline the noise roughened: a third of its surface
    # voxels dropped and a third of the voxels just outside added, in 10 draws. Many pairs of
    # points at the blunt ends are nearly the longest; taking whichever is longest tilted the
    # L axis from draw to draw, and W across it (0.4 mm spread). With the axis at the centre of
    # the near-longest directions and W from the fitted ellipse, W is the same in every draw.
    g = VolumeGeometry((0.0, 0.0, 0.0), (0.8, 0.8, 1.0), AXES, (56, 56, 70))
    k, j, i = np.mgrid[0:56, 0:56, 0:70].astype(float)
    x, y, z = (i - 35) * 0.8, (j - 28) * 0.8, (k - 28) * 1.0
    ellipsoid = (x / 22) ** 2 + (y / 15) ** 2 + (z / 12) ** 2 <= 1
    surface = ellipsoid & ~ndimage.binary_erosion(ellipsoid)
    outside = ndimage.binary_dilation(ellipsoid) & ~ellipsoid
    widths = []
    for draw in range(10):
        rng = np.random.default_rng(draw)
        noisy = (ellipsoid & ~(surface & (rng.random(g.shape) < 0.3))) | (
            outside & (rng.random(g.shape) < 0.3)
        )
        m = measure_lesion(LesionMask(noisy, (0, 0, 0), (0, 0, 0), (0, 100)), g)
        widths.append(m.width_mm)
        ends = np.asarray(m.length_endpoints_lps_mm)
        assert np.linalg.norm(ends[1] - ends[0]) == pytest.approx(m.length_mm)
        l_dir, w_dir = ends[1] - ends[0], np.subtract(*m.width_endpoints_lps_mm)
        assert abs(np.dot(l_dir, w_dir)) / (np.linalg.norm(l_dir) * np.linalg.norm(w_dir)) < 1e-6
    assert max(widths) - min(widths) < 0.1

"""The planner on a real thorax CT (TCIA Lung-PET-CT-Dx A0001, 5 mm): skipped when absent.

The series has no bone lesion: the lung tumour against the posterior chest wall is the
segmentation target, and a rib stands in for a bone target in manual mode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from planner.anatomy import Anatomy, segment_anatomy
from planner.errors import InvalidSeed
from planner.lesion import segment_lesion
from planner.manual import ManualMeasurement
from planner.measure import measure_lesion
from planner.plan import PlanRequest, make_plan
from planner.rules import PlanningRules
from planner.vessels import NON_CONTRAST_WARNING
from planner.volume import CTVolume, load_volume

SERIES = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "real-ct"
    / ("lung-pet-ct-dx-A0001-chest-5mm")
)
TUMOUR_SEED = (40.0, 205.0, -209.0)
# TCIA's per-slice boxes around the tumour, across all slices (README of the data).
BOX_MIN = np.array([6.0, 158.0, -234.0])
BOX_MAX = np.array([75.0, 245.0, -184.0])
POSTERIOR_RIB = (-66.0, 252.2, -209.0)

pytestmark = pytest.mark.skipif(not SERIES.is_dir(), reason=f"real CT not found at {SERIES}")


@pytest.fixture(scope="module")
def real() -> tuple[CTVolume, Anatomy]:
    volume = load_volume([pydicom.dcmread(p) for p in sorted(SERIES.glob("*.dcm"))])
    return volume, segment_anatomy(volume)


def test_slices_sorted_along_z_although_instance_numbers_run_the_other_way(real):
    volume, _ = real
    z = [volume.geometry.kji_to_lps((k, 0, 0))[2] for k in range(volume.geometry.shape[0])]
    assert np.all(np.diff(z) > 0)
    assert volume.geometry.spacing_mm == pytest.approx((0.841796875, 0.841796875, 5.0))


def test_body_mask_leaves_out_the_table(real):
    volume, anatomy = real
    k = int(round(volume.geometry.lps_to_kji((0.0, 0.0, -209.0))[0]))
    column = volume.hu[k, :, 256]
    body_rows = np.flatnonzero(anatomy.body[k, :, 256])
    dense_below = [r for r in range(body_rows.max() + 1, column.size) if column[r] > -400]
    assert dense_below, "the table should appear below the patient in this series"
    assert not anatomy.body[k, dense_below, 256].any()
    assert "spinal canal" in anatomy.structures_found


def test_non_contrast_series_has_no_vessel_mask_and_says_so(real):
    """Protocol "Chest C-", no ContrastBolusAgent, aorta about 50 HU: vessels cannot be told
    from soft tissue, and vertebral marrow (150-300 HU) must not pass for an opacified pool."""
    volume, anatomy = real
    assert volume.contrast_agent == ""
    assert not anatomy.contrast_enhanced and anatomy.vessel is None
    assert "large vessel" not in anatomy.distance_mm
    assert anatomy.vessel_warning == NON_CONTRAST_WARNING


def test_tumour_seed_segments_the_tumour_within_the_size_targets(real):
    volume, anatomy = real
    lesion = segment_lesion(volume, anatomy, TUMOUR_SEED, PlanningRules().segmentation)
    m = measure_lesion(lesion, volume.geometry)
    assert 50.0 <= m.length_mm <= 95.0
    assert 30.0 <= m.width_mm <= 77.0


def test_tumour_outline_stays_inside_the_annotated_boxes(real):
    volume, anatomy = real
    lesion = segment_lesion(volume, anatomy, TUMOUR_SEED, PlanningRules().segmentation)
    pts = volume.geometry.kji_to_lps(lesion.points_kji())
    voxel = np.asarray(volume.geometry.spacing_mm)
    assert np.all(pts.min(axis=0) >= BOX_MIN - voxel)
    assert np.all(pts.max(axis=0) <= BOX_MAX + voxel)


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ((-80.0, 120.0, -209.0), "air or lung"),
        ((0.0, -60.0, -209.0), "outside the patient"),
        ((-10.0, 195.0, -209.0), "bone"),
    ],
    ids=["lung", "air-outside-body", "vertebral-body"],
)
def test_seeds_off_a_lesion_are_refused_saying_what_is_there(real, seed, message):
    volume, anatomy = real
    with pytest.raises(InvalidSeed, match=message):
        segment_lesion(volume, anatomy, seed, PlanningRules().segmentation)


def _path_hu(volume: CTVolume, entry, target) -> np.ndarray:
    """HU along the path from 2 mm under the skin (the entry sits on the air boundary)."""
    e, t = np.asarray(entry), np.asarray(target)
    start = 2.0 / float(np.linalg.norm(t - e))
    pts = e + np.linspace(start, 1.0, 400)[:, None] * (t - e)
    idx = np.rint(volume.geometry.lps_to_kji(pts)).astype(int)
    return volume.hu[idx[:, 0], idx[:, 1], idx[:, 2]]


def _skin_side_ok(volume: CTVolume, anatomy: Anatomy, entry, up) -> bool:
    """The entry's outward skin normal faces up (not the table side)."""
    skin = volume.geometry.kji_to_lps(anatomy.skin_kji)
    nearest = int(np.argmin(np.linalg.norm(skin - np.asarray(entry), axis=1)))
    return float(anatomy.skin_normals_lps[nearest] @ np.asarray(up)) > 0.0


@pytest.mark.parametrize(
    ("request_", "up"),
    [
        (PlanRequest(seed_lps_mm=TUMOUR_SEED), (0.0, -1.0, 0.0)),
        (
            PlanRequest(
                manual=ManualMeasurement(POSTERIOR_RIB, length_mm=20.0, width_mm=12.0),
                patient_position="HFP",
            ),
            (0.0, 1.0, 0.0),
        ),
    ],
    ids=["tumour-supine", "posterior-rib-prone"],
)
def test_planned_paths_avoid_lung_and_enter_on_the_up_side(real, request_, up):
    volume, anatomy = real
    plan = make_plan(volume, anatomy, request_, PlanningRules())
    assert plan.trajectory.needles, plan.warnings
    for needle in plan.trajectory.needles:
        assert _skin_side_ok(volume, anatomy, needle.entry_lps_mm, up)
        hu = _path_hu(volume, needle.entry_lps_mm, needle.target_lps_mm)
        assert hu.min() > -400, "the path crosses lung or air"
        assert needle.clearance_mm["lung or air"] >= 3.36
        assert needle.needle_length_mm >= needle.depth_mm + 10.0

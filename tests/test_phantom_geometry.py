"""DICOM geometry of the phantom against its pixels, labels and truth, for every position.

The mapping from LPS to pixels is recomputed here from the written IPP/IOP/PixelSpacing
alone, the way a viewer or the planner reads a series.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from sample_series.catalogue import CASES
from sample_series.geometry import PatientPosition
from sample_series.phantom import SampleCase, build_case
from sample_series.tissues import LabelCode

EXPECTED = {  # IOP, up (away from the table) in LPS
    "HFS": ((1, 0, 0, 0, 1, 0), (0, -1, 0)),
    "HFP": ((-1, 0, 0, 0, -1, 0), (0, 1, 0)),
    "FFS": ((-1, 0, 0, 0, 1, 0), (0, -1, 0)),
    "FFP": ((1, 0, 0, 0, -1, 0), (0, 1, 0)),
    "HFDL": ((0, -1, 0, 1, 0, 0), (-1, 0, 0)),
    "HFDR": ((0, 1, 0, -1, 0, 0), (1, 0, 0)),
}


@cache
def in_position(position: str) -> SampleCase:
    spec = CASES["rib_lateral_small"]
    variant = dataclasses.replace(
        spec,
        name=f"rib_lateral_small_{position.lower()}",
        position=PatientPosition(position),
        instances_reversed=position in ("HFS", "FFP", "HFDR"),
    )
    return build_case(variant)


class DicomGeometry:
    """Position-sorted slices and the LPS <-> (slice, row, column) map of a series."""

    def __init__(self, datasets) -> None:
        iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
        self.row_dir, self.col_dir = iop[:3], iop[3:]
        self.normal = np.cross(self.row_dir, self.col_dir)
        self.row_spacing, self.col_spacing = (float(v) for v in datasets[0].PixelSpacing)
        key = [
            float(np.dot(np.array(ds.ImagePositionPatient, float), self.normal)) for ds in datasets
        ]
        self.sorted = [datasets[i] for i in np.argsort(key)]
        self.ipp = np.array([ds.ImagePositionPatient for ds in self.sorted], dtype=float)

    def to_kji(self, p) -> tuple[int, int, int]:
        p = np.asarray(p, dtype=float)
        k = int(np.argmin(np.abs((p - self.ipp) @ self.normal)))
        d = p - self.ipp[k]
        return (
            k,
            int(round(d @ self.col_dir / self.row_spacing)),
            int(round(d @ self.row_dir / self.col_spacing)),
        )

    def to_lps(self, kji: np.ndarray) -> np.ndarray:
        k, j, i = kji[:, 0], kji[:, 1], kji[:, 2]
        return (
            self.ipp[k]
            + (i * self.col_spacing)[:, None] * self.row_dir
            + (j * self.row_spacing)[:, None] * self.col_dir
        )

    def hu(self, kji: tuple[int, int, int]) -> float:
        ds = self.sorted[kji[0]]
        return float(ds.pixel_array[kji[1], kji[2]]) * float(ds.RescaleSlope) + float(
            ds.RescaleIntercept
        )


@pytest.mark.parametrize("position", list(EXPECTED))
def test_orientation_and_up_side(position: str) -> None:
    case = in_position(position)
    iop, up = EXPECTED[position]
    for ds in case.datasets:
        assert tuple(float(v) for v in ds.ImageOrientationPatient) == iop
        assert ds.PatientPosition == position
    assert case.truth.up_direction_lps == up
    assert case.truth.down_direction_lps == tuple(-v + 0.0 for v in up)


@pytest.mark.parametrize("position", list(EXPECTED))
def test_seed_maps_through_dicom_to_lesion(position: str) -> None:
    case = in_position(position)
    geo = DicomGeometry(case.datasets)
    kji = geo.to_kji(case.truth.seed_lps_mm)
    assert case.labels[kji] == LabelCode.LESION
    assert geo.hu(kji) == pytest.approx(40.0, abs=40.0)
    # the phantom's own geometry agrees with the one read back from the files
    assert np.allclose(case.geometry.lps_to_kji(case.truth.seed_lps_mm), kji, atol=0.5)


@pytest.mark.parametrize("position", list(EXPECTED))
def test_table_lies_on_the_down_side(position: str) -> None:
    case = in_position(position)
    geo = DicomGeometry(case.datasets)
    table = np.argwhere(case.labels == LabelCode.TABLE)
    body = np.argwhere(case.labels == LabelCode.SOFT_TISSUE)
    assert len(table) and len(body)
    offset = geo.to_lps(table).mean(axis=0) - geo.to_lps(body).mean(axis=0)
    down = -np.asarray(EXPECTED[position][1], dtype=float)
    assert offset @ down > 0.9 * np.linalg.norm(offset[:2])
    assert table[:, 1].mean() > body[:, 1].max() - 15  # bottom of the gantry image
    # nothing of the body is on the far side of the table
    assert (geo.to_lps(body) @ down).max() < (geo.to_lps(table) @ down).max()


@pytest.mark.parametrize("position", ["HFS", "FFS", "HFDL"])
def test_pixels_match_hu_volume_and_instance_order(position: str) -> None:
    case = in_position(position)
    geo = DicomGeometry(case.datasets)
    for k, ds in enumerate(geo.sorted):
        hu = ds.pixel_array.astype(np.int32) + int(float(ds.RescaleIntercept))
        assert np.array_equal(hu, case.hu[k])
    numbers = [int(ds.InstanceNumber) for ds in case.datasets]
    assert numbers == list(range(1, len(numbers) + 1))
    first_is_lowest = case.datasets[0] is geo.sorted[0]
    assert first_is_lowest != case.spec.instances_reversed


def test_tissue_values_at_labelled_voxels() -> None:
    case = in_position("HFS")
    hu, labels = case.hu.astype(float), case.labels
    interior = np.zeros_like(labels, dtype=bool)
    interior[:, 2:-2, 2:-2] = True
    lung = (labels == LabelCode.LUNG) & interior
    assert hu[lung].mean() == pytest.approx(-850, abs=40)
    assert hu[labels == LabelCode.AIR].mean() == pytest.approx(-1000, abs=30)
    assert hu[labels == LabelCode.BONE].mean() > 200
    assert hu[labels == LabelCode.SOFT_TISSUE].mean() == pytest.approx(10, abs=60)

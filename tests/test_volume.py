import copy

import numpy as np
import pytest
from tools import make_ct_series

from planner.errors import InvalidSeries
from planner.volume import load_volume


def _series(**kw):
    return [copy.deepcopy(ds) for ds in make_ct_series(slices=6, size=16, **kw)]


def test_slices_sorted_by_position_not_by_instance_number_or_input_order():
    datasets = _series()
    shuffled = [datasets[i] for i in (3, 0, 5, 1, 4, 2)]
    v = load_volume(shuffled)
    z = [v.geometry.kji_to_lps((k, 0, 0))[2] for k in range(v.geometry.shape[0])]
    assert np.all(np.diff(z) > 0)
    # The phantom's square brightens by 1 HU per slice along +z.
    centre = v.hu[:, 8, 8]
    assert list(centre) == [40, 41, 42, 43, 44, 45]
    assert v.geometry.spacing_mm == pytest.approx((0.8, 0.8, 2.5))


def test_hu_from_modality_lut_and_padding():
    datasets = _series()
    for ds in datasets:
        ds.RescaleSlope = 2
        ds.RescaleIntercept = -2048
    v = load_volume(datasets)
    assert v.hu[0, 8, 8] == (1024 + 40) * 2 - 2048
    assert v.hu.dtype == np.int16


def test_missing_slice_rejected_with_reason():
    datasets = _series()
    del datasets[2]
    with pytest.raises(InvalidSeries, match="missing"):
        load_volume(datasets)


def test_duplicate_position_rejected():
    datasets = _series()
    datasets[1].ImagePositionPatient = datasets[0].ImagePositionPatient
    with pytest.raises(InvalidSeries, match="same position"):
        load_volume(datasets)


def test_non_ct_rejected():
    datasets = _series()
    for ds in datasets:
        ds.Modality = "MR"
    with pytest.raises(InvalidSeries, match="not CT"):
        load_volume(datasets)


def test_sheared_stack_rejected():
    datasets = _series()
    for k, ds in enumerate(datasets):
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.5 * k * 2.5, z]  # tilt
    with pytest.raises(InvalidSeries, match="tilt"):
        load_volume(datasets)


def test_mixed_orientation_rejected():
    datasets = _series()
    datasets[3].ImageOrientationPatient = [0, 1, 0, 1, 0, 0]
    with pytest.raises(InvalidSeries, match="orientations"):
        load_volume(datasets)

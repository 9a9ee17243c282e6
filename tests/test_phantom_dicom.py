"""DICOM objects of the phantom: validity, determinism and what ``write_case`` puts on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from sample_series.phantom import build_case, load_labels, load_truth, write_case

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _encoded(ds: pydicom.Dataset) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    case = build_case("rib_lateral_small")
    return case, write_case(case, tmp_path_factory.mktemp("samples"))


def test_write_case_layout_and_round_trip(written) -> None:
    case, folder = written
    assert folder.name == "rib_lateral_small"
    files = sorted((folder / "dicom").glob("*.dcm"))
    assert len(files) == len(case.datasets)
    ds = pydicom.dcmread(files[0])
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == CT_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert np.array_equal(ds.pixel_array, case.datasets[0].pixel_array)
    assert load_truth(folder) == case.truth
    labels, geometry = load_labels(folder)
    assert np.array_equal(labels, case.labels) and geometry == case.geometry
    with np.load(folder / "labels.npz") as z:
        assert np.allclose(z["affine"], case.geometry.affine)


def test_series_attributes(written) -> None:
    case, _ = written
    uids = {ds.SOPInstanceUID for ds in case.datasets}
    assert len(uids) == len(case.datasets)
    for ds in case.datasets:
        assert ds.Modality == "CT" and list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID) == (
            case.datasets[0].StudyInstanceUID,
            case.datasets[0].SeriesInstanceUID,
            case.datasets[0].FrameOfReferenceUID,
        )
        assert float(ds.RescaleIntercept) == -1024.0 and float(ds.RescaleSlope) == 1.0
        assert ds.BitsAllocated == 16 and ds.PatientPosition == "HFS"


def test_unsigned_12_bit_and_scan_circle() -> None:
    unsigned = build_case("rib_anterior_ffs").datasets[0]
    assert (unsigned.PixelRepresentation, unsigned.BitsStored, unsigned.HighBit) == (0, 12, 11)
    assert unsigned.pixel_array.dtype == np.uint16 and unsigned.pixel_array.max() <= 4095
    circled = build_case("rib_lateral_decubitus").datasets[0]
    assert circled.PixelRepresentation == 1
    assert int(circled.pixel_array[0, 0]) + int(float(circled.RescaleIntercept)) == -2048


def test_rebuild_is_identical() -> None:
    a, b = build_case("costovertebral_tilted"), build_case("costovertebral_tilted")
    assert [_encoded(x) for x in a.datasets] == [_encoded(y) for y in b.datasets]
    assert np.array_equal(a.labels, b.labels) and a.truth == b.truth


def test_dciodvfy_reports_no_errors(written) -> None:
    dciodvfy = shutil.which("dciodvfy")
    if dciodvfy is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("dciodvfy (dicom3tools) is required in CI")
        pytest.skip("dciodvfy (dicom3tools) not installed")
    _, folder = written
    files = sorted(Path(folder, "dicom").glob("*.dcm"))
    for path in (files[0], files[len(files) // 2]):
        out = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
        report = out.stdout + out.stderr
        assert "Error" not in report, report

"""Plain helpers shared by tests: external tools, free ports, tiny synthetic CT series.

Import as ``from tools import require_tool`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def require_tool(name: str) -> str:
    """Absolute path of the external program ``name``, else skip the test.

    With ``CI=true`` in the environment a missing tool fails the test instead: CI must run
    everything. The virtualenv's own ``bin`` is not searched, because pynetdicom installs
    Python apps there named like the dcmtk tools (``storescu``, ``echoscu``...).
    """
    venv_bin = Path(sys.prefix) / "bin"
    search = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", os.defpath).split(os.pathsep)
        if entry and (sys.prefix == sys.base_prefix or Path(entry).resolve() != venv_bin.resolve())
    )
    found = shutil.which(name, path=search)
    if found is not None:
        return found
    message = f"external tool {name!r} not found on PATH (install dcmtk / dicom3tools)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def dcmtk_env() -> dict[str, str]:
    """Environment for dcmtk tools: Nagle off, else ~47 ms per instance on loopback."""
    return {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_ct_series(
    slices: int = 8,
    size: int = 32,
    *,
    spacing_mm: tuple[float, float, float] = (0.8, 0.8, 2.5),
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> list[Dataset]:
    """A tiny axial CT series (HFS, explicit VR little endian, proper file meta).

    ``spacing_mm`` is (row spacing, column spacing, slice spacing). InstanceNumber runs
    opposite to z, as on many real scanners.
    """
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid()
    datasets = []
    for k in range(slices):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = "CT"
        ds.PatientName = "Phantom^Test"
        ds.PatientID = "PHANTOM-001"
        ds.StudyDate = "20240101"
        ds.SeriesNumber = 1
        ds.InstanceNumber = slices - k
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [-12.4, -12.4, -100.0 + k * spacing_mm[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing_mm[0], spacing_mm[1]]
        ds.SliceThickness = spacing_mm[2]
        hu = np.full((size, size), -1000, dtype=np.int16)  # air
        hu[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 40 + k
        set_ct_pixels(ds, hu)
        datasets.append(ds)
    return datasets


def set_ct_pixels(ds: Dataset, hu: np.ndarray) -> None:
    """Image Pixel and CT Image pixel attributes for an HU slice: signed 16 bit, intercept -1024."""
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.int16).tobytes()


def write_series(datasets: list[Dataset], folder: Path) -> list[Path]:
    """Write each dataset as ``<folder>/<n>.dcm`` (Part-10); return the paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, ds in enumerate(datasets):
        path = folder / f"{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

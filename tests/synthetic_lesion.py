"""A small synthetic CT with a lytic bone lesion, for tests of the derived objects and PACS push.

Independent of ``sample_series`` on purpose: tests of SEG/SR/push need a plannable lesion, not
a realistic patient, and must stay fast. The patient is an elliptic block of fat (HFS, axial
slices), with a soft-tissue-density lesion (a sphere, 40 HU) resting on a bone slab (400 HU)
just anterior of the centre, so the planner finds the lesion and a straight anterior path.

Import as ``from synthetic_lesion import make_lesion_ct`` (pytest puts ``tests/`` on sys.path).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from tools import set_ct_pixels

FAT_HU = -100
LESION_HU = 40
BONE_HU = 400
AIR_HU = -1000


@dataclass(frozen=True)
class LesionCT:
    datasets: list[Dataset]  # in acquisition order (InstanceNumber runs opposite to z)
    seed_lps_mm: tuple[float, float, float]
    lesion_radius_mm: float
    lesion_voxels: int  # voxels whose centre lies in the lesion sphere


def make_lesion_ct(
    *,
    slices: int = 24,
    size: int = 96,
    pixel_mm: float = 1.0,
    slice_mm: float = 2.5,
    lesion_radius_mm: float = 9.0,
) -> LesionCT:
    """The CT as Part-10-ready datasets (explicit VR little endian, file meta set)."""
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    half = (size - 1) / 2.0 * pixel_mm
    origin = (-half, -half, -0.5 * (slices - 1) * slice_mm)
    centre = (12.0, -6.0, 0.0)  # lesion centre, LPS mm: left of midline, anterior
    x = origin[0] + np.arange(size) * pixel_mm
    y = origin[1] + np.arange(size) * pixel_mm
    yy, xx = np.meshgrid(y, x, indexing="ij")
    body = (xx / 42.0) ** 2 + (yy / 36.0) ** 2 <= 1.0
    bone = body & (np.abs(xx - centre[0]) <= 16) & (yy >= centre[1] + 9) & (yy <= centre[1] + 14)
    datasets, lesion_voxels = [], 0
    for k in range(slices):
        z = origin[2] + k * slice_mm
        hu = np.full((size, size), AIR_HU, dtype=np.int16)
        hu[body] = FAT_HU
        hu[bone] = BONE_HU
        sphere = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (z - centre[2]) ** 2
        lesion = sphere <= lesion_radius_mm**2
        hu[lesion] = LESION_HU
        lesion_voxels += int(lesion.sum())
        uids = (study_uid, series_uid, frame_uid)
        datasets.append(_slice(k, slices, hu, (origin[0], origin[1], z), pixel_mm, slice_mm, uids))
    return LesionCT(datasets, centre, lesion_radius_mm, lesion_voxels)


def _slice(
    k: int,
    slices: int,
    hu: np.ndarray,
    position: tuple[float, float, float],
    pixel_mm: float,
    slice_mm: float,
    uids: tuple[str, str, str],
) -> Dataset:
    study_uid, series_uid, frame_uid = uids
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.ContentDate = "20240101"
    ds.StudyTime = ds.ContentTime = "120000"
    ds.AccessionNumber = "ACC0001"
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "ctplan tests"
    ds.ReferringPhysicianName = ""
    ds.PatientName = "Phantom^Lesion"
    ds.PatientID = "PHANTOM-LESION"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.KVP = 120
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.InstanceNumber = slices - k
    ds.AcquisitionNumber = 1
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = slice_mm
    ds.PixelSpacing = [pixel_mm, pixel_mm]
    ds.RescaleType = "HU"
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    set_ct_pixels(ds, hu)
    return ds

"""CT Image Storage datasets for a phantom volume, as a scanner would send them.

Input: stored pixel values ``[k, j, i]`` (position-sorted), the grid, the case identity.
Output: one pydicom Dataset per slice (Explicit VR Little Endian, file meta set, pixels
attached) in sending order: InstanceNumber 1, 2, ... which runs along the slice normal or
against it as configured. UIDs derive from the case name, seed and size, so a rebuild is
byte-identical.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DSfloat

from sample_series.geometry import GridGeometry

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RESCALE_INTERCEPT = -1024.0
STUDY_DATE = "20250115"
SOFTWARE = "ctplan sample_series 1.0"


@dataclass(frozen=True)
class SeriesIdentity:
    case_name: str
    seed: int
    size_tag: str  # "small" or "full"
    position: str
    body_part: str
    contrast: bool
    description: str

    def uid(self, *parts: str) -> str:
        return str(generate_uid(entropy_srcs=[self.case_name, str(self.seed), *parts]))

    @property
    def study_uid(self) -> str:
        return self.uid("study")

    @property
    def series_uid(self) -> str:
        return self.uid(self.size_tag, "series")

    @property
    def frame_of_reference_uid(self) -> str:
        return self.uid(self.size_tag, "frame-of-reference")


def _ds(v: float) -> DSfloat:
    return DSfloat(round(float(v), 6), auto_format=True)


def _series_template(
    ident: SeriesIdentity, grid: GridGeometry, pixel_representation: int
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = STUDY_DATE
    ds.StudyTime = "093000"
    ds.SeriesTime = "093200"
    ds.AccessionNumber = "PH" + hashlib.sha1(ident.study_uid.encode()).hexdigest()[:10].upper()
    ds.Modality = "CT"
    ds.Manufacturer = "ctplan"
    ds.InstitutionName = "Phantom hospital"
    ds.ReferringPhysicianName = ""
    ds.StationName = "PHANTOM-CT"
    ds.StudyDescription = "CT guided infiltration planning"
    ds.SeriesDescription = f"{ident.case_name} {ident.size_tag}"[:64]
    ds.ManufacturerModelName = "sample_series phantom"
    ds.PatientName = f"PHANTOM^{ident.case_name}"[:64]
    ds.PatientID = f"PH-{ident.case_name}"[:64]
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "synthetic phantom, no patient data"
    if ident.contrast:
        ds.ContrastBolusAgent = "IODINATED CONTRAST"
    ds.BodyPartExamined = ident.body_part
    ds.SliceThickness = _ds(grid.spacing_mm[2])
    ds.KVP = 120
    ds.SoftwareVersions = SOFTWARE
    ds.ReconstructionDiameter = _ds(grid.spacing_mm[0] * grid.shape[2])
    ds.GantryDetectorTilt = 0
    ds.RotationDirection = "CW"
    ds.XRayTubeCurrent = 200
    ds.ConvolutionKernel = "STANDARD"
    ds.PatientPosition = ident.position
    ds.StudyInstanceUID = ident.study_uid
    ds.SeriesInstanceUID = ident.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [_ds(v) for v in (*grid.row_direction, *grid.column_direction)]
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = grid.shape[1]
    ds.Columns = grid.shape[2]
    ds.PixelSpacing = [_ds(grid.spacing_mm[1]), _ds(grid.spacing_mm[0])]  # row, column spacing
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if pixel_representation else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = pixel_representation
    ds.WindowCenter = [_ds(40), _ds(-600)]
    ds.WindowWidth = [_ds(400), _ds(1500)]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG"]
    ds.RescaleIntercept = _ds(RESCALE_INTERCEPT)
    ds.RescaleSlope = _ds(1)
    ds.RescaleType = "HU"
    ds.LossyImageCompression = "00"
    return ds


def build_datasets(
    stored: npt.NDArray[np.integer],
    grid: GridGeometry,
    ident: SeriesIdentity,
    *,
    instances_reversed: bool,
) -> list[Dataset]:
    """One dataset per slice, in InstanceNumber order (the order a scanner sends them)."""
    n = grid.shape[0]
    pixel_representation = 1 if stored.dtype == np.int16 else 0
    template = _series_template(ident, grid, pixel_representation)
    origins = grid.slice_origins_lps_mm()
    order = range(n - 1, -1, -1) if instances_reversed else range(n)
    out = []
    for number, k in enumerate(order, start=1):
        ds = copy.deepcopy(template)  # no element may be shared between slices
        sop_uid = UID(ident.uid(ident.size_tag, "instance", str(k)))
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = number
        ds.ContentTime = f"0932{number // 100 % 60:02d}.{number % 100:02d}"
        ds.ImagePositionPatient = [_ds(v) for v in origins[k]]
        ds.SliceLocation = _ds(origins[k][2])
        ds.PixelData = (
            np.ascontiguousarray(stored[k])
            .astype("<i2" if pixel_representation else "<u2")
            .tobytes()
        )
        ds["PixelData"].VR = "OW"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(CT_IMAGE_STORAGE)
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        out.append(ds)
    return out

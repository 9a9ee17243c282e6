"""Stage 1: CT datasets in, HU volume on an LPS grid out.

Input: the pydicom Datasets of one CT series, in any order (pixel data loaded).
Output: :class:`CTVolume` with an int16 HU array indexed ``[slice, row, column]``, slices
sorted by position along the slice normal (never by file name or InstanceNumber), and the
:class:`~planner.geometry.VolumeGeometry` mapping it to LPS mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from planner.errors import InvalidSeries
from planner.geometry import VolumeGeometry

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
# Below anything a CT can measure in a patient: air is -1000 HU. Scanners write -2048 or
# -3024 outside the reconstruction circle; clamping keeps those from reading as "structures".
HU_FLOOR = -1024
HU_CEILING = 3071
# Gaps larger than this multiple of the median slice spacing mean missing slices.
MAX_GAP_RATIO = 1.5
ORTHOGONALITY_TOLERANCE = 1e-3

PATIENT_POSITIONS = ("HFS", "HFP", "FFS", "FFP", "HFDL", "HFDR", "FFDL", "FFDR")


@dataclass(frozen=True)
class SourceSlice:
    """One CT slice as used in the volume, in volume (position-sorted) order."""

    sop_instance_uid: str
    sop_class_uid: str


@dataclass(frozen=True)
class CTVolume:
    hu: npt.NDArray[np.int16]
    geometry: VolumeGeometry
    patient_position: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    slices: tuple[SourceSlice, ...]
    warnings: tuple[str, ...] = ()
    # ContrastBolusAgent (0018,0010) of the series; empty when the header names none.
    contrast_agent: str = ""


def _float_list(ds: Dataset, keyword: str, n: int) -> list[float]:
    value = ds.get(keyword)
    if value is None or len(value) != n:
        raise InvalidSeries(
            f"a slice has no usable {keyword}; the series cannot be placed in space"
        )
    return [float(v) for v in value]


def _hu_slice(ds: Dataset) -> npt.NDArray[np.float32]:
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for undecodable pixel data
        raise InvalidSeries(f"pixel data of a slice could not be decoded: {exc}") from exc
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    hu = pixels.astype(np.float32) * slope + intercept
    padding = ds.get("PixelPaddingValue")
    if padding is not None:
        stored = pixels == padding
        # A mis-encoded padding value (e.g. unsigned in a signed image) cannot match; skip it.
        hu[stored] = HU_FLOOR
    return hu


def load_volume(datasets: Sequence[Dataset]) -> CTVolume:
    """Build the HU volume of one CT series; raise InvalidSeries with the reason otherwise."""
    if not datasets:
        raise InvalidSeries("the series holds no images")
    warnings: list[str] = []
    first = datasets[0]
    for ds in datasets:
        if ds.get("Modality") != "CT":
            raise InvalidSeries(f"modality {ds.get('Modality')!r} is not CT")
        if ds.get("SeriesInstanceUID") != first.get("SeriesInstanceUID"):
            raise InvalidSeries("images from more than one series were given")
        if ds.get("SOPClassUID") == ENHANCED_CT_IMAGE_STORAGE:
            raise InvalidSeries("Enhanced (multi-frame) CT is not supported yet")

    orientation = np.asarray(_float_list(first, "ImageOrientationPatient", 6))
    for ds in datasets[1:]:
        other = np.asarray(_float_list(ds, "ImageOrientationPatient", 6))
        if not np.allclose(other, orientation, atol=1e-4):
            raise InvalidSeries("slices have different orientations")
    row_dir, col_dir = orientation[:3], orientation[3:]
    if abs(float(np.dot(row_dir, col_dir))) > ORTHOGONALITY_TOLERANCE:
        raise InvalidSeries("ImageOrientationPatient is not orthogonal")
    normal = np.cross(row_dir, col_dir)

    positions = np.asarray([_float_list(ds, "ImagePositionPatient", 3) for ds in datasets])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along_sorted = along[order]
    positions = positions[order]
    sorted_ds = [datasets[i] for i in order]

    if len(sorted_ds) > 1:
        steps = np.diff(along_sorted)
        if np.any(steps < 1e-3):
            raise InvalidSeries("two slices share the same position (duplicate images)")
        spacing_z = float(np.median(steps))
        if np.any(steps > MAX_GAP_RATIO * spacing_z):
            worst = float(steps.max())
            raise InvalidSeries(
                f"slices are missing: a gap of {worst:.1f} mm in a series spaced {spacing_z:.1f} mm"
            )
        if not np.allclose(steps, spacing_z, rtol=0.05, atol=0.05):
            warnings.append("slice spacing varies by more than 5 %; the median spacing is used")
        # The in-plane offset between consecutive slices must follow the normal: otherwise the
        # stack is sheared (gantry tilt) and a regular grid would misplace every voxel.
        offsets = np.diff(positions, axis=0) - np.outer(steps, normal)
        if np.any(np.linalg.norm(offsets, axis=1) > 0.05 * spacing_z + 0.01):
            raise InvalidSeries(
                "the slice stack is sheared (gantry tilt); tilted series are not supported yet"
            )
    else:
        spacing_z = float(first.get("SliceThickness", 1.0) or 1.0)
        warnings.append("single-slice series: the slice thickness is used as spacing")

    rows, cols = int(first.Rows), int(first.Columns)
    for ds in sorted_ds:
        if int(ds.Rows) != rows or int(ds.Columns) != cols:
            raise InvalidSeries("slices have different matrix sizes")
    pixel_spacing = _float_list(first, "PixelSpacing", 2)
    # PixelSpacing is (between rows, between columns) = (y, x) in index order.
    spacing = (pixel_spacing[1], pixel_spacing[0], spacing_z)

    hu = np.empty((len(sorted_ds), rows, cols), dtype=np.int16)
    for k, ds in enumerate(sorted_ds):
        hu[k] = np.clip(_hu_slice(ds), HU_FLOOR, HU_CEILING)
    hu.flags.writeable = False

    direction = (
        (float(row_dir[0]), float(col_dir[0]), float(normal[0])),
        (float(row_dir[1]), float(col_dir[1]), float(normal[1])),
        (float(row_dir[2]), float(col_dir[2]), float(normal[2])),
    )
    geometry = VolumeGeometry(
        origin_lps_mm=(float(positions[0][0]), float(positions[0][1]), float(positions[0][2])),
        spacing_mm=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        direction=direction,
        shape=(len(sorted_ds), rows, cols),
    )
    position = str(first.get("PatientPosition", "") or "")
    if position not in PATIENT_POSITIONS:
        warnings.append(f"PatientPosition {position!r} not recognised; supine (HFS) assumed")
        position = "HFS"
    return CTVolume(
        hu=hu,
        geometry=geometry,
        patient_position=position,
        study_uid=str(first.StudyInstanceUID),
        series_uid=str(first.SeriesInstanceUID),
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "")),
        slices=tuple(SourceSlice(str(ds.SOPInstanceUID), str(ds.SOPClassUID)) for ds in sorted_ds),
        warnings=tuple(warnings),
        contrast_agent=str(first.get("ContrastBolusAgent", "") or "").strip(),
    )

"""Derived object: the segmented lesion as a DICOM Segmentation (SEG) on the CT's grid.

Input: the planning CT's datasets in volume order (position-sorted, as
:attr:`planner.volume.CTVolume.slices`), the plan's :class:`~planner.lesion.LesionMask`
(numpy ``[slice, row, column]`` with its offset on that grid) and the plan's identity.
Output: one BINARY Segmentation dataset (no I/O), built with highdicom, with one segment
"lesion" and one frame per CT slice the lesion touches, each frame referencing its CT slice;
in its own series of the CT's study, on the CT's frame of reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_node.derived import MANUFACTURER, PlanIdentity, plan_series_uid
from planner.lesion import LesionMask

SEG_SERIES_NUMBER = 9903
SEG_SERIES_DESCRIPTION = "CTPLAN suggested lesion outline - verify before use"
LESION_SEGMENT_NUMBER = 1
LESION_SEGMENT_LABEL = "lesion"
MORPHOLOGICALLY_ABNORMAL_STRUCTURE = Code("49755003", "SCT", "Morphologically Abnormal Structure")
NEOPLASM = Code("108369006", "SCT", "Neoplasm")
BONE = Code("272673000", "SCT", "Bone")
MODEL_NAME = "ctplan lesion segmentation"
# CID 7162: planner.lesion grows the lesion from the seed in a HU window, then cuts its necks
# to neighbouring tissue with a morphological opening.
ALGORITHM_FAMILY = Code("123104", "DCM", "Morphological Operations")
# Software only: there is no hardware serial number; the Enhanced General Equipment module
# still requires one.
DEVICE_SERIAL_NUMBER = "software"


def seg_instance_uid(plan_id: str) -> str:
    return generate_uid(entropy_srcs=["ctplan", plan_id, "seg", "1"])


def lesion_frames(
    lesion: LesionMask, shape: tuple[int, int, int]
) -> tuple[list[int], npt.NDArray[np.bool_]]:
    """Slice indices the lesion touches (volume order) and the full-size mask of each."""
    k0, j0, i0 = lesion.offset_kji
    dk, dj, di = lesion.mask.shape
    if k0 < 0 or j0 < 0 or i0 < 0 or k0 + dk > shape[0] or j0 + dj > shape[1] or i0 + di > shape[2]:
        raise ValueError(
            f"lesion box at {lesion.offset_kji} of size {lesion.mask.shape} does not fit the "
            f"volume of shape {shape}"
        )
    touched = [k for k in range(dk) if lesion.mask[k].any()]
    frames = np.zeros((len(touched), shape[1], shape[2]), dtype=bool)
    for n, k in enumerate(touched):
        frames[n, j0 : j0 + dj, i0 : i0 + di] = lesion.mask[k]
    return [k0 + k for k in touched], frames


# Patient and General Study attributes of type 2 that highdicom reads from the source image;
# legacy CTs may lack them, and an empty value is what the standard asks for when unknown.
_TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
    "StudyDate", "StudyTime", "ReferringPhysicianName",
)  # fmt: skip
_PIXEL_DATA = 0x7FE00010


def _source_header(ds: Dataset) -> Dataset:
    """The CT slice's header without pixels, missing type 2 attributes present and empty."""
    header = Dataset()
    for element in ds:
        if element.tag != _PIXEL_DATA:
            header.add(element)
    if hasattr(ds, "file_meta"):
        header.file_meta = ds.file_meta
    for keyword in _TYPE2_COPIED:
        if keyword not in header:
            setattr(header, keyword, "")
    return header


def build_lesion_seg(
    source_slices: Sequence[Dataset], lesion: LesionMask, identity: PlanIdentity
) -> Dataset:
    """BINARY SEG of the lesion; ``source_slices`` are in volume order (mask slice index)."""
    if not source_slices:
        raise ValueError("source_slices is empty: the SEG needs the planning CT's datasets")
    first = source_slices[0]
    shape = (len(source_slices), int(first.Rows), int(first.Columns))
    indices, frames = lesion_frames(lesion, shape)
    if not indices:
        raise ValueError("the lesion mask is empty: there is nothing to segment")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=MANUFACTURER,
        version=identity.software_version,
        family=ALGORITHM_FAMILY,
        parameters={
            "seed_lps_mm": " ".join(f"{v:.1f}" for v in lesion.seed_lps_mm),
            "hu_window": (
                " ".join(f"{v:.0f}" for v in lesion.hu_window)
                if lesion.hu_window is not None
                else "none: manual caliper values, lesion modelled as a ball of the width"
            ),
        },
    )
    segment = hd.seg.SegmentDescription(
        segment_number=LESION_SEGMENT_NUMBER,
        segment_label=LESION_SEGMENT_LABEL,
        segmented_property_category=MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        segmented_property_type=NEOPLASM,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=algorithm,
        tracking_uid=generate_uid(entropy_srcs=["ctplan", identity.plan_id, "lesion"]),
        tracking_id=f"lesion of plan {identity.plan_id}",
        anatomic_regions=[BONE],
    )
    with warnings.catch_warnings():
        # The person-name check complains about the CT's own patient name; not ours to fix.
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        seg = hd.seg.Segmentation(
            source_images=[_source_header(source_slices[k]) for k in indices],
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment],
            series_instance_uid=plan_series_uid(identity.plan_id, "seg"),
            series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=seg_instance_uid(identity.plan_id),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=identity.software_version,
            device_serial_number=DEVICE_SERIAL_NUMBER,
            content_label="LESION",
            content_description=SEG_SERIES_DESCRIPTION,
            transfer_syntax_uid=ExplicitVRLittleEndian,
            omit_empty_frames=False,
        )
    seg.SeriesDescription = SEG_SERIES_DESCRIPTION
    return seg

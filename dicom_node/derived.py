"""Derived DICOM objects built from a plan: the overlay Secondary Capture series.

Input: the planning CT's datasets (position-sorted, as the volume's slices), the rendered
:class:`~planner.overlay.OverlayView` list and the plan's identity.
Output: pydicom Datasets (no I/O), built with highdicom, in a new series of the CT's study.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from planner.overlay import SAFETY_LINE, OverlayView

OVERLAY_SERIES_NUMBER = 9901
OVERLAY_SERIES_DESCRIPTION = "CTPLAN suggested needle plan - verify before use"
MANUFACTURER = "ctplan"


@dataclass(frozen=True)
class PlanIdentity:
    plan_id: str
    software_version: str


def plan_series_uid(plan_id: str, kind: str) -> str:
    """Stable series UID for a plan's derived objects of one kind."""
    return generate_uid(entropy_srcs=["ctplan", plan_id, kind])


def _orientation_letter(vector: np.ndarray) -> str:
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    order = np.argsort(-np.abs(vector))
    return "".join(letters[a][int(vector[a] > 0)] for a in order if abs(vector[a]) > 0.25)


def _sc_from(
    ref: Dataset, view: OverlayView, series_uid: str, identity: PlanIdentity, number: int
) -> Dataset:
    rows_dir = np.asarray(view.row_direction_lps)
    cols_dir = np.asarray(view.column_direction_lps)
    return hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=view.rgb,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=OVERLAY_SERIES_NUMBER,
        sop_instance_uid=generate_uid(entropy_srcs=["ctplan", identity.plan_id, "sc", str(number)]),
        instance_number=number,
        manufacturer=MANUFACTURER,
        # highdicom takes one letter per axis; oblique views get their full codes below.
        patient_orientation=(
            _orientation_letter(rows_dir)[0],
            _orientation_letter(cols_dir)[0],
        ),
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )


def _copy_laterality(ref: Dataset, derived: Dataset) -> None:
    """General Series Laterality (type 2C, required for paired body parts) as the CT has it.

    With neither Laterality nor Body Part Examined on the CT nobody can tell whether the part
    is paired: an empty Laterality is then the safe choice (validators warn, not fail).
    """
    if ref.get("Laterality"):
        derived.Laterality = ref.Laterality
    elif ref.get("BodyPartExamined"):
        derived.BodyPartExamined = ref.BodyPartExamined
    else:
        derived.Laterality = ""


def build_overlay_sc(
    source_slices: Sequence[Dataset],
    views: Sequence[OverlayView],
    identity: PlanIdentity,
) -> list[Dataset]:
    """One SC image per view; ``source_slices`` are in volume order (view.slice_index)."""
    series_uid = plan_series_uid(identity.plan_id, "sc")
    out = []
    for number, view in enumerate(views, start=1):
        ref = source_slices[view.slice_index]
        with warnings.catch_warnings():
            # The person-name check complains about the CT's own patient name; not ours to fix.
            warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
            sc = _sc_from(ref, view, series_uid, identity, number)

        # highdicom writes ConversionType DI and no source references: this image is a
        # workstation rendering derived from the CT slice below.
        sc.ConversionType = "WSD"
        sc.ImageType = ["DERIVED", "SECONDARY"]
        sc.BurnedInAnnotation = "YES"
        sc.PatientOrientation = [
            _orientation_letter(np.asarray(view.row_direction_lps)),
            _orientation_letter(np.asarray(view.column_direction_lps)),
        ]
        _copy_laterality(ref, sc)
        sc.SeriesDescription = OVERLAY_SERIES_DESCRIPTION
        sc.DerivationDescription = f"{SAFETY_LINE}: {view.title}"
        sc.ImageComments = SAFETY_LINE
        sc.SoftwareVersions = identity.software_version
        source = Dataset()
        source.ReferencedSOPClassUID = ref.SOPClassUID
        source.ReferencedSOPInstanceUID = ref.SOPInstanceUID
        sc.SourceImageSequence = DicomSequence([source])
        instance = Dataset()
        instance.ReferencedSOPClassUID = ref.SOPClassUID
        instance.ReferencedSOPInstanceUID = ref.SOPInstanceUID
        series = Dataset()
        series.SeriesInstanceUID = ref.SeriesInstanceUID
        series.ReferencedInstanceSequence = DicomSequence([instance])
        sc.ReferencedSeriesSequence = DicomSequence([series])
        out.append(sc)
    return out

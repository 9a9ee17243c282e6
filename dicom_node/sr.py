"""Derived object: the plan's lesion measurements as a TID 1500 Measurement Report (SR).

Input: the lesion SEG (:func:`dicom_node.seg.build_lesion_seg`), the planning CT's datasets in
volume order, the :class:`~planner.plan.Plan` and its identity.
Output: one Comprehensive 3D SR dataset (no I/O), built with highdicom, in its own series of
the CT's study: one volumetric measurement group for the lesion, referencing the SEG segment
and the CT slices it was drawn on, with length and width (mm), caliper volume L×W²/2 and
voxel volume (mL), the suggested anaesthetic volume (mL), the steroid and the borderline flag.
The report is marked PRELIMINARY and UNVERIFIED: it is a suggestion for the radiologist.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_node.derived import MANUFACTURER, PlanIdentity, plan_series_uid
from dicom_node.seg import BONE, LESION_SEGMENT_NUMBER, MORPHOLOGICALLY_ABNORMAL_STRUCTURE, NEOPLASM
from planner.dosing import Steroid
from planner.plan import Plan

SR_SERIES_NUMBER = 9902
SR_SERIES_DESCRIPTION = "CTPLAN suggested plan measurements - verify before use"

LOCAL_SCHEME = "99CTPLAN"
LENGTH = Code("410668003", "SCT", "Length")
WIDTH = Code("103355008", "SCT", "Width")
VOLUME = Code("118565006", "SCT", "Volume")
STEROID = Code("116566001", "SCT", "Steroid")
YES, NO = Code("373066001", "SCT", "Yes"), Code("373067005", "SCT", "No")
MM = Code("mm", "UCUM", "millimeter")
ML = Code("ml", "UCUM", "milliliter")
CT_PROCEDURE = Code("25045-6", "LN", "CT unspecified body region")
SUM_OF_VOXELS = Code("126030", "DCM", "Sum of segmented voxel method for volume")
# No standard code says "L x W x W / 2" (DCM 126029 is the ellipsoid's pi/6 x L x W x H):
# the local coding scheme below names what the planner computes.
CALIPER_VOLUME_METHOD = Code("CALIPER-LW2", LOCAL_SCHEME, "Caliper volume L x W x W / 2")
ANAESTHETIC_VOLUME = Code("ANAESTHETIC-ML", LOCAL_SCHEME, "Suggested anaesthetic mixture volume")
BORDERLINE_DOSE = Code("BORDERLINE", LOCAL_SCHEME, "Volume near a dose tier boundary")
STEROID_CODES = {
    Steroid.CORTIVAZOL: Code("CORTIVAZOL", LOCAL_SCHEME, "Cortivazol"),
    Steroid.TRIAMCINOLONE: Code("TRIAMCINOLONE", LOCAL_SCHEME, "Triamcinolone"),
}


def sr_instance_uid(plan_id: str) -> str:
    return generate_uid(entropy_srcs=["ctplan", plan_id, "sr", "1"])


def _algorithm(identity: PlanIdentity) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(
        name=MANUFACTURER, version=identity.software_version, manufacturer=MANUFACTURER
    )


def _measurements(plan: Plan) -> list[hd.sr.Measurement]:
    m, d = plan.measurement, plan.dose

    def num(name: Code, value: float, unit: Code, method: Code | None = None) -> hd.sr.Measurement:
        return hd.sr.Measurement(name=name, value=round(float(value), 3), unit=unit, method=method)

    out = [
        num(LENGTH, m.length_mm, MM),
        num(WIDTH, m.width_mm, MM),
        num(VOLUME, d.caliper_volume_ml, ML, CALIPER_VOLUME_METHOD),
    ]
    if m.voxel_volume_ml is not None:  # None in manual mode: nothing was segmented
        out.append(num(VOLUME, m.voxel_volume_ml, ML, SUM_OF_VOXELS))
    out.append(num(ANAESTHETIC_VOLUME, d.anaesthetic_ml, ML))
    return out


def _lesion_group(
    seg: Dataset, source_slices: Sequence[Dataset], plan: Plan, identity: PlanIdentity
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    segment = hd.sr.ReferencedSegment(
        sop_class_uid=str(seg.SOPClassUID),
        sop_instance_uid=str(seg.SOPInstanceUID),
        segment_number=LESION_SEGMENT_NUMBER,
        source_images=[
            hd.sr.SourceImageForSegmentation(
                referenced_sop_class_uid=str(ds.SOPClassUID),
                referenced_sop_instance_uid=str(ds.SOPInstanceUID),
            )
            for ds in source_slices
        ],
    )
    d = plan.dose
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(entropy_srcs=["ctplan", identity.plan_id, "lesion"]),
            identifier=f"lesion of plan {identity.plan_id}",
        ),
        referenced_segment=segment,
        finding_type=NEOPLASM,
        finding_category=MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        finding_sites=[hd.sr.FindingSite(anatomic_location=BONE)],
        algorithm_id=_algorithm(identity),
        # The group's algorithm identification covers every measurement in it.
        measurements=_measurements(plan),
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(STEROID, STEROID_CODES[d.steroid]),
            hd.sr.QualitativeEvaluation(BORDERLINE_DOSE, YES if d.borderline else NO),
        ],
    )


def _observer(identity: PlanIdentity) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=["ctplan", "device"]),
        name=MANUFACTURER,
        manufacturer_name=MANUFACTURER,
        model_name=f"{MANUFACTURER} {identity.software_version}",
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
            observer_identifying_attributes=device,
        )
    )


def _coding_scheme() -> Dataset:
    item = Dataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "ctplan local codes"
    item.CodingSchemeResponsibleOrganization = "ctplan"
    return item


def build_measurement_sr(
    seg: Dataset, source_slices: Sequence[Dataset], plan: Plan, identity: PlanIdentity
) -> Dataset:
    """TID 1500 report of the lesion in ``seg``; ``source_slices`` are the SEG's CT slices."""
    referenced = {
        str(item.ReferencedSOPInstanceUID)
        for frame in seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.DerivationImageSequence
        for item in derivation.SourceImageSequence
    }
    sources = [ds for ds in source_slices if str(ds.SOPInstanceUID) in referenced]
    if len(sources) != len(referenced):
        raise ValueError(
            f"the SEG references {len(referenced)} CT slices, {len(sources)} of them were given"
        )
    report = hd.sr.MeasurementReport(
        observation_context=_observer(identity),
        procedure_reported=CT_PROCEDURE,
        imaging_measurements=[_lesion_group(seg, sources, plan, identity)],
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*person name.*", category=UserWarning)
        sr = hd.sr.Comprehensive3DSR(
            # The SEG first: highdicom copies the patient and study from the first dataset,
            # and the SEG carries every type 2 attribute the CT may lack.
            evidence=[seg, *sources],
            content=report,
            series_instance_uid=plan_series_uid(identity.plan_id, "sr"),
            series_number=SR_SERIES_NUMBER,
            sop_instance_uid=sr_instance_uid(identity.plan_id),
            instance_number=1,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            is_verified=False,
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
    sr.SeriesDescription = SR_SERIES_DESCRIPTION
    sr.SoftwareVersions = identity.software_version
    sr.CodingSchemeIdentificationSequence = [_coding_scheme()]
    return sr

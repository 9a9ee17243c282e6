"""SEG and SR builders on a real plan of a small synthetic CT: round trip and dciodvfy."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from synthetic_lesion import make_lesion_ct
from tools import require_tool

from dicom_node.derived import PlanIdentity, build_overlay_sc
from dicom_node.seg import SEG_SERIES_NUMBER, build_lesion_seg
from dicom_node.sr import SR_SERIES_NUMBER, build_measurement_sr
from planner.anatomy import segment_anatomy
from planner.dosing import Steroid
from planner.overlay import render_overlays
from planner.plan import Plan, PlanRequest, make_plan
from planner.rules import PlanningRules
from planner.volume import CTVolume, load_volume

IDENTITY = PlanIdentity("0123456789abcdef", "9.9.9")


@dataclass(frozen=True)
class Planned:
    ordered: list[Dataset]
    volume: CTVolume
    plan: Plan
    seg: Dataset
    sr: Dataset
    sc: list[Dataset]


@pytest.fixture(autouse=True)
def strict_pydicom():
    """Values that break their VR raise instead of being written (highdicom's own practice)."""
    settings = pydicom_config.settings
    saved = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = pydicom_config.RAISE
    settings.writing_validation_mode = pydicom_config.RAISE
    yield
    settings.reading_validation_mode, settings.writing_validation_mode = saved


@pytest.fixture(scope="module")
def planned() -> Planned:
    case = make_lesion_ct()
    volume = load_volume(case.datasets)
    plan = make_plan(
        volume, segment_anatomy(volume), PlanRequest(seed_lps_mm=case.seed_lps_mm), PlanningRules()
    )
    by_uid = {str(ds.SOPInstanceUID): ds for ds in case.datasets}
    ordered = [by_uid[s.sop_instance_uid] for s in volume.slices]
    seg = build_lesion_seg(ordered, plan.lesion, IDENTITY)
    sr = build_measurement_sr(seg, ordered, plan, IDENTITY)
    sc = build_overlay_sc(ordered, render_overlays(volume, plan), IDENTITY)
    return Planned(ordered, volume, plan, seg, sr, sc)


def _round_trip(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_seg_round_trip_gives_back_the_lesion_mask_on_the_ct_slices(planned: Planned):
    seg = hd.seg.segread(BytesIO(_round_trip(planned.seg)))
    full = planned.plan.lesion.full_mask(planned.volume.geometry.shape)
    touched = [k for k in range(full.shape[0]) if full[k].any()]
    ct_uids = [str(planned.ordered[k].SOPInstanceUID) for k in touched]

    assert seg.NumberOfFrames == len(touched)
    assert sorted(uid for _, _, uid in seg.get_source_image_uids()) == sorted(ct_uids)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=ct_uids, segment_numbers=[1]
    )
    np.testing.assert_array_equal(pixels[..., 0].astype(bool), full[touched])
    # Each frame lies where the CT slice it was drawn on lies.
    by_uid = {str(ds.SOPInstanceUID): ds for ds in planned.ordered}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        ct = by_uid[str(source.ReferencedSOPInstanceUID)]
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        assert [float(v) for v in position] == pytest.approx(
            [float(v) for v in ct.ImagePositionPatient]
        )


def test_seg_identity_codes_and_series(planned: Planned):
    seg, ct = planned.seg, planned.ordered[0]
    assert seg.StudyInstanceUID == ct.StudyInstanceUID
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert seg.SeriesInstanceUID != ct.SeriesInstanceUID
    assert seg.SeriesNumber == SEG_SERIES_NUMBER
    assert "verify" in seg.SeriesDescription
    assert seg.SegmentationType == "BINARY"
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "lesion"
    assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert segment.SegmentAlgorithmName == "ctplan"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"
    assert seg.SoftwareVersions == "9.9.9"
    # Same plan, same UIDs: re-building replaces instead of duplicating on the PACS.
    again = build_lesion_seg(planned.ordered, planned.plan.lesion, IDENTITY)
    assert again.SOPInstanceUID == seg.SOPInstanceUID


def _measurements(group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations) -> dict:
    out = {}
    for m in group.get_measurements():
        method = m.method.meaning if m.method is not None else None
        out[(m.name.meaning, method)] = (m.value, m.unit.value)
    return out


def test_sr_round_trip_gives_back_the_plan_values(planned: Planned):
    sr = hd.sr.srread(BytesIO(_round_trip(planned.sr)))
    m, d = planned.plan.measurement, planned.plan.dose
    (group,) = sr.content.get_volumetric_roi_measurement_groups()
    values = _measurements(group)
    assert values[("Length", None)] == (pytest.approx(m.length_mm, abs=1e-3), "mm")
    assert values[("Width", None)] == (pytest.approx(m.width_mm, abs=1e-3), "mm")
    caliper = values[("Volume", "Caliper volume L x W x W / 2")]
    assert caliper == (pytest.approx(d.caliper_volume_ml, abs=1e-3), "ml")
    assert caliper[0] == pytest.approx(m.length_mm * m.width_mm**2 / 2000, abs=1e-3)
    voxels = values[("Volume", "Sum of segmented voxel method for volume")]
    assert voxels == (pytest.approx(m.voxel_volume_ml, abs=1e-3), "ml")
    anaesthetic = values[("Suggested anaesthetic mixture volume", None)]
    assert anaesthetic == (d.anaesthetic_ml, "ml")

    evaluations = {e.name.meaning: e.value.meaning for e in group.get_qualitative_evaluations()}
    assert evaluations["Steroid"] == d.steroid.value.capitalize()
    assert evaluations["Volume near a dose tier boundary"] == ("Yes" if d.borderline else "No")
    assert group.finding_type.value == "108369006"
    assert group.referenced_segment.referenced_sop_instance_uid == planned.seg.SOPInstanceUID
    assert group.referenced_segment.referenced_segment_numbers == [1]


def test_sr_document_header_says_unverified_suggestion(planned: Planned):
    sr, ct = planned.sr, planned.ordered[0]
    assert sr.StudyInstanceUID == ct.StudyInstanceUID
    assert sr.SeriesInstanceUID not in (ct.SeriesInstanceUID, planned.seg.SeriesInstanceUID)
    assert sr.SeriesNumber == SR_SERIES_NUMBER
    assert "verify" in sr.SeriesDescription
    flags = (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag)
    assert flags == ("COMPLETE", "UNVERIFIED", "PRELIMINARY")
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = {
        str(item.ReferencedSOPInstanceUID)
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }
    seg = hd.seg.Segmentation.from_dataset(planned.seg, copy=True)
    seg_sources = {uid for _, _, uid in seg.get_source_image_uids()}
    assert evidence == {str(planned.seg.SOPInstanceUID)} | seg_sources
    scheme = sr.CodingSchemeIdentificationSequence[0]
    assert scheme.CodingSchemeDesignator == "99CTPLAN"
    read_back = pydicom.dcmread(BytesIO(_round_trip(sr)))
    assert set(_text_values(read_back, "111001")) == {"ctplan"}  # Algorithm Name
    assert set(_text_values(read_back, "111003")) == {"9.9.9"}  # Algorithm Version


def _text_values(item: Dataset, code_value: str) -> list[str]:
    """TEXT values of every content item named ``code_value``, anywhere in the tree."""
    found = []
    for child in item.get("ContentSequence", []):
        name = child.ConceptNameCodeSequence[0].CodeValue
        if child.ValueType == "TEXT" and name == code_value:
            found.append(str(child.TextValue))
        found += _text_values(child, code_value)
    return found


def test_steroid_follows_the_plan(planned: Planned):
    swap = {Steroid.CORTIVAZOL: Steroid.TRIAMCINOLONE, Steroid.TRIAMCINOLONE: Steroid.CORTIVAZOL}
    other = swap[planned.plan.dose.steroid]
    plan = replace(planned.plan, dose=replace(planned.plan.dose, steroid=other))
    sr = build_measurement_sr(planned.seg, planned.ordered, plan, IDENTITY)
    report = hd.sr.srread(BytesIO(_round_trip(sr)))
    (group,) = report.content.get_volumetric_roi_measurement_groups()
    steroid = [e for e in group.get_qualitative_evaluations() if e.name.meaning == "Steroid"]
    assert steroid[0].value.meaning.lower() == other.value


def test_seg_from_a_legacy_ct_without_type2_study_attributes(planned: Planned):
    legacy = []
    for ds in planned.ordered:
        copy = Dataset(ds)
        copy.file_meta = ds.file_meta
        for keyword in ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyTime"):
            delattr(copy, keyword)
        legacy.append(copy)
    seg = build_lesion_seg(legacy, planned.plan.lesion, IDENTITY)
    assert seg.PatientBirthDate == "" and seg.AccessionNumber == ""
    assert "PatientBirthDate" not in legacy[0]  # the CT's datasets are left as they were
    assert build_measurement_sr(seg, legacy, planned.plan, IDENTITY).PatientSex == ""


def test_seg_refuses_a_mask_that_does_not_fit_the_ct(planned: Planned):
    lesion = replace(planned.plan.lesion, offset_kji=(len(planned.ordered) - 1, 0, 0))
    with pytest.raises(ValueError, match="does not fit"):
        build_lesion_seg(planned.ordered, lesion, IDENTITY)


def _dciodvfy_problems(path: Path) -> tuple[list[str], list[str]]:
    dciodvfy = require_tool("dciodvfy")
    report = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
    lines = (report.stdout + report.stderr).splitlines()
    return [x for x in lines if "Error" in x], [x for x in lines if x.startswith("Warning")]


# What dciodvfy still warns about, and why it is right that way (see the README).
EXPECTED_WARNINGS = ("<99CTPLAN>",)


@pytest.mark.parametrize("kind", ["sc", "seg", "sr"])
def test_dciodvfy_finds_no_error(planned: Planned, kind: str, tmp_path: Path):
    ds = {"sc": planned.sc[0], "seg": planned.seg, "sr": planned.sr}[kind]
    path = tmp_path / f"{kind}.dcm"
    path.write_bytes(_round_trip(ds))
    errors, warnings = _dciodvfy_problems(path)
    assert errors == []
    assert [w for w in warnings if not any(e in w for e in EXPECTED_WARNINGS)] == []

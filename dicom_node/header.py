"""Header fields of one received instance, read without touching pixel data.

Input: a pydicom Dataset, possibly lazily decoded by pynetdicom (elements are parsed on first
access, so only the elements read here are decoded), and its transfer syntax UID.
Output: :class:`InstanceHeader`, the values the index keeps so that series geometry can be
reported without reopening files. Positions are patient LPS in millimetres.

Only the UIDs are required; they also become directory and file names, so they are checked
against the UID grammar (digits and dots, at most 64 characters) before any path is built.
Every other field is optional and ``None`` when absent or unreadable: judging whether a series
is usable is the planner's job, not the receiver's.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from dicom_node.errors import InvalidInstance

_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UID_MAX_LEN = 64

# (keyword, what a PACS admin calls it) for the UIDs that file an instance.
_REQUIRED_UIDS = (
    ("StudyInstanceUID", "Study Instance UID (0020,000D)"),
    ("SeriesInstanceUID", "Series Instance UID (0020,000E)"),
    ("SOPInstanceUID", "SOP Instance UID (0008,0018)"),
    ("SOPClassUID", "SOP Class UID (0008,0016)"),
)


@dataclass(frozen=True)
class InstanceHeader:
    """What the index records about one instance besides its file path and arrival time."""

    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str
    study_uid: str
    transfer_syntax: str
    modality: str | None
    rows: int | None
    columns: int | None
    pixel_spacing_mm: tuple[float, float] | None  # (row spacing, column spacing)
    image_position_mm: tuple[float, float, float] | None
    image_orientation: tuple[float, float, float, float, float, float] | None
    patient_position: str | None
    slice_thickness_mm: float | None
    instance_number: int | None


def is_valid_uid(value: str) -> bool:
    return len(value) <= _UID_MAX_LEN and _UID_RE.match(value) is not None


def require_uid(value: str, what: str) -> str:
    """Return ``value`` if it is a well-formed UID, else raise :class:`InvalidInstance`."""
    if not is_valid_uid(value):
        raise InvalidInstance(
            f"{what} {value[:80]!r} is not a valid DICOM UID (digits and dots, at most 64 "
            "characters); the sending system must be fixed before this object can be stored"
        )
    return value


def read_header(ds: Dataset, transfer_syntax: str) -> InstanceHeader:
    """Extract an :class:`InstanceHeader`; raise :class:`InvalidInstance` if a UID is unusable."""
    uids: dict[str, str] = {}
    for keyword, label in _REQUIRED_UIDS:
        try:
            value = str(ds.get(keyword, "") or "").strip()
        except Exception as exc:  # a lazily decoded element can fail in many ways
            raise InvalidInstance(f"{label} could not be decoded: {exc}") from exc
        if not value:
            raise InvalidInstance(
                f"the object has no {label}; it cannot be filed. Check the sending system's "
                "export settings"
            )
        uids[keyword] = require_uid(value, label)
    require_uid(transfer_syntax, "Transfer Syntax UID (0002,0010)")

    shared = _shared_functional_group(ds)
    return InstanceHeader(
        sop_instance_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        series_uid=uids["SeriesInstanceUID"],
        study_uid=uids["StudyInstanceUID"],
        transfer_syntax=transfer_syntax,
        modality=_text(ds, "Modality"),
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        pixel_spacing_mm=_pair(
            _floats(ds, "PixelSpacing", 2)
            or _floats(shared.get("pixel_measures"), "PixelSpacing", 2)
        ),
        image_position_mm=_triple(_floats(ds, "ImagePositionPatient", 3)),
        image_orientation=_sextuple(
            _floats(ds, "ImageOrientationPatient", 6)
            or _floats(shared.get("plane_orientation"), "ImageOrientationPatient", 6)
        ),
        patient_position=_text(ds, "PatientPosition"),
        slice_thickness_mm=_float(ds, "SliceThickness")
        or _float(shared.get("pixel_measures"), "SliceThickness"),
        instance_number=_int(ds, "InstanceNumber"),
    )


def slice_spacing_mm(
    positions_mm: Sequence[tuple[float, float, float]],
    orientation: Sequence[float] | None,
) -> float | None:
    """Median distance between consecutive slice positions along the slice normal.

    ``orientation`` is ImageOrientationPatient (row cosines then column cosines); the normal is
    their cross product. ``None`` when fewer than two positions or no usable orientation.
    """
    if len(positions_mm) < 2 or orientation is None or len(orientation) != 6:
        return None
    r = orientation[:3]
    c = orientation[3:]
    normal = (
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    )
    norm = sum(v * v for v in normal) ** 0.5
    if norm < 1e-6:
        return None
    along = sorted(sum(p[i] * normal[i] for i in range(3)) / norm for p in positions_mm)
    return float(statistics.median(b - a for a, b in zip(along, along[1:], strict=False)))


def _shared_functional_group(ds: Dataset) -> dict[str, Dataset]:
    """Pixel Measures and Plane Orientation items of an enhanced (multi-frame) object."""
    found: dict[str, Dataset] = {}
    try:
        if "SharedFunctionalGroupsSequence" not in ds:
            return found
        item = ds.SharedFunctionalGroupsSequence[0]
        for key, keyword in (
            ("pixel_measures", "PixelMeasuresSequence"),
            ("plane_orientation", "PlaneOrientationSequence"),
        ):
            if keyword in item and len(item[keyword].value) > 0:
                found[key] = item[keyword].value[0]
    except Exception:
        return {}
    return found


def _value(ds: Dataset | None, keyword: str) -> Any:
    if ds is None:
        return None
    try:
        return ds.get(keyword)
    except Exception:  # malformed optional element: record nothing rather than reject
        return None


def _text(ds: Dataset | None, keyword: str) -> str | None:
    value = _value(ds, keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _int(ds: Dataset | None, keyword: str) -> int | None:
    value = _value(ds, keyword)
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _float(ds: Dataset | None, keyword: str) -> float | None:
    value = _value(ds, keyword)
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset | None, keyword: str, count: int) -> tuple[float, ...] | None:
    value = _value(ds, keyword)
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _pair(values: tuple[float, ...] | None) -> tuple[float, float] | None:
    return (values[0], values[1]) if values else None


def _triple(values: tuple[float, ...] | None) -> tuple[float, float, float] | None:
    return (values[0], values[1], values[2]) if values else None


def _sextuple(
    values: tuple[float, ...] | None,
) -> tuple[float, float, float, float, float, float] | None:
    if not values:
        return None
    return (values[0], values[1], values[2], values[3], values[4], values[5])

"""Typed, immutable records returned by :class:`dicom_node.storage.Storage`.

Times are seconds since the epoch (``time.time()``); lengths are millimetres; paths are
absolute.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class SeriesState(StrEnum):
    RECEIVING = "receiving"  # an instance arrived less than ``stable_seconds`` ago
    COMPLETE = "complete"  # nothing new for ``stable_seconds``: ready to load
    INVALID = "invalid"  # the application could not load it; see ``invalid_reason``


@dataclass(frozen=True)
class SeriesRecord:
    """One received series and the geometry read from its instances' headers.

    ``rows``, ``columns``, ``pixel_spacing_mm`` and ``patient_position`` are the most common
    values among the instances (the planner checks consistency); ``pixel_spacing_mm`` is
    (row spacing, column spacing). ``slices`` is the instance count. ``slice_spacing_mm`` is
    the median distance between image positions projected on the slice normal, ``None`` when
    fewer than two instances carry a position.
    """

    series_uid: str
    study_uid: str
    modality: str | None
    instance_count: int
    first_received: float
    last_received: float
    state: SeriesState
    invalid_reason: str | None
    rows: int | None
    columns: int | None
    slices: int
    pixel_spacing_mm: tuple[float, float] | None
    slice_spacing_mm: float | None
    patient_position: str | None


@dataclass(frozen=True)
class PlanRecord:
    plan_id: str
    series_uid: str
    plan_json: str
    saved_at: float


@dataclass(frozen=True)
class DerivedRecord:
    """A derived object (SC, SR, SEG...) built for a plan; ``ordinal`` orders them in the plan."""

    plan_id: str
    ordinal: int
    kind: str
    sop_instance_uid: str
    sop_class_uid: str
    path: Path
    saved_at: float


@dataclass(frozen=True)
class PushRecord:
    """The outcome of sending one derived object to one destination (e.g. ``AE@host:port``)."""

    plan_id: str
    sop_instance_uid: str
    destination: str
    status: str
    detail: str
    pushed_at: float

"""Series state and geometry summarised from index rows (no file is opened here).

Input: one ``series`` table row and the geometry columns of its ``instances`` rows.
Output: a :class:`~dicom_node.records.SeriesRecord`.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

from dicom_node.header import slice_spacing_mm
from dicom_node.records import SeriesRecord, SeriesState

T = TypeVar("T", bound=Hashable)

Row = sqlite3.Row


def series_state(
    last_received: float, override: str | None, stable_seconds: float, now: float
) -> SeriesState:
    if override == SeriesState.INVALID:
        return SeriesState.INVALID
    if now - last_received < stable_seconds:
        return SeriesState.RECEIVING
    return SeriesState.COMPLETE


def series_record(
    row: Row, instances: Sequence[Row], stable_seconds: float, now: float
) -> SeriesRecord:
    spacing = _most_common(
        (r["pixel_spacing_row_mm"], r["pixel_spacing_column_mm"])
        for r in instances
        if r["pixel_spacing_row_mm"] is not None and r["pixel_spacing_column_mm"] is not None
    )
    orientation_json = _most_common(r["orientation_json"] for r in instances)
    positions = [
        (r["position_x_mm"], r["position_y_mm"], r["position_z_mm"])
        for r in instances
        if r["position_x_mm"] is not None
    ]
    return SeriesRecord(
        series_uid=row["series_uid"],
        study_uid=row["study_uid"],
        modality=row["modality"],
        instance_count=row["instance_count"],
        first_received=row["first_received"],
        last_received=row["last_received"],
        state=series_state(row["last_received"], row["state_override"], stable_seconds, now),
        invalid_reason=row["invalid_reason"],
        rows=_most_common(r["image_rows"] for r in instances),
        columns=_most_common(r["image_columns"] for r in instances),
        slices=row["instance_count"],
        pixel_spacing_mm=spacing,
        slice_spacing_mm=slice_spacing_mm(
            positions, json.loads(orientation_json) if orientation_json else None
        ),
        patient_position=_most_common(r["patient_position"] for r in instances),
    )


def _most_common(values: Iterable[T | None]) -> T | None:
    counts = Counter(v for v in values if v is not None)
    return counts.most_common(1)[0][0] if counts else None

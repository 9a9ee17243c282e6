"""Received instances, plans and derived objects on disk, with a SQLite index.

Layout under ``root``::

    <StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm    received instances (Part-10 files)
    derived/<plan_id>/<kind>-<SOPInstanceUID>.dcm  objects built for a plan (SC, SR, SEG...)
    index.sqlite3                                  the index (WAL mode)

Every file is written atomically (temp file in the same directory, fsync, rename) and indexed
before the call returns, so an SCP that answers "success" after :meth:`Storage.store_instance`
never acknowledges an object that a restart would lose. A :class:`Storage` is safe to share
between the SCP's association threads and the HTTP server's threads: one index connection,
used under a lock (see :mod:`dicom_node._index`); file writes happen outside the lock.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import suppress
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicom_node._files import write_bytes_atomic, write_dataset_atomic
from dicom_node._index import Index
from dicom_node._series import series_record
from dicom_node.errors import (
    DerivedNotFound,
    InvalidInstance,
    PlanNotFound,
    SeriesNotFound,
    StorageError,
)
from dicom_node.header import InstanceHeader, read_header, require_uid
from dicom_node.records import DerivedRecord, PlanRecord, PushRecord, SeriesRecord

LOG = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"
DERIVED_DIR = "derived"
# Plan ids and kinds become path components: keep them to a safe alphabet.
_PLAN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KIND_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")

_GEOMETRY_COLUMNS = (
    "series_uid, image_rows, image_columns, pixel_spacing_row_mm, pixel_spacing_column_mm, "
    "position_x_mm, position_y_mm, position_z_mm, orientation_json, patient_position"
)


class Storage:
    """Files plus index for one storage root; see the module docstring for the layout."""

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self._clock = clock
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the storage folder {self.root}: {exc.strerror or exc}"
            ) from exc
        self._index = Index(self.root / INDEX_NAME)
        self._tx = self._index.transaction

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- received instances

    def instance_path(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
        return self.root / study_uid / series_uid / f"{sop_instance_uid}.dcm"

    def store_instance(self, dataset_header: Dataset, encoded: bytes | None = None) -> Path:
        """File one instance and index it; return its path.

        ``encoded`` is the complete Part-10 byte stream (as ``event.encoded_dataset()``
        returns) and is written as is; without it ``dataset_header`` is encoded with
        ``dcmwrite``. Only header elements of ``dataset_header`` are read. Raises
        :class:`InvalidInstance` when a UID is missing or malformed and
        :class:`StorageError` when the disk or the index fails.
        """
        if encoded is not None and encoded[128:132] != b"DICM":
            raise ValueError(
                "encoded must be a Part-10 stream (128-byte preamble, 'DICM', file meta); "
                "use event.encoded_dataset(include_meta=True)"
            )
        header = read_header(dataset_header, _transfer_syntax(dataset_header, encoded))
        path = self.instance_path(header.study_uid, header.series_uid, header.sop_instance_uid)
        try:
            if encoded is not None:
                write_bytes_atomic(path, encoded)
            else:
                write_dataset_atomic(path, dataset_header)
        except OSError as exc:
            raise StorageError(
                f"could not write instance {header.sop_instance_uid} to {path.parent}: "
                f"{exc.strerror or exc}; free disk space or fix the permissions of "
                f"{self.root}, then send the series again"
            ) from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidInstance(
                f"instance {header.sop_instance_uid} could not be encoded as a DICOM file: {exc}"
            ) from exc
        old_path = self._index_instance(header, path)
        if old_path is not None:
            LOG.info("instance %s received again; replaced", header.sop_instance_uid)
            if old_path != path:
                with suppress(OSError):
                    old_path.unlink()
        return path

    def _index_instance(self, h: InstanceHeader, path: Path) -> Path | None:
        """Record ``h``; return the path of the instance it replaced, if any."""
        now = self._clock()
        with self._tx(f"index instance {h.sop_instance_uid}") as db:
            old = db.execute(
                "SELECT series_uid, path FROM instances WHERE sop_instance_uid = ?",
                (h.sop_instance_uid,),
            ).fetchone()
            spacing = h.pixel_spacing_mm or (None, None)
            position = h.image_position_mm or (None, None, None)
            orientation = json.dumps(h.image_orientation) if h.image_orientation else None
            db.execute(
                "INSERT OR REPLACE INTO instances VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    h.sop_instance_uid, h.sop_class_uid, h.series_uid, h.study_uid,
                    h.transfer_syntax, self._relative(path), now, h.modality, h.rows,
                    h.columns, *spacing, *position, orientation, h.patient_position,
                    h.slice_thickness_mm, h.instance_number,
                ),
            )  # fmt: skip
            # A new instance re-opens a series the application had marked invalid: it may be
            # the slice that was missing, so the series gets another chance once stable.
            db.execute(
                "INSERT INTO series (series_uid, study_uid, modality, first_received, "
                "last_received, instance_count) VALUES (?, ?, ?, ?, ?, 0) "
                "ON CONFLICT (series_uid) DO UPDATE SET "
                "last_received = max(last_received, excluded.last_received), "
                "modality = coalesce(modality, excluded.modality), "
                "state_override = NULL, invalid_reason = NULL",
                (h.series_uid, h.study_uid, h.modality, now, now),
            )
            self._recount(db, h.series_uid)
            if old is not None and old[0] != h.series_uid:
                self._recount(db, old[0])
        return self.root / old[1] if old is not None else None

    @staticmethod
    def _recount(db: sqlite3.Connection, series_uid: str) -> None:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM instances WHERE series_uid = ?", (series_uid,)
        ).fetchone()
        if count == 0:
            db.execute("DELETE FROM series WHERE series_uid = ?", (series_uid,))
        else:
            db.execute(
                "UPDATE series SET instance_count = ? WHERE series_uid = ?", (count, series_uid)
            )

    # ----------------------------------------------------------------------------- series

    def list_series(self, stable_seconds: float, now: float | None = None) -> list[SeriesRecord]:
        """Every series, most recently active first, with its state as of ``now``."""
        now = self._now(stable_seconds, now)
        with self._tx("list series", write=False) as db:
            series_rows = db.execute(
                "SELECT * FROM series ORDER BY last_received DESC, series_uid"
            ).fetchall()
            geometry_rows = db.execute(f"SELECT {_GEOMETRY_COLUMNS} FROM instances").fetchall()
        by_series: dict[str, list[sqlite3.Row]] = {}
        for g in geometry_rows:
            by_series.setdefault(g["series_uid"], []).append(g)
        return [
            series_record(row, by_series.get(row["series_uid"], []), stable_seconds, now)
            for row in series_rows
        ]

    def get_series(
        self, series_uid: str, stable_seconds: float, now: float | None = None
    ) -> SeriesRecord:
        now = self._now(stable_seconds, now)
        with self._tx(f"read series {series_uid}", write=False) as db:
            row = db.execute("SELECT * FROM series WHERE series_uid = ?", (series_uid,)).fetchone()
            geometry_rows = db.execute(
                f"SELECT {_GEOMETRY_COLUMNS} FROM instances WHERE series_uid = ?", (series_uid,)
            ).fetchall()
        if row is None:
            raise _series_not_found(series_uid)
        return series_record(row, geometry_rows, stable_seconds, now)

    def mark_invalid(self, series_uid: str, reason: str) -> None:
        """Flag a series the application could not load; ``reason`` is shown to the user."""
        with self._tx(f"mark series {series_uid} invalid") as db:
            updated = db.execute(
                "UPDATE series SET state_override = 'invalid', invalid_reason = ? "
                "WHERE series_uid = ?",
                (reason, series_uid),
            ).rowcount
        if updated == 0:
            raise _series_not_found(series_uid)

    def series_paths(self, series_uid: str) -> list[Path]:
        """Files of a series, by InstanceNumber then UID (not by position: see the planner)."""
        with self._tx(f"list files of series {series_uid}", write=False) as db:
            rows = db.execute(
                "SELECT path FROM instances WHERE series_uid = ? "
                "ORDER BY instance_number IS NULL, instance_number, sop_instance_uid",
                (series_uid,),
            ).fetchall()
        if not rows:
            raise _series_not_found(series_uid)
        return [self.root / r["path"] for r in rows]

    def load_series(self, series_uid: str) -> list[Dataset]:
        """Read every instance of a series completely (pixel data included)."""
        datasets: list[Dataset] = []
        for path in self.series_paths(series_uid):
            try:
                datasets.append(dcmread(path))
            except (OSError, InvalidDicomError) as exc:
                raise StorageError(
                    f"instance file {path.name} of series {series_uid} cannot be read ({exc}); "
                    "send the series again from the scanner"
                ) from exc
        return datasets

    # ------------------------------------------------------------------ plans and derived

    def save_plan(self, plan_id: str, series_uid: str, plan_json: str) -> None:
        """Create or replace a plan of a received series."""
        _check_plan_id(plan_id)
        try:
            json.loads(plan_json)
        except ValueError as exc:
            raise ValueError(f"plan {plan_id}: plan_json is not valid JSON ({exc})") from exc
        with self._tx(f"save plan {plan_id}") as db:
            if db.execute("SELECT 1 FROM series WHERE series_uid = ?", (series_uid,)).fetchone():
                db.execute(
                    "INSERT INTO plans VALUES (?, ?, ?, ?) ON CONFLICT (plan_id) DO UPDATE SET "
                    "series_uid = excluded.series_uid, plan_json = excluded.plan_json, "
                    "saved_at = excluded.saved_at",
                    (plan_id, series_uid, plan_json, self._clock()),
                )
                return
        raise _series_not_found(series_uid)

    def get_plan(self, plan_id: str) -> str:
        with self._tx(f"read plan {plan_id}", write=False) as db:
            row = db.execute("SELECT plan_json FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        if row is None:
            raise PlanNotFound(f"no plan with id {plan_id!r}")
        return str(row["plan_json"])

    def list_plans(self, series_uid: str | None = None) -> list[PlanRecord]:
        """Plans, oldest first; only those of ``series_uid`` when given."""
        query = "SELECT * FROM plans"
        args: tuple[str, ...] = ()
        if series_uid is not None:
            query, args = query + " WHERE series_uid = ?", (series_uid,)
        with self._tx("list plans", write=False) as db:
            rows = db.execute(query + " ORDER BY saved_at, plan_id", args).fetchall()
        return [
            PlanRecord(r["plan_id"], r["series_uid"], r["plan_json"], r["saved_at"]) for r in rows
        ]

    def save_derived(self, plan_id: str, kind: str, dataset: Dataset) -> Path:
        """File a derived object of a plan; re-saving the same SOP Instance replaces it.

        The plan need not be saved yet: its JSON usually lists the derived objects' UIDs.
        """
        _check_plan_id(plan_id)
        if not _KIND_RE.match(kind):
            raise ValueError(f"derived kind {kind!r} must be a short lowercase word, e.g. 'sc'")
        sop_uid = require_uid(str(dataset.get("SOPInstanceUID", "")), "SOP Instance UID")
        sop_class = require_uid(str(dataset.get("SOPClassUID", "")), "SOP Class UID")
        path = self.root / DERIVED_DIR / plan_id / f"{kind}-{sop_uid}.dcm"
        try:
            write_dataset_atomic(path, dataset)
        except OSError as exc:
            raise StorageError(
                f"could not write the {kind.upper()} object of plan {plan_id} to "
                f"{path.parent}: {exc.strerror or exc}; free disk space or fix permissions"
            ) from exc
        with self._tx(f"index derived object {sop_uid}") as db:
            old = db.execute(
                "SELECT ordinal, path FROM derived WHERE sop_instance_uid = ? AND plan_id = ?",
                (sop_uid, plan_id),
            ).fetchone()
            if old is not None:
                ordinal = old["ordinal"]
            else:
                (ordinal,) = db.execute(
                    "SELECT coalesce(max(ordinal) + 1, 0) FROM derived WHERE plan_id = ?",
                    (plan_id,),
                ).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO derived VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sop_uid, plan_id, ordinal, kind, sop_class, self._relative(path), self._clock()),
            )
        if old is not None and self.root / old["path"] != path:
            with suppress(OSError):
                (self.root / old["path"]).unlink()
        return path

    def list_derived(self, plan_id: str) -> list[DerivedRecord]:
        """Derived objects of a plan in the order they were first saved (empty if none)."""
        with self._tx(f"list derived objects of plan {plan_id}", write=False) as db:
            rows = db.execute(
                "SELECT * FROM derived WHERE plan_id = ? ORDER BY ordinal", (plan_id,)
            ).fetchall()
        return [
            DerivedRecord(
                plan_id=r["plan_id"],
                ordinal=r["ordinal"],
                kind=r["kind"],
                sop_instance_uid=r["sop_instance_uid"],
                sop_class_uid=r["sop_class_uid"],
                path=self.root / r["path"],
                saved_at=r["saved_at"],
            )
            for r in rows
        ]

    def derived_path(self, plan_id: str, kind: str, index: int = 0) -> Path:
        """Path of the ``index``-th object of ``kind`` in the plan; negative counts from the end."""
        records = [r for r in self.list_derived(plan_id) if r.kind == kind]
        try:
            return records[index].path
        except IndexError:
            raise DerivedNotFound(
                f"plan {plan_id} has {len(records)} {kind.upper()} object(s), none at index {index}"
            ) from None

    # ------------------------------------------------------------------------------ pushes

    def record_push(
        self, plan_id: str, sop_instance_uid: str, destination: str, status: str, detail: str
    ) -> None:
        with self._tx(f"record push of {sop_instance_uid}") as db:
            db.execute(
                "INSERT INTO pushes (plan_id, sop_instance_uid, destination, status, detail, "
                "pushed_at) VALUES (?, ?, ?, ?, ?, ?)",
                (plan_id, sop_instance_uid, destination, status, detail, self._clock()),
            )

    def list_pushes(self, plan_id: str) -> list[PushRecord]:
        """Push outcomes of a plan, oldest first (empty if none)."""
        with self._tx(f"list pushes of plan {plan_id}", write=False) as db:
            rows = db.execute(
                "SELECT * FROM pushes WHERE plan_id = ? ORDER BY push_id", (plan_id,)
            ).fetchall()
        return [
            PushRecord(
                plan_id=r["plan_id"],
                sop_instance_uid=r["sop_instance_uid"],
                destination=r["destination"],
                status=r["status"],
                detail=r["detail"],
                pushed_at=r["pushed_at"],
            )
            for r in rows
        ]

    # ---------------------------------------------------------------------------- helpers

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _now(self, stable_seconds: float, now: float | None) -> float:
        if stable_seconds < 0:
            raise ValueError(f"stable_seconds must be >= 0, got {stable_seconds}")
        return self._clock() if now is None else now


def _transfer_syntax(ds: Dataset, encoded: bytes | None) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if not ts and encoded is not None:
        try:
            ts = dcmread(BytesIO(encoded), stop_before_pixels=True).file_meta.TransferSyntaxUID
        except Exception as exc:
            raise InvalidInstance(
                f"the file meta of the received object is unreadable: {exc}"
            ) from exc
    if not ts:
        raise InvalidInstance(
            "the dataset has no Transfer Syntax UID (0002,0010) in its file meta; set "
            "dataset.file_meta.TransferSyntaxUID before storing it"
        )
    return str(ts)


def _series_not_found(series_uid: str) -> SeriesNotFound:
    return SeriesNotFound(
        f"series {series_uid} has not been received; send it from the scanner to this node "
        "and wait until it is complete"
    )


def _check_plan_id(plan_id: str) -> None:
    if not _PLAN_ID_RE.match(plan_id):
        raise ValueError(
            f"plan id {plan_id[:80]!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )

"""Planning service: stored series in, stored plan and derived objects out.

Glue only: it loads the series from storage, runs the planner's pipeline, renders the
overlays, builds the Secondary Captures, the lesion SEG and the measurement SR, stores the
lot and, when asked to (or automatically), hands them to the :class:`~dicom_node.pacs.Pusher`.
Clinical rules live in planner/.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from api.schemas import (
    DerivedObjectOut,
    OverlayOut,
    PlanCreate,
    PlanOut,
    PushOut,
    SendOut,
    plan_out,
)
from dicom_node.derived import PlanIdentity, build_overlay_sc
from dicom_node.pacs import PUSH_OK, Pusher, PushOutcome, latest_pushes
from dicom_node.scu import parse_destinations
from dicom_node.seg import build_lesion_seg
from dicom_node.sr import build_measurement_sr
from dicom_node.storage import Storage
from planner.anatomy import Anatomy, segment_anatomy
from planner.errors import InvalidSeed, InvalidSeries
from planner.manual import ManualMeasurement
from planner.overlay import render_overlays
from planner.plan import Plan, PlanRequest, make_plan
from planner.rules import PlanningRules
from planner.volume import CTVolume, load_volume

log = logging.getLogger(__name__)


class SeriesNotComplete(Exception):
    """The series is still arriving."""


class PlanningService:
    def __init__(
        self,
        storage: Storage,
        rules: PlanningRules,
        stable_seconds: float,
        cache_size: int = 2,
        *,
        pusher: Pusher | None = None,
        auto_push: bool = False,
    ) -> None:
        self.storage = storage
        self.pusher = pusher or Pusher(storage)
        self.auto_push = auto_push
        self.rules = rules
        self.stable_seconds = stable_seconds
        self._cache: OrderedDict[str, tuple[list[Dataset], CTVolume, Anatomy]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def prepare(self, series_uid: str) -> None:
        """Load and analyse a complete series now, so its first plan does not wait for it."""
        self._prepared(series_uid)

    def _prepared(self, series_uid: str) -> tuple[list[Dataset], CTVolume, Anatomy]:
        """Position-sorted datasets, HU volume and anatomy of a complete series (cached)."""
        record = self.storage.get_series(series_uid, self.stable_seconds)
        if record.state == "invalid":
            raise InvalidSeries(record.invalid_reason or "the series was found invalid")
        if record.state != "complete":
            raise SeriesNotComplete(
                f"series still receiving ({record.instance_count} images so far); "
                f"retry {self.stable_seconds:g} s after the last image"
            )
        key = f"{series_uid}:{record.instance_count}:{record.last_received}"
        with self._lock:
            # One loader per series: a plan request waits for the background preparation.
            loading = self._loading.setdefault(series_uid, threading.Lock())
        with loading:
            with self._lock:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    return self._cache[key]
            return self._load(series_uid, key)

    def _load(self, series_uid: str, key: str) -> tuple[list[Dataset], CTVolume, Anatomy]:
        datasets = self.storage.load_series(series_uid)
        try:
            volume = load_volume(datasets)
        except InvalidSeries as exc:
            self.storage.mark_invalid(series_uid, str(exc))
            raise
        for ds in datasets:
            # The HU volume holds the pixels; derived objects need the headers only.
            del ds.PixelData
        by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
        ordered = [by_uid[s.sop_instance_uid] for s in volume.slices]
        anatomy = segment_anatomy(volume)
        with self._lock:
            self._cache[key] = (ordered, volume, anatomy)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return ordered, volume, anatomy

    def create_plan(self, series_uid: str, body: PlanCreate) -> PlanOut:
        datasets, volume, anatomy = self._prepared(series_uid)
        seed: tuple[float, float, float] | None = body.seed_lps_mm
        if body.seed_voxel is not None:
            i, j, k = body.seed_voxel
            if not volume.geometry.contains_kji((k, j, i)):
                raise InvalidSeed(
                    f"seed voxel {body.seed_voxel} is outside the volume "
                    f"({volume.geometry.shape[2]} columns, {volume.geometry.shape[1]} rows, "
                    f"{volume.geometry.shape[0]} slices)"
                )
            p = volume.geometry.index_to_lps(np.asarray([i, j, k], dtype=float))
            seed = (float(p[0]), float(p[1]), float(p[2]))
        manual = (
            ManualMeasurement(
                center_lps_mm=body.center_lps_mm,
                length_mm=body.length_mm,
                width_mm=body.width_mm,
                length_endpoints_lps_mm=body.length_endpoints_lps_mm,
                width_endpoints_lps_mm=body.width_endpoints_lps_mm,
            )
            if body.center_lps_mm is not None
            else None
        )
        request = PlanRequest(
            seed_lps_mm=seed,
            manual=manual,
            patient_position=body.patient_position,
            target_mode=body.target_mode,
            measurement_mode=body.measurement_mode,
            site=body.site,
            search_radius_mm=body.search_radius_mm,
            hu_window=body.hu_window,
        )
        plan = make_plan(volume, anatomy, request, self.rules)
        plan_id = uuid.uuid4().hex
        identity = PlanIdentity(plan_id, plan.software_version)
        overlays = self._save_overlays(datasets, volume, plan, identity)
        derived_warning = self._save_seg_and_sr(datasets, plan, identity)
        out = plan_out(
            plan,
            plan_id=plan_id,
            series_uid=series_uid,
            study_uid=volume.study_uid,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            overlays=overlays,
            objects=self._objects(plan_id),
        )
        if derived_warning is not None:
            out.warnings.append(derived_warning)
        self.storage.save_plan(plan_id, series_uid, out.model_dump_json())
        queued = self.auto_push and self.pusher.push_later(plan_id) is not None
        log.info(
            "plan %s for series %s: %d needle(s), %d warning(s)%s",
            plan_id,
            series_uid,
            len(out.needles),
            len(out.warnings),
            "; push to the PACS queued" if queued else "",
        )
        return out

    def _save_overlays(
        self, datasets: list[Dataset], volume: CTVolume, plan: Plan, identity: PlanIdentity
    ) -> list[OverlayOut]:
        """Render, build and store the overlay Secondary Captures."""
        plan_id = identity.plan_id
        views = render_overlays(volume, plan)
        scs = build_overlay_sc(datasets, views, identity)
        overlays = []
        for index, (view, sc) in enumerate(zip(views, scs, strict=True)):
            self.storage.save_derived(plan_id, "sc", sc)
            overlays.append(
                OverlayOut(
                    index=index,
                    title=view.title,
                    sop_instance_uid=str(sc.SOPInstanceUID),
                    url=f"/plans/{plan_id}/overlay?index={index}",
                )
            )
        return overlays

    def _save_seg_and_sr(
        self, datasets: list[Dataset], plan: Plan, identity: PlanIdentity
    ) -> str | None:
        """Build and store the lesion SEG and the measurement SR; a plan warning if they failed."""
        try:
            seg = build_lesion_seg(datasets, plan.lesion, identity)
            sr = build_measurement_sr(seg, datasets, plan, identity)
        except (ValueError, TypeError, AttributeError) as exc:
            # highdicom checks the CT's header strictly (e.g. it needs a Frame of Reference
            # UID); a header the SEG cannot be built on must not cost the radiologist the plan.
            log.exception("plan %s: lesion SEG and SR not built", identity.plan_id)
            return (
                f"the lesion SEG and the measurement SR could not be built from this CT's "
                f"header ({exc}); the plan and its overlay are complete"
            )
        self.storage.save_derived(identity.plan_id, "seg", seg)
        self.storage.save_derived(identity.plan_id, "sr", sr)
        return None

    # ---------------------------------------------------------------- reading and sending

    def plan_json(self, plan_id: str) -> dict[str, Any]:
        """The stored plan with the latest push outcome per object and destination."""
        plan: dict[str, Any] = json.loads(self.storage.get_plan(plan_id))
        plan["pushes"] = [_push_out(o).model_dump() for o in latest_pushes(self.storage, plan_id)]
        return plan

    def objects(self, plan_id: str) -> list[DerivedObjectOut]:
        """Every derived object of a saved plan, in the order they were saved."""
        self.storage.get_plan(plan_id)  # PlanNotFound for an unknown plan, not an empty list
        return self._objects(plan_id)

    def _objects(self, plan_id: str) -> list[DerivedObjectOut]:
        counts: dict[str, int] = {}
        out = []
        for record in self.storage.list_derived(plan_id):
            index = counts[record.kind] = counts.get(record.kind, -1) + 1
            out.append(
                DerivedObjectOut(
                    kind=record.kind,
                    index=index,
                    sop_class_uid=record.sop_class_uid,
                    sop_class_name=UID(record.sop_class_uid).name,
                    sop_instance_uid=record.sop_instance_uid,
                    url=_object_url(plan_id, record.kind, index),
                )
            )
        return out

    def send(self, plan_id: str, destinations: list[str] | None = None) -> SendOut:
        """Push every derived object now; ``destinations`` (AE@host:port) default to the PACS."""
        parsed = None
        if destinations is not None:
            parsed = [d for text in destinations for d in parse_destinations(text)]
        outcomes = self.pusher.push(plan_id, parsed)
        return SendOut(
            plan_id=plan_id,
            ok=all(o.status == PUSH_OK for o in outcomes),
            pushes=[_push_out(o) for o in outcomes],
        )

    def overlay_png(self, plan_id: str, index: int) -> bytes:
        """PNG of the stored overlay Secondary Capture's pixels."""
        return _png(self.storage.derived_path(plan_id, "sc", index))


def _object_url(plan_id: str, kind: str, index: int) -> str | None:
    if kind == "sc":
        return f"/plans/{plan_id}/overlay?index={index}"
    if kind in ("seg", "sr"):
        return f"/plans/{plan_id}/{kind}" + (f"?index={index}" if index else "")
    return None


def _push_out(o: PushOutcome) -> PushOut:
    return PushOut(
        destination=o.destination,
        sop_instance_uid=o.sop_instance_uid,
        kind=o.kind,
        status="ok" if o.status == PUSH_OK else "failed",
        detail=o.detail,
        time=datetime.fromtimestamp(o.pushed_at, UTC).isoformat(timespec="milliseconds"),
    )


def _png(path: Path) -> bytes:
    ds = dcmread(path)
    pixels = ds.pixel_array
    if ds.get("SamplesPerPixel", 1) == 3:
        image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    else:
        grey = pixels.astype(np.float64)
        lo, hi = float(grey.min()), float(grey.max())
        scaled = (grey - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(grey)
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":
            scaled = 255.0 - scaled
        image = Image.fromarray(scaled.astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()

"""Planning service: stored series in, stored plan and derived objects out.

Glue only: it loads the series from storage, runs the planner's pipeline, renders the
overlays, builds the Secondary Captures and stores the lot. Clinical rules live in planner/.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime

import numpy as np
from pydicom.dataset import Dataset

from api.schemas import OverlayOut, PlanCreate, PlanOut, plan_out
from dicom_node.derived import PlanIdentity, build_overlay_sc
from dicom_node.storage import Storage
from planner.anatomy import Anatomy, segment_anatomy
from planner.errors import InvalidSeed, InvalidSeries
from planner.overlay import render_overlays
from planner.plan import PlanRequest, make_plan
from planner.rules import PlanningRules
from planner.volume import CTVolume, load_volume

log = logging.getLogger(__name__)


class SeriesNotComplete(Exception):
    """The series is still arriving."""


class PlanningService:
    def __init__(
        self, storage: Storage, rules: PlanningRules, stable_seconds: float, cache_size: int = 2
    ) -> None:
        self.storage = storage
        self.rules = rules
        self.stable_seconds = stable_seconds
        self._cache: OrderedDict[str, tuple[list[Dataset], CTVolume, Anatomy]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

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
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        datasets = self.storage.load_series(series_uid)
        try:
            volume = load_volume(datasets)
        except InvalidSeries as exc:
            self.storage.mark_invalid(series_uid, str(exc))
            raise
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
        else:
            assert body.seed_lps_mm is not None
            seed = body.seed_lps_mm
        request = PlanRequest(
            seed_lps_mm=seed,
            patient_position=body.patient_position,
            target_mode=body.target_mode,
            site=body.site,
            search_radius_mm=body.search_radius_mm,
            hu_window=body.hu_window,
        )
        plan = make_plan(volume, anatomy, request, self.rules)
        plan_id = uuid.uuid4().hex
        views = render_overlays(volume, plan)
        scs = build_overlay_sc(datasets, views, PlanIdentity(plan_id, plan.software_version))
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
        out = plan_out(
            plan,
            plan_id=plan_id,
            series_uid=series_uid,
            study_uid=volume.study_uid,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            overlays=overlays,
        )
        self.storage.save_plan(plan_id, series_uid, out.model_dump_json())
        log.info(
            "plan %s for series %s: %d needle(s), %d warning(s)",
            plan_id,
            series_uid,
            len(out.needles),
            len(out.warnings),
        )
        return out

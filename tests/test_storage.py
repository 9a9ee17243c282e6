"""Storage: files, index, series state and geometry, plans, derived objects, pushes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pydicom.config
import pytest
from pydicom import dcmread, dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from tools import make_ct_series

from dicom_node.errors import (
    DerivedNotFound,
    InvalidInstance,
    NotFound,
    PlanNotFound,
    SeriesNotFound,
    StorageError,
)
from dicom_node.records import SeriesState
from dicom_node.storage import Storage


@pytest.fixture(autouse=True)
def strict_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydicom.config.settings, "reading_validation_mode", pydicom.config.RAISE)
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode", pydicom.config.RAISE)


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(tmp_path: Path, clock: FakeClock) -> Iterator[Storage]:
    with Storage(tmp_path / "store", clock=clock) as s:
        yield s


def encoded(ds: Dataset) -> bytes:
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_store_instance_writes_part10_file_at_uid_path(storage: Storage) -> None:
    ds = make_ct_series(1)[0]

    path = storage.store_instance(ds, encoded(ds))

    assert path == (
        storage.root / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    )
    back = dcmread(path)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.SOPInstanceUID == ds.SOPInstanceUID
    assert back.PixelData == ds.PixelData
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_store_instance_without_encoded_bytes_uses_dcmwrite(storage: Storage) -> None:
    ds = make_ct_series(1)[0]

    path = storage.store_instance(ds)

    assert dcmread(path).pixel_array.shape == (32, 32)
    assert storage.series_paths(ds.SeriesInstanceUID) == [path]


def test_series_geometry_and_state(storage: Storage, clock: FakeClock) -> None:
    series = make_ct_series(8, spacing_mm=(0.7, 0.8, 2.5))
    for ds in series:
        storage.store_instance(ds, encoded(ds))
        clock.now += 0.1
    last = clock.now - 0.1

    receiving = storage.get_series(series[0].SeriesInstanceUID, 0.5, now=last + 0.4)
    complete = storage.get_series(series[0].SeriesInstanceUID, 0.5, now=last + 0.5)

    assert receiving.state == SeriesState.RECEIVING == "receiving"
    assert complete.state == "complete"
    assert complete.instance_count == complete.slices == 8
    assert (complete.rows, complete.columns) == (32, 32)
    assert complete.pixel_spacing_mm == (0.7, 0.8)
    assert complete.slice_spacing_mm == pytest.approx(2.5)
    assert complete.patient_position == "HFS"
    assert complete.modality == "CT"
    assert complete.study_uid == series[0].StudyInstanceUID
    assert complete.first_received == pytest.approx(1_000_000.0)
    assert complete.last_received == pytest.approx(last)
    assert storage.list_series(0.5, now=last + 0.5) == [complete]


def test_single_slice_has_no_slice_spacing(storage: Storage) -> None:
    ds = make_ct_series(1)[0]
    storage.store_instance(ds)
    assert storage.get_series(ds.SeriesInstanceUID, 0.5).slice_spacing_mm is None


def test_resent_instance_replaces_and_does_not_double_count(
    storage: Storage, clock: FakeClock
) -> None:
    series = make_ct_series(3)
    for ds in series:
        storage.store_instance(ds, encoded(ds))
    clock.now += 10
    again = series[1]
    again.RescaleIntercept = -1000  # a corrected re-send

    storage.store_instance(again, encoded(again))

    record = storage.get_series(again.SeriesInstanceUID, 0.5)
    assert record.instance_count == 3
    assert record.last_received == clock.now
    assert record.first_received == clock.now - 10
    assert len(storage.series_paths(again.SeriesInstanceUID)) == 3
    stored = dcmread(storage.series_paths(again.SeriesInstanceUID)[1])
    assert stored.SOPInstanceUID == again.SOPInstanceUID  # ordered by InstanceNumber
    assert stored.RescaleIntercept == -1000


def test_list_series_newest_first(storage: Storage, clock: FakeClock) -> None:
    old, new = make_ct_series(2), make_ct_series(2)
    for ds in old:
        storage.store_instance(ds)
    clock.now += 60
    for ds in new:
        storage.store_instance(ds)

    listed = storage.list_series(stable_seconds=30)

    assert [r.series_uid for r in listed] == [new[0].SeriesInstanceUID, old[0].SeriesInstanceUID]
    assert [r.state for r in listed] == ["receiving", "complete"]


def test_mark_invalid_until_a_new_instance_arrives(storage: Storage, clock: FakeClock) -> None:
    series = make_ct_series(3)
    for ds in series[:2]:
        storage.store_instance(ds)
    uid = series[0].SeriesInstanceUID

    storage.mark_invalid(uid, "slice 3 of 3 missing")
    marked = storage.get_series(uid, 0.5, now=clock.now + 100)
    clock.now += 1
    storage.store_instance(series[2])
    reopened = storage.get_series(uid, 0.5, now=clock.now + 1)

    assert (marked.state, marked.invalid_reason) == ("invalid", "slice 3 of 3 missing")
    assert (reopened.state, reopened.invalid_reason, reopened.slices) == ("complete", None, 3)


def test_unknown_series_raises_series_not_found(storage: Storage) -> None:
    with pytest.raises(SeriesNotFound, match="has not been received"):
        storage.get_series("1.2.3", 0.5)
    with pytest.raises(SeriesNotFound):
        storage.series_paths("1.2.3")
    with pytest.raises(NotFound):
        storage.mark_invalid("1.2.3", "x")


def test_load_series_reads_pixels(storage: Storage) -> None:
    series = make_ct_series(4)
    for ds in series:
        storage.store_instance(ds, encoded(ds))

    loaded = storage.load_series(series[0].SeriesInstanceUID)

    assert sorted(d.SOPInstanceUID for d in loaded) == sorted(d.SOPInstanceUID for d in series)
    assert all(d.pixel_array.shape == (32, 32) for d in loaded)


def test_load_series_names_the_missing_file(storage: Storage) -> None:
    ds = make_ct_series(1)[0]
    storage.store_instance(ds).unlink()
    with pytest.raises(StorageError, match="send the series again"):
        storage.load_series(ds.SeriesInstanceUID)


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_missing_uid_is_invalid_instance(storage: Storage, keyword: str) -> None:
    ds = make_ct_series(1)[0]
    delattr(ds, keyword)
    with pytest.raises(InvalidInstance, match="cannot be filed"):
        storage.store_instance(ds)
    assert storage.list_series(0.5) == []


def test_uid_that_would_escape_the_root_is_refused(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for mode in ("reading_validation_mode", "writing_validation_mode"):
        monkeypatch.setattr(pydicom.config.settings, mode, pydicom.config.IGNORE)
    ds = make_ct_series(1)[0]
    ds.SeriesInstanceUID = "../../etc"
    with pytest.raises(InvalidInstance, match="not a valid DICOM UID"):
        storage.store_instance(ds)
    assert not (storage.root.parent / "etc").exists()


def test_disk_failure_is_storage_error(storage: Storage) -> None:
    ds = make_ct_series(1)[0]
    (storage.root / ds.StudyInstanceUID).write_text("a file where a folder belongs")
    with pytest.raises(StorageError, match="could not write instance"):
        storage.store_instance(ds)


def test_index_survives_reopen(tmp_path: Path) -> None:
    series = make_ct_series(2)
    with Storage(tmp_path) as first:
        for ds in series:
            first.store_instance(ds)
    with Storage(tmp_path) as second:
        assert second.get_series(series[0].SeriesInstanceUID, 0.0).instance_count == 2
        mode = second._index._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_concurrent_writers_and_readers(storage: Storage) -> None:
    all_series = [make_ct_series(10) for _ in range(4)]
    errors: list[BaseException] = []

    def write(series: list[Dataset]) -> None:
        try:
            for ds in series:
                storage.store_instance(ds, encoded(ds))
                storage.list_series(0.5)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in all_series]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert sorted(r.instance_count for r in storage.list_series(0.5)) == [10, 10, 10, 10]


# ---------------------------------------------------------------- plans, derived, pushes


def secondary_capture() -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = uid
    ds.Modality = "OT"
    return ds


@pytest.fixture
def planned(storage: Storage) -> str:
    ds = make_ct_series(1)[0]
    storage.store_instance(ds)
    storage.save_plan("plan-1", ds.SeriesInstanceUID, json.dumps({"seed_lps_mm": [1, 2, 3]}))
    return str(ds.SeriesInstanceUID)


def test_plan_round_trip(storage: Storage, planned: str, clock: FakeClock) -> None:
    clock.now += 5
    storage.save_plan("plan-2", planned, '{"v": 2}')
    clock.now += 5
    storage.save_plan("plan-1", planned, '{"v": 3}')  # replaced

    assert json.loads(storage.get_plan("plan-1")) == {"v": 3}
    assert [p.plan_id for p in storage.list_plans()] == ["plan-2", "plan-1"]
    assert [p.plan_id for p in storage.list_plans(series_uid=planned)] == ["plan-2", "plan-1"]
    assert storage.list_plans(series_uid="1.2.3") == []
    assert storage.list_plans()[0].plan_json == '{"v": 2}'


def test_plan_errors(storage: Storage, planned: str) -> None:
    with pytest.raises(PlanNotFound):
        storage.get_plan("nope")
    with pytest.raises(SeriesNotFound):
        storage.save_plan("plan-x", "1.2.3", "{}")
    with pytest.raises(ValueError, match="plan id"):
        storage.save_plan("../evil", planned, "{}")
    with pytest.raises(ValueError, match="not valid JSON"):
        storage.save_plan("plan-x", planned, "{nope")


def test_derived_round_trip(storage: Storage, planned: str) -> None:
    sc1, sr, sc2 = secondary_capture(), secondary_capture(), secondary_capture()

    p1 = storage.save_derived("plan-1", "sc", sc1)
    storage.save_derived("plan-1", "sr", sr)
    p2 = storage.save_derived("plan-1", "sc", sc2)
    storage.save_derived("plan-1", "sc", sc1)  # re-saved: keeps its place
    storage.save_plan("plan-1", planned, '{"revised": true}')  # keeps its derived objects

    records = storage.list_derived("plan-1")
    assert [(r.ordinal, r.kind, r.sop_instance_uid) for r in records] == [
        (0, "sc", sc1.SOPInstanceUID),
        (1, "sr", sr.SOPInstanceUID),
        (2, "sc", sc2.SOPInstanceUID),
    ]
    assert p1 == storage.root / "derived" / "plan-1" / f"sc-{sc1.SOPInstanceUID}.dcm"
    assert storage.derived_path("plan-1", "sc") == p1
    assert storage.derived_path("plan-1", "sc", 1) == p2
    assert storage.derived_path("plan-1", "sc", -1) == p2
    assert records[0].sop_class_uid == SecondaryCaptureImageStorage
    back = dcmread(p1)
    assert back.file_meta.MediaStorageSOPInstanceUID == sc1.SOPInstanceUID
    assert back.preamble == b"\x00" * 128


def test_derived_errors(storage: Storage, planned: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        storage.save_derived("plan-1", "../x", secondary_capture())
    with pytest.raises(ValueError, match="plan id"):
        storage.save_derived("../plan", "sc", secondary_capture())
    with pytest.raises(DerivedNotFound, match="0 SEG"):
        storage.derived_path("plan-1", "seg")
    with pytest.raises(DerivedNotFound):
        storage.derived_path("no-plan", "sc")
    assert storage.list_derived("no-plan") == []


def test_derived_objects_may_be_saved_before_their_plan(storage: Storage, planned: str) -> None:
    sc = secondary_capture()
    path = storage.save_derived("plan-2", "sc", sc)  # the plan JSON will list sc's UID
    storage.save_plan("plan-2", planned, json.dumps({"overlays": [sc.SOPInstanceUID]}))
    assert storage.derived_path("plan-2", "sc") == path


def test_push_round_trip(storage: Storage, planned: str, clock: FakeClock) -> None:
    storage.record_push("plan-1", "1.2.3.4", "PACS@10.0.0.5:104", "failed", "no answer")
    clock.now += 1
    storage.record_push("plan-1", "1.2.3.4", "PACS@10.0.0.5:104", "ok", "stored")

    pushes = storage.list_pushes("plan-1")

    assert [(p.status, p.detail) for p in pushes] == [("failed", "no answer"), ("ok", "stored")]
    assert pushes[1].pushed_at - pushes[0].pushed_at == pytest.approx(1.0)
    assert pushes[0].destination == "PACS@10.0.0.5:104"
    assert storage.list_pushes("other-plan") == []


def test_enhanced_ct_geometry_comes_from_shared_functional_groups(storage: Storage) -> None:
    ds = make_ct_series(1)[0]
    for keyword in ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    measures, orientation, shared = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = [0.6, 0.7]
    measures.SliceThickness = 1.25
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence = [measures]
    shared.PlaneOrientationSequence = [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]

    storage.store_instance(ds, encoded(ds))

    record = storage.get_series(ds.SeriesInstanceUID, 0.5)
    assert record.pixel_spacing_mm == (0.6, 0.7)
    assert record.slice_spacing_mm is None

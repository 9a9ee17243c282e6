"""One replay run: build or read each case, send it, plan it, check it (in that order).

Input: a :class:`~sample_series.replay_client.ServiceClient`, the cases (folders or names to
build) or plain DICOM folders, :class:`RunOptions` and the tolerances. Output: one
:class:`~sample_series.replay_report.CaseResult` per case or series, and whether the service
went away during the run. Progress goes to stderr; the table is the caller's.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sample_series.phantom import build_case, load_labels, load_truth, write_case
from sample_series.replay_checks import Check, Stage, Tolerances, evaluate
from sample_series.replay_client import SeriesFiles, ServiceClient, ServiceUnreachable, find_series
from sample_series.replay_report import CaseResult, unreachable_result


@dataclass(frozen=True)
class CaseInput:
    name: str
    folder: Path | None  # None: build the named case first


@dataclass(frozen=True)
class RunOptions:
    timeout_s: float = 120.0  # series complete
    plan_timeout_s: float = 600.0
    full_size: bool = False  # size of the cases built from names
    build_dir: Path | None = None  # None: a temporary folder


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _failed(name: str, source: str, check: str, reason: str) -> CaseResult:
    return CaseResult(name, source, None, 0, (Check(check, Stage.INGEST, False, reason),))


def send_series(
    client: ServiceClient, name: str, source: str, series: SeriesFiles, timeout_s: float
) -> tuple[CaseResult, bool]:
    """Send one series and wait for it; (result, True when the series is complete)."""
    start = time.monotonic()
    sent = client.send(series, f"C-STORE {len(series.paths)} images")
    stored = [r for r in sent if r.ok]
    bad = [r for r in sent if not r.ok]
    detail = f"{len(stored)}/{len(sent)} images stored"
    if bad:
        detail += f"; first failure: {bad[0].detail}"
    checks = [Check("series stored", Stage.INGEST, not bad, detail)]
    if not stored:
        return CaseResult(name, source, series.series_uid, len(sent), tuple(checks)), False
    state = client.wait_complete(series.series_uid, len(stored), timeout_s)
    complete = state.state == "complete"
    detail = f"{state.state} with {state.instance_count}/{len(stored)} images, {state.detail}"
    checks.append(Check("series complete", Stage.INGEST, complete, detail))
    result = CaseResult(
        name, source, series.series_uid, len(sent), tuple(checks), state=state,
        seconds=time.monotonic() - start,
    )  # fmt: skip
    return result, complete


def replay_case(
    client: ServiceClient, folder: Path, options: RunOptions, tol: Tolerances
) -> CaseResult:
    """Send one case folder, plan it from the truth's seed and check the plan."""
    start = time.monotonic()
    name, source = folder.name, str(folder)
    try:
        truth = load_truth(folder)
        labels, geometry = load_labels(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return _failed(name, source, "case files", f"cannot read {folder}: {exc!r}")
    found = find_series(folder / "dicom", recursive=False)
    if len(found) != 1:
        reason = f"{folder / 'dicom'} holds {len(found)} series; a case folder holds one"
        return _failed(name, source, "case files", reason)
    base, complete = send_series(client, name, source, found[0], options.timeout_s)
    checks = list(base.checks)
    plan = evaluation = None
    if complete:
        answer = client.request_plan(found[0].series_uid, truth.seed_lps_mm, options.plan_timeout_s)
        _log(f"  plan: HTTP {answer.status_code} in {answer.seconds:.1f} s")
        # "no lesion at the seed" is the segmentation's failure, any other refusal the API's
        no_lesion = answer.status_code == 422 and "lesion" in answer.detail.lower()
        stage = Stage.MEASUREMENT if no_lesion else Stage.OUTPUT
        detail = f"HTTP {answer.status_code}: {answer.detail}"
        checks.append(Check("plan created", stage, answer.plan is not None, detail))
        if answer.plan is not None:
            plan = answer.plan
            evaluation = evaluate(plan, truth, labels, geometry, tol)
            checks += evaluation.checks
    return CaseResult(
        name, source, base.series_uid, base.images, tuple(checks), state=base.state,
        plan=plan, truth=truth, evaluation=evaluation, seconds=time.monotonic() - start,
    )  # fmt: skip


def run_cases(
    client: ServiceClient, items: list[CaseInput], options: RunOptions, tol: Tolerances
) -> tuple[list[CaseResult], bool]:
    """(results, True when the service went away during the run)."""
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="ctplan-replay-") as tmp:
        build_dir = options.build_dir or Path(tmp)
        for n, item in enumerate(items, start=1):
            _log(f"[{n}/{len(items)}] {item.name}")
            folder = item.folder
            try:
                if folder is None:
                    case = build_case(item.name, full_size=options.full_size)
                    folder = write_case(case, build_dir)
                    _log(f"  built {len(case.datasets)} slices in {folder}")
                results.append(replay_case(client, folder, options, tol))
            except ServiceUnreachable as exc:
                results.append(unreachable_result(item.name, str(folder or item.name), str(exc)))
                if not client.alive():
                    results += [
                        unreachable_result(i.name, str(i.folder or i.name), f"not run: {exc}")
                        for i in items[n:]
                    ]
                    return results, True
    return results, False


def run_folders(
    client: ServiceClient, folders: list[Path], options: RunOptions
) -> tuple[list[CaseResult], bool]:
    """``--no-check``: send every series found under each folder, report its state."""
    results: list[CaseResult] = []
    for folder in folders:
        found = find_series(folder, recursive=True)
        if not found:
            reason = f"no DICOM file with a Series and SOP Instance UID under {folder}"
            results.append(_failed(folder.name, str(folder), "DICOM files", reason))
            continue
        for series in found:
            name = f"{folder.name}/{series.description or series.series_uid[-12:]}"
            _log(f"{name} ({series.series_uid})")
            try:
                results.append(send_series(client, name, str(folder), series, options.timeout_s)[0])
            except ServiceUnreachable as exc:
                results.append(unreachable_result(name, str(folder), str(exc)))
                if not client.alive():
                    return results, True
    return results, False

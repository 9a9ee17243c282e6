"""``ctplan replay``: push sample cases through a running service and check every figure.

For each case folder (``ctplan samples build`` output: ``dicom/*.dcm``, ``truth.json``,
``labels.npz``) or case name (built on the fly): C-STORE the series on one association, wait
over HTTP until the series is ``complete``, ask for a plan from the truth's seed, and compare
the answer with the ground truth (:mod:`sample_series.replay_checks`). Prints a table, writes
the JSON report and JUnit XML on request. ``--no-check`` only sends folders of DICOM files and
reports the series' states. Talks to the service over DICOM and HTTP only, like any client.

Exit codes: 0 every check passed, 1 some check failed, 2 bad command line or inputs,
3 the service could not be reached.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sample_series.catalogue import CASES
from sample_series.phantom import build_case, load_labels, load_truth, write_case
from sample_series.replay_checks import Check, Stage, Tolerances, evaluate
from sample_series.replay_client import (
    SeriesFiles,
    ServiceAddress,
    ServiceClient,
    ServiceUnreachable,
    find_series,
)
from sample_series.replay_report import (
    CaseResult,
    format_table,
    unreachable_result,
    write_json,
    write_junit,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
CASE_FILES = ("truth.json", "labels.npz", "dicom")


class InputError(ValueError):
    """An input that is neither a case folder, a DICOM folder nor a case name."""


@dataclass(frozen=True)
class CaseInput:
    name: str
    folder: Path | None  # None: build the named case first


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _env_port(name: str, default: int) -> int:
    text = _env(name, str(default))
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else default


def _connect_host(bind: str) -> str:
    """The address to reach a service bound to ``bind`` (a wildcard means this machine)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)


EPILOG = """\
checks (stage: check):
  ingest:      every image stored (C-STORE), series complete within --timeout-s
  measurement: |L - truth| and |W - truth| <= max(--tol-mm, --tol-voxels x largest spacing)
  dosing:      anaesthetic tier and steroid as the truth (a truth-borderline case may give
               either tier if it names both), truth-borderline flagged, tier = rule(own volume)
  trajectory:  needles present iff the truth expects a path; per needle, walking the segment
               entry -> target through labels.npz: no bone (except within
               --bone-allowance-mm of the target), lung, spinal canal, large vessel, table or
               outside air; entry within --skin-tol-mm + half a voxel diagonal of the skin;
               skin normal at the entry within --max-up-angle-deg of the truth's up;
               needle_length_mm >= path length; target within the measurement tolerance of
               the lesion; a tilted-only case needs craniocaudal_angle_deg > 1
  output:      plan created (HTTP 201), fields present, a warning saying why when there is
               no needle, depth and craniocaudal angle agree with entry and target

exit codes: 0 all passed, 1 some check failed, 2 bad inputs, 3 service unreachable
"""


def register_replay(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``replay`` to an argparse subparsers object (the ``ctplan`` command's)."""
    host = _connect_host(_env("CTPLAN_HOST", "127.0.0.1"))
    http_port = _env_port("CTPLAN_HTTP_PORT", 8000)
    p = subparsers.add_parser(
        "replay",
        help="QA: send sample cases to a running service and check its plans against truth",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="CASE_OR_FOLDER",
        help="case folders (OUT/<case> of `ctplan samples build`, or OUT itself for every case "
        "in it) or case names (built on the fly); with --no-check, any folders of DICOM files",
    )
    p.add_argument("--all", action="store_true", help="every case of the catalogue")
    p.add_argument(
        "--full-size", action="store_true", help="build named cases at full size (512 x 512)"
    )
    p.add_argument(
        "--build-dir",
        type=Path,
        help="keep the cases built on the fly here (default: a temporary folder, removed)",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="only send the DICOM files found under each folder (any study), one association "
        "per series, and report the series' states; no plan is requested",
    )
    net = p.add_argument_group("service (defaults from the service's CTPLAN_* variables)")
    net.add_argument(
        "--host", default=host, help=f"host of the DICOM SCP (CTPLAN_HOST; default {host})"
    )
    net.add_argument(
        "--dicom-port",
        type=int,
        default=_env_port("CTPLAN_DICOM_PORT", 11112),
        help="DICOM port (CTPLAN_DICOM_PORT; default %(default)s)",
    )
    net.add_argument(
        "--ae-title",
        default=_env("CTPLAN_AE_TITLE", "CTPLAN"),
        help="called AE title of the SCP (CTPLAN_AE_TITLE; default %(default)s)",
    )
    net.add_argument(
        "--calling-ae", default="CTPLAN-REPLAY", help="this client's AE title (%(default)s)"
    )
    net.add_argument(
        "--http",
        metavar="URL",
        help=f"base URL of the HTTP API (default http://<--host>:CTPLAN_HTTP_PORT, i.e. "
        f"http://{host}:{http_port})",
    )
    net.add_argument(
        "--timeout-s",
        type=float,
        default=120.0,
        help="longest wait for a series to become complete (default %(default)s)",
    )
    net.add_argument(
        "--plan-timeout-s",
        type=float,
        default=600.0,
        help="longest wait for one plan (default %(default)s)",
    )
    t = p.add_argument_group("tolerances")
    d = Tolerances()
    t.add_argument("--tol-mm", type=float, default=d.tol_mm, help="L/W error floor in mm (%(default)s)")
    t.add_argument(
        "--tol-voxels",
        type=float,
        default=d.tol_voxels,
        help="L/W error limit in voxels of the largest spacing (%(default)s)",
    )
    t.add_argument(
        "--skin-tol-mm",
        type=float,
        default=d.skin_tol_mm,
        help="entry-to-skin limit beyond half a voxel diagonal, mm (%(default)s)",
    )
    t.add_argument(
        "--bone-allowance-mm",
        type=float,
        default=d.bone_allowance_mm,
        help="bone allowed this close to the target (the target's own bone), mm (%(default)s)",
    )
    t.add_argument(
        "--max-up-angle-deg",
        type=float,
        default=d.max_up_angle_deg,
        help="largest angle between the skin normal at the entry and up (%(default)s)",
    )
    out = p.add_argument_group("reports")
    out.add_argument("--json", type=Path, metavar="OUT.json", help="write the JSON report here")
    out.add_argument("--junit", type=Path, metavar="OUT.xml", help="write JUnit XML here")
    p.set_defaults(func=cmd_replay)
    return p


def _case_inputs(args: argparse.Namespace) -> list[CaseInput]:
    items: list[CaseInput] = []
    for text in args.inputs:
        path = Path(text)
        if path.is_dir():
            if all((path / f).exists() for f in CASE_FILES):
                items.append(CaseInput(path.name, path))
                continue
            inner = sorted(p for p in path.iterdir() if (p / "truth.json").is_file())
            if not inner:
                raise InputError(f"{path} holds no truth.json, labels.npz and dicom/ (nor cases)")
            items += [CaseInput(p.name, p) for p in inner]
        elif text in CASES:
            items.append(CaseInput(text, None))
        else:
            raise InputError(
                f"{text!r} is neither a case folder nor a case name; known: {', '.join(CASES)}"
            )
    if args.all:
        items += [CaseInput(name, None) for name in CASES]
    if not items:
        raise InputError("give case folders, case names or --all (see --help)")
    return items


def _folder_inputs(args: argparse.Namespace) -> list[Path]:
    if not args.inputs:
        raise InputError("--no-check needs one or more folders of DICOM files")
    if args.all:
        raise InputError("--no-check sends folders, not catalogue cases: drop --all")
    bad = [t for t in args.inputs if not Path(t).is_dir()]
    if bad:
        raise InputError(f"not a folder: {', '.join(bad)}")
    return [Path(t) for t in args.inputs]


def _series_result(
    client: ServiceClient, name: str, source: str, series: SeriesFiles, timeout_s: float
) -> tuple[CaseResult, bool]:
    """Send one series and wait for it; (result, True when the series is complete)."""
    start = time.monotonic()
    sent = client.send(series, f"C-STORE {len(series.paths)} images")
    stored = [r for r in sent if r.ok]
    bad = [r for r in sent if not r.ok]
    checks = [
        Check(
            "series stored",
            Stage.INGEST,
            not bad,
            f"{len(stored)}/{len(sent)} images stored"
            + (f"; first failure: {bad[0].detail}" if bad else ""),
        )
    ]
    if not stored:
        return CaseResult(name, source, series.series_uid, len(sent), tuple(checks)), False
    state = client.wait_complete(series.series_uid, len(stored), timeout_s)
    complete = state.state == "complete"
    checks.append(
        Check(
            "series complete",
            Stage.INGEST,
            complete,
            f"{state.state} with {state.instance_count} images: {state.detail}",
        )
    )
    result = CaseResult(
        name, source, series.series_uid, len(sent), tuple(checks), state=state,
        seconds=time.monotonic() - start,
    )  # fmt: skip
    return result, complete


def replay_case(
    client: ServiceClient, folder: Path, args: argparse.Namespace, tol: Tolerances
) -> CaseResult:
    """Send one case folder, plan it from the truth's seed and check the plan."""
    start = time.monotonic()
    truth = load_truth(folder)
    labels, geometry = load_labels(folder)
    found = find_series(folder / "dicom", recursive=False)
    if len(found) != 1:
        reason = f"{folder / 'dicom'} holds {len(found)} series; a case folder holds one"
        return CaseResult(folder.name, str(folder), None, 0, (Check("case files", Stage.INGEST, False, reason),))
    base, complete = _series_result(client, folder.name, str(folder), found[0], args.timeout_s)
    checks = list(base.checks)
    plan = None
    evaluation = None
    if complete:
        answer = client.request_plan(base.series_uid or "", truth.seed_lps_mm, args.plan_timeout_s)
        print(f"  plan: HTTP {answer.status_code} in {answer.seconds:.1f} s", file=sys.stderr)
        created = answer.plan is not None
        no_lesion = answer.status_code == 422 and "lesion" in answer.detail.lower()
        stage = Stage.MEASUREMENT if no_lesion else Stage.OUTPUT
        checks.append(Check("plan created", stage, created, f"HTTP {answer.status_code}: {answer.detail}"))
        if answer.plan is not None:
            plan = answer.plan
            evaluation = evaluate(plan, truth, labels, geometry, tol)
            checks += evaluation.checks
    return CaseResult(
        folder.name, str(folder), base.series_uid, base.images, tuple(checks), state=base.state,
        plan=plan, truth=truth, evaluation=evaluation, seconds=time.monotonic() - start,
    )  # fmt: skip


def _run_cases(
    client: ServiceClient, items: list[CaseInput], args: argparse.Namespace, tol: Tolerances
) -> tuple[list[CaseResult], bool]:
    """(results, True when the service went away during the run)."""
    results: list[CaseResult] = []
    with tempfile.TemporaryDirectory(prefix="ctplan-replay-") as tmp:
        build_dir = args.build_dir or Path(tmp)
        for n, item in enumerate(items, start=1):
            print(f"[{n}/{len(items)}] {item.name}", file=sys.stderr, flush=True)
            folder = item.folder
            try:
                if folder is None:
                    case = build_case(item.name, full_size=args.full_size)
                    folder = write_case(case, build_dir)
                    print(f"  built {len(case.datasets)} slices in {folder}", file=sys.stderr)
                results.append(replay_case(client, folder, args, tol))
            except ServiceUnreachable as exc:
                results.append(unreachable_result(item.name, str(folder or item.name), str(exc)))
                if not client.alive():
                    results += [
                        unreachable_result(i.name, str(i.folder or i.name), "not run: " + str(exc))
                        for i in items[n:]
                    ]
                    return results, True
    return results, False


def _run_folders(
    client: ServiceClient, folders: list[Path], args: argparse.Namespace
) -> tuple[list[CaseResult], bool]:
    results: list[CaseResult] = []
    for folder in folders:
        found = find_series(folder, recursive=True)
        if not found:
            reason = f"no DICOM file with a Series and SOP Instance UID under {folder}"
            results.append(CaseResult(folder.name, str(folder), None, 0, (Check("DICOM files", Stage.INGEST, False, reason),)))
            continue
        for series in found:
            name = f"{folder.name}/{series.description or series.series_uid[-12:]}"
            print(f"{name} ({series.series_uid})", file=sys.stderr, flush=True)
            try:
                results.append(_series_result(client, name, str(folder), series, args.timeout_s)[0])
            except ServiceUnreachable as exc:
                results.append(unreachable_result(name, str(folder), str(exc)))
                if not client.alive():
                    return results, True
    return results, False


def cmd_replay(args: argparse.Namespace) -> int:
    tol = None if args.no_check else Tolerances(
        args.tol_mm, args.tol_voxels, args.skin_tol_mm, args.bone_allowance_mm,
        args.max_up_angle_deg,
    )  # fmt: skip
    try:
        cases = _case_inputs(args) if tol is not None else []
        folders = _folder_inputs(args) if tol is None else []
    except InputError as exc:
        print(f"ctplan replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    http = args.http or f"http://{f'[{args.host}]' if ':' in args.host else args.host}:" + str(
        _env_port("CTPLAN_HTTP_PORT", 8000)
    )
    address = ServiceAddress(args.host, args.dicom_port, args.ae_title, args.calling_ae, http.rstrip("/"))
    service: dict[str, Any] = {"http": address.http_url, "dicom": address.dicom}
    client = ServiceClient(address)
    lost = False
    try:
        service["health"] = client.check_reachable()
        if tol is not None:
            results, lost = _run_cases(client, cases, args, tol)
        else:
            results, lost = _run_folders(client, folders, args)
    except ServiceUnreachable as exc:
        print(f"ctplan replay: {exc}", file=sys.stderr)
        lost = True
        names = [(c.name, str(c.folder or c.name)) for c in cases] or [(f.name, str(f)) for f in folders]
        results = [unreachable_result(n, s, str(exc)) for n, s in names]
    finally:
        client.close()
    if lost:
        code = EXIT_UNREACHABLE
    else:
        code = EXIT_OK if all(r.passed for r in results) else EXIT_FAILED
    print(format_table(results, tol))
    if args.json:
        write_json(args.json, results, service=service, tol=tol, exit_code=code)
    if args.junit:
        write_junit(args.junit, results)
    return code

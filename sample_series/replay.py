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
from pathlib import Path
from typing import Any

from sample_series.catalogue import CASES
from sample_series.replay_checks import Tolerances
from sample_series.replay_client import ServiceAddress, ServiceClient, ServiceUnreachable
from sample_series.replay_report import format_table, unreachable_result, write_json, write_junit
from sample_series.replay_run import CaseInput, RunOptions, run_cases, run_folders

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
CASE_FILES = ("truth.json", "labels.npz", "dicom")


class InputError(ValueError):
    """An input that is neither a case folder, a DICOM folder nor a case name."""


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _env_port(name: str, default: int) -> int:
    text = _env(name, str(default))
    return int(text) if text.isdigit() and 1 <= int(text) <= 65535 else default


def _connect_host(bind: str) -> str:
    """The address to reach a service bound to ``bind`` (a wildcard means this machine)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)


DESCRIPTION = """\
Replay sample cases through a running `ctplan serve` and check every figure of its plans
against the ground truth. For each case folder (as written by `ctplan samples build --out
DIR`: DIR/<case>/dicom/*.dcm, truth.json, labels.npz) or case name (built on the fly):
C-STORE the series on one association, wait until GET /series/{uid} says complete, POST a
plan from the truth's seed, compare. Prints one row per case; --json and --junit write
reports. With --no-check, any folders of DICOM files are only sent and their series' states
printed."""


def _default_http(host: str) -> str:
    bracketed = f"[{host}]" if ":" in host else host
    return f"http://{bracketed}:{_env_port('CTPLAN_HTTP_PORT', 8000)}"


EPILOG = """\
checks (stage: check):
  ingest:      every image stored (C-STORE), series complete within --timeout-s
  measurement: |L - truth| and |W - truth| <= max(--tol-mm, --tol-voxels x largest spacing);
               the measured lesion centre within that tolerance of a true lesion voxel
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
    p = subparsers.add_parser(
        "replay",
        help="QA: send sample cases to a running service and check its plans against truth",
        description=DESCRIPTION,
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
        help="base URL of the HTTP API (default http://<--host>:CTPLAN_HTTP_PORT, i.e. "
        f"{_default_http(host)})",
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
    t.add_argument(
        "--tol-mm", type=float, default=d.tol_mm, help="L/W error floor in mm (%(default)s)"
    )
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
    http = (args.http or _default_http(args.host)).rstrip("/")
    address = ServiceAddress(args.host, args.dicom_port, args.ae_title, args.calling_ae, http)
    service: dict[str, Any] = {"http": address.http_url, "dicom": address.dicom}
    options = RunOptions(args.timeout_s, args.plan_timeout_s, args.full_size, args.build_dir)
    client = ServiceClient(address)
    lost = False
    try:
        service["health"] = client.check_reachable()
        if tol is not None:
            results, lost = run_cases(client, cases, options, tol)
        else:
            results, lost = run_folders(client, folders, options)
    except ServiceUnreachable as exc:
        print(f"ctplan replay: {exc}", file=sys.stderr)
        lost = True
        names = [(c.name, str(c.folder or c.name)) for c in cases] or [
            (f.name, str(f)) for f in folders
        ]
        results = [unreachable_result(n, s, str(exc)) for n, s in names]
    finally:
        client.close()
    passed = all(r.passed for r in results)
    code = EXIT_UNREACHABLE if lost else (EXIT_OK if passed else EXIT_FAILED)
    print(format_table(results, tol))
    if args.json:
        write_json(args.json, results, service=service, tol=tol, exit_code=code)
    if args.junit:
        write_junit(args.junit, results)
    return code

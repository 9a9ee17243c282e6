"""What the replay found, for people (a table) and for CI (JSON and JUnit XML).

Input: one :class:`CaseResult` per case (or per series with ``--no-check``). Output: the
table as text, the JSON report and the JUnit XML (one testcase per case, one failure element
per failed check, the failure's ``type`` being its stage).
"""

from __future__ import annotations

import dataclasses
import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample_series.replay_checks import Check, Evaluation, Stage, Tolerances
from sample_series.replay_client import SeriesState
from sample_series.truth import GroundTruth

TRUTH_FIELDS = (
    "seed_lps_mm",
    "lesion_centre_lps_mm",
    "length_mm",
    "width_mm",
    "caliper_volume_ml",
    "anaesthetic_ml",
    "borderline",
    "alternative_anaesthetic_ml",
    "steroid",
    "spine_distance_mm",
    "patient_position",
    "up_direction_lps",
    "needle_access",
    "path_expected",
    "no_path_reason",
)


@dataclass(frozen=True)
class CaseResult:
    name: str
    source: str  # case folder, or the folder a --no-check series came from
    series_uid: str | None
    images: int
    checks: tuple[Check, ...]
    state: SeriesState | None = None
    plan: dict[str, Any] | None = None
    truth: GroundTruth | None = None
    evaluation: Evaluation | None = None
    seconds: float = 0.0

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    @property
    def passed(self) -> bool:
        return not self.failures


def unreachable_result(name: str, source: str, reason: str) -> CaseResult:
    return CaseResult(
        name, source, None, 0, (Check("service reachable", Stage.INGEST, False, reason),)
    )


# ---------------------------------------------------------------------------------- table


def _mm(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}"


def _flag(checks: dict[str, Check], name: str) -> str:
    c = checks.get(name)
    return "-" if c is None else ("ok" if c.ok else "FAIL")


def _row(r: CaseResult) -> list[str]:
    by_name = {c.name: c for c in r.checks}
    e = r.evaluation
    failing = ", ".join(c.label for c in r.failures)
    if e is None:
        return [r.name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", _verdict(r), failing]
    crossed = " ".join(
        f"n{n.index}:{'+'.join(n.path.crossed)}" for n in e.needles if n.path.crossed
    )
    skin = max((n.path.skin.distance_mm for n in e.needles), default=None)
    expected = "" if r.truth is None or r.truth.path_expected else " (exp 0)"
    return [
        r.name,
        _mm(e.length_error_mm),
        _mm(e.width_error_mm),
        _flag(by_name, "tier"),
        _flag(by_name, "steroid"),
        _flag(by_name, "borderline") if "borderline" in by_name else "n/a",
        f"{len(e.needles)}{expected}",
        crossed or "-",
        "-" if skin is None else ("inf" if math.isinf(skin) else f"{skin:.1f}"),
        _flag(by_name, "entry side"),
        _flag(by_name, "needle length"),
        _verdict(r),
        failing,
    ]


def _verdict(r: CaseResult) -> str:
    return "PASS" if r.passed else "FAIL"


def format_table(results: list[CaseResult], tol: Tolerances | None) -> str:
    """One row per case, then the detail of every failed check and note."""
    if tol is None:
        return _format_series_table(results)
    head = [
        "case", "L err", "W err", "tier", "steroid", "border", "needles", "crossed",
        "skin mm", "side", "length", "result", "failing checks",
    ]  # fmt: skip
    lines = _columns([head, *(_row(r) for r in results)])
    passed = sum(r.passed for r in results)
    lines.append(f"{passed}/{len(results)} cases passed")
    for r in results:
        notes = r.evaluation.notes if r.evaluation else ()
        if r.failures or notes:
            lines.append(f"{r.name}:")
            lines += [f"  [{c.stage.value}] {c.name}: {c.detail}" for c in r.failures]
            lines += [f"  note: {n}" for n in notes]
    return "\n".join(lines)


def _format_series_table(results: list[CaseResult]) -> str:
    head = ["series", "series uid", "sent", "stored", "state", "images", "seconds", "result"]
    rows = [head]
    for r in results:
        stored = next((c for c in r.checks if c.name == "series stored"), None)
        s = r.state
        rows.append(
            [
                r.name,
                r.series_uid or "-",
                str(r.images),
                "-" if stored is None else ("ok" if stored.ok else "FAIL"),
                "-" if s is None else s.state,
                "-" if s is None else str(s.instance_count),
                f"{r.seconds:.1f}",
                _verdict(r),
            ]
        )
    lines = _columns(rows)
    for r in results:
        lines += [f"{r.series_uid}: [{c.stage.value}] {c.name}: {c.detail}" for c in r.failures]
    return "\n".join(lines)


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


# ----------------------------------------------------------------------------------- JSON


def _clean(v: Any) -> Any:
    """JSON-safe: enums to values, tuples to lists, non-finite floats to None."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def case_json(r: CaseResult) -> dict[str, Any]:
    truth = None
    if r.truth is not None:
        truth = {f: getattr(r.truth, f) for f in TRUTH_FIELDS}
    evaluation = None
    if r.evaluation is not None:
        evaluation = dataclasses.asdict(r.evaluation)
        evaluation.pop("checks")
    return _clean(
        {
            "name": r.name,
            "source": r.source,
            "series_uid": r.series_uid,
            "images": r.images,
            "passed": r.passed,
            "seconds": round(r.seconds, 2),
            "failures": [c.label for c in r.failures],
            "checks": [
                {"name": c.name, "stage": c.stage.value, "ok": c.ok, "detail": c.detail}
                for c in r.checks
            ],
            "series_state": None if r.state is None else dataclasses.asdict(r.state),
            "truth": truth,
            "evaluation": evaluation,
            "plan": r.plan,
        }
    )


def write_json(
    path: Path,
    results: list[CaseResult],
    *,
    service: dict[str, Any],
    tol: Tolerances | None,
    exit_code: int,
) -> None:
    report = {
        "tool": "ctplan replay",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "check" if tol is not None else "no-check",
        "service": service,
        "tolerances": None if tol is None else dataclasses.asdict(tol),
        "passed": all(r.passed for r in results),
        "exit_code": exit_code,
        "cases": [case_json(r) for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(report), indent=2, allow_nan=False) + "\n")


# ---------------------------------------------------------------------------------- JUnit


def write_junit(path: Path, results: list[CaseResult]) -> None:
    failures = sum(len(r.failures) for r in results)
    suite = ET.Element(
        "testsuite",
        name="ctplan-replay",
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        time=f"{sum(r.seconds for r in results):.2f}",
    )
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname="ctplan.replay", name=r.name, time=f"{r.seconds:.2f}"
        )
        for c in r.failures:
            failure = ET.SubElement(
                case, "failure", type=c.stage.value, message=f"[{c.stage.value}] {c.name}"
            )
            failure.text = c.detail
        if r.evaluation and r.evaluation.notes:
            ET.SubElement(case, "system-out").text = "\n".join(r.evaluation.notes)
    root = ET.Element("testsuites", tests=str(len(results)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

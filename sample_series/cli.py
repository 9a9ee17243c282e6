"""``ctplan samples``: list the sample cases and build them to disk; ``ctplan replay``.

``register(subparsers)`` adds the ``samples`` and ``replay`` commands (the latter from
:mod:`sample_series.replay`) to the main argparse CLI; every parser it adds sets ``func``, a
handler taking the parsed namespace and returning an exit code.
Standalone: ``python -m sample_series.cli samples list``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sample_series.catalogue import CASES
from sample_series.phantom import build_case, write_case
from sample_series.replay import register_replay
from sample_series.truth import anaesthetic_tier, borderline_check, caliper_volume_ml

DEFAULT_OUT = Path("build/samples")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``samples list``, ``samples build`` and ``replay`` to an argparse subparsers object;
    return the ``samples`` parser."""
    parser = subparsers.add_parser(
        "samples",
        help="synthetic CT phantoms with exact ground truth",
        description="Synthetic CT planning series (DICOM) with exact ground truth: lesion "
        "length, width, volume, dose tier, steroid and expected needle access.",
    )
    commands = parser.add_subparsers(dest="samples_command", metavar="{list,build}")
    commands.required = True

    lister = commands.add_parser(
        "list",
        help="list the sample cases",
        description="List every sample case with its site, patient position, expected "
        "anaesthetic tier, borderline flag and expected needle access.",
    )
    lister.add_argument(
        "--full-size", action="store_true", help="judge borderline on the full-size grid"
    )
    lister.set_defaults(func=cmd_list)

    builder = commands.add_parser(
        "build",
        help="build cases to DICOM files plus truth.json and labels.npz",
        description="Build sample cases into OUT/<case>/dicom/*.dcm, OUT/<case>/truth.json "
        "and OUT/<case>/labels.npz. Builds every case when none is named.",
    )
    builder.add_argument("cases", nargs="*", metavar="CASE", help="case names (default: all)")
    builder.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    builder.add_argument(
        "--full-size",
        action="store_true",
        help="512 x 512 x 150 at 0.8 mm instead of the small test grid",
    )
    builder.set_defaults(func=cmd_build)
    register_replay(subparsers)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    rows = [("name", "site", "position", "L mm", "W mm", "V mL", "tier mL", "borderline", "access")]
    for spec in CASES.values():
        m = spec.lesion.measures
        scan = spec.scan(args.full_size)
        volume = caliper_volume_ml(m.length_mm, m.width_mm)
        bl = borderline_check(m.length_mm, m.width_mm, max(scan.pixel_mm, scan.slice_mm))
        alt = f"yes ({'/'.join(f'{a:g}' for a in bl.anaesthetic_ml)})" if bl.borderline else "no"
        rows.append(
            (
                spec.name,
                spec.site.value,
                spec.position.value,
                f"{m.length_mm:.1f}",
                f"{m.width_mm:.1f}",
                f"{volume:.2f}",
                f"{anaesthetic_tier(volume).anaesthetic_ml:g}",
                alt,
                spec.access.value,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n:
            print(f"    {CASES[row[0]].description}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    names = list(args.cases) or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    for i, name in enumerate(names, start=1):
        print(f"[{i}/{len(names)}] {name}: building ...", end="", flush=True)
        start = time.perf_counter()
        case = build_case(name, full_size=args.full_size)
        folder = write_case(case, args.out)
        t = case.truth
        print(
            f" {time.perf_counter() - start:.1f} s, {len(case.datasets)} slices -> {folder}"
            f" (L {t.length_mm:.1f} mm, W {t.width_mm:.1f} mm, V {t.caliper_volume_ml:.2f} mL,"
            f" tier {t.anaesthetic_ml:g} mL{', borderline' if t.borderline else ''})",
            flush=True,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sample_series", description=__doc__)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())

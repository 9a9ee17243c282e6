"""Segmentation accuracy against the voxel size (a report, not a test).

Usage: ``.venv/bin/python bench/resolution.py [--grid 0.8x1.0 --grid 1.6x2.0 ...] [--case ...]
[--noise-realisations N]``

Every catalogue case is rebuilt on each grid (pixel x slice, in mm; same field of view and
scan length as the full-size build), its anatomy found, the lesion segmented from the case's
seed and measured. With ``--noise-realisations N`` each case is built N times, with the
catalogue's noise and N - 1 other draws of it (seeds ``seed + 1000 r``): an outline tuned to
one draw of the noise shows here. Printed per grid: the L and W error of each build against
the truth and the share of its outline on no visible edge; how many builds fall within
max(1 mm, 1 voxel) on both, how many outlines a plan would flag as uncertain, the worst
error, and how many truth-borderline builds the plan's volume interval flags borderline (and
how many others it flags). The validated resolution limit, the uncertain-outline limit and
the outline error of the volume interval in the rules come from this report.
"""

from __future__ import annotations

import argparse
import time

from grids import DEFAULT_GRIDS, noise_draw, on_grid, parse_grid

from planner.anatomy import segment_anatomy
from planner.dosing import dose_card
from planner.errors import PlanningError
from planner.lesion import segment_lesion, unseen_edge_warning
from planner.measure import measure_lesion
from planner.rules import PlanningRules
from planner.volume import load_volume
from sample_series.catalogue import CASES
from sample_series.phantom import build_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", action="append", help="pixel x slice in mm, e.g. 1.2x1.5")
    parser.add_argument("--case", action="append", help="catalogue case (default: all)")
    parser.add_argument(
        "--noise-realisations", type=int, default=1, help="noise draws per case (default: 1)"
    )
    args = parser.parse_args()
    grids = [parse_grid(g) for g in (args.grid or DEFAULT_GRIDS)]
    names = args.case or list(CASES)
    rules = PlanningRules()
    for pixel_mm, slice_mm in grids:
        tolerance = max(1.0, pixel_mm, slice_mm)
        within, refused, flagged, worst, lines = 0, 0, 0, 0.0, []
        borderline, caught, extra = 0, 0, 0
        t0 = time.perf_counter()
        runs = [(name, r) for name in names for r in range(args.noise_realisations)]
        for name, realisation in runs:
            spec = on_grid(noise_draw(CASES[name], realisation), pixel_mm, slice_mm)
            label = name if args.noise_realisations == 1 else f"{name} #{realisation}"
            case = build_case(spec, full_size=True)
            volume = load_volume(case.datasets)
            anatomy = segment_anatomy(volume)
            try:
                lesion = segment_lesion(volume, anatomy, case.truth.seed_lps_mm, rules.segmentation)
                m = measure_lesion(
                    lesion, volume.geometry, outline_error_mm=rules.segmentation.outline_error_mm
                )
            except PlanningError as exc:
                lines.append(f"  {label:28s} refused: {exc}")
                refused += 1
                continue
            dl, dw = m.length_mm - case.truth.length_mm, m.width_mm - case.truth.width_mm
            ok = abs(dl) <= tolerance and abs(dw) <= tolerance
            within += ok
            worst = max(worst, abs(dl), abs(dw))
            uncertain = unseen_edge_warning(lesion, rules.segmentation) is not None
            flagged += uncertain
            dose = dose_card(
                m.length_mm,
                m.width_mm,
                m.length_uncertainty_mm,
                m.width_uncertainty_mm,
                None,
                rules.dosing,
            )
            borderline += case.truth.borderline
            caught += case.truth.borderline and dose.borderline
            extra += dose.borderline and not case.truth.borderline
            flag = ""
            if case.truth.borderline or dose.borderline:
                flag = (
                    f"  borderline: truth {'yes' if case.truth.borderline else 'no'}, "
                    f"plan {'yes' if dose.borderline else 'NO'}"
                )
            lines.append(
                f"  {label:28s} L {dl:+5.1f}  W {dw:+5.1f} mm  {'within' if ok else 'OUTSIDE'}  "
                f"no edge {lesion.unseen_edge_fraction:.2f}{'  UNCERTAIN OUTLINE' * uncertain}"
                f"{flag}"
            )
        print(
            f"grid {pixel_mm} x {pixel_mm} x {slice_mm} mm (tolerance {tolerance:.2f} mm): "
            f"{within}/{len(runs)} within, {refused} refused, {flagged} flagged uncertain, "
            f"worst error {worst:.1f} mm, {caught}/{borderline} truth-borderline builds flagged "
            f"borderline, {extra} others flagged ({time.perf_counter() - t0:.0f} s)"
        )
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()

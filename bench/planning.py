"""Benchmark of the planning stages on a full-size phantom (not a test: it reports, it does
not assert). Usage: ``.venv/bin/python bench/planning.py [--slices 300] [--repeat 5]``.

Reports the median wall time of each stage, including the full trajectory search over every
candidate target of a plan (as the plan runs it) with its candidate paths (covered, and
checked), and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

from planner.anatomy import segment_anatomy
from planner.dosing import suggested_needles
from planner.lesion import segment_lesion
from planner.measure import measure_lesion
from planner.plan import TARGET_CANDIDATES, PlanRequest, make_plan
from planner.rules import PlanningRules
from planner.target import TargetMode, choose_targets
from planner.trajectory import UP_LPS, plan_trajectories
from planner.volume import load_volume
from sample_series.catalogue import CASES
from sample_series.phantom import build_case
from sample_series.spec import ScanSpec


def _median_s(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", default="rib_lateral_small", help="catalogue case")
    parser.add_argument("--slices", type=int, default=300, help="slices of 1 mm (512 x 512)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per stage (median)")
    args = parser.parse_args()

    spec = dataclasses.replace(CASES[args.case], full=ScanSpec(512, 512, 0.8, args.slices, 1.0))
    t0 = time.perf_counter()
    case = build_case(spec, full_size=True)
    print(f"phantom {args.case} 512x512x{args.slices} built in {time.perf_counter() - t0:.1f} s")
    rules = PlanningRules()
    seed = case.truth.seed_lps_mm

    load_s, volume = _median_s(lambda: load_volume(case.datasets), 1)
    anatomy_s, anatomy = _median_s(lambda: segment_anatomy(volume), 1)
    seg_s, lesion = _median_s(
        lambda: segment_lesion(volume, anatomy, seed, rules.segmentation), args.repeat
    )
    meas_s, measurement = _median_s(lambda: measure_lesion(lesion, volume.geometry), args.repeat)
    up = UP_LPS[volume.patient_position]
    targets, _ = choose_targets(
        volume, anatomy, lesion, measurement.center_lps_mm, up, TargetMode.PERIOSTEAL, 1
    )
    traj_s, traj = _median_s(
        lambda: plan_trajectories(
            volume, anatomy, lesion, targets[0].lps_mm, volume.patient_position, rules.trajectory
        ),
        args.repeat,
    )
    # Every candidate target, as make_plan searches them.
    wanted = suggested_needles(measurement.length_mm, rules.dosing)
    all_targets, _ = choose_targets(
        volume,
        anatomy,
        lesion,
        measurement.center_lps_mm,
        up,
        TargetMode.PERIOSTEAL,
        max(TARGET_CANDIDATES, 2 * wanted),
    )
    search_s, searched = _median_s(
        lambda: [
            plan_trajectories(
                volume, anatomy, lesion, t.lps_mm, volume.patient_position, rules.trajectory
            )
            for t in all_targets
        ],
        args.repeat,
    )
    covered = sum(r.candidates_evaluated for r in searched)
    checked = sum(r.candidates_checked for r in searched)
    plan_s, plan = _median_s(
        lambda: make_plan(volume, anatomy, PlanRequest(seed_lps_mm=seed), rules), args.repeat
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'stage':44s} median")
    print(f"{'load volume (pydicom -> int16 HU)':44s} {load_s:6.2f} s")
    print(f"{'anatomy (once per series, cached)':44s} {anatomy_s:6.2f} s")
    print(f"{'segmentation':44s} {seg_s:6.2f} s")
    print(f"{'measurement (Feret L, W)':44s} {meas_s:6.2f} s")
    print(f"{'segmentation + measurement':44s} {seg_s + meas_s:6.2f} s")
    print(
        f"{'trajectory search, one target':44s} {traj_s:6.2f} s "
        f"({traj.candidates_evaluated} candidate paths, {traj.candidates_checked} checked)"
    )
    print(
        f"{f'trajectory search, all {len(all_targets)} targets':44s} {search_s:6.2f} s "
        f"({covered} candidate paths, {checked} checked)"
    )
    print(
        f"{'whole plan (all targets, dosing)':44s} {plan_s:6.2f} s "
        f"({plan.trajectory.candidates_evaluated} candidate paths)"
    )
    print(f"peak resident memory {peak_mb:.0f} MB")
    print(
        f"L {measurement.length_mm:.1f} mm (truth {case.truth.length_mm:.1f}), "
        f"W {measurement.width_mm:.1f} mm (truth {case.truth.width_mm:.1f})"
    )


if __name__ == "__main__":
    main()

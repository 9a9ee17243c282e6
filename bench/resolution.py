"""Segmentation accuracy against the voxel size (a report, not a test).

Usage: ``.venv/bin/python bench/resolution.py [--grid 0.8x1.0 --grid 1.6x2.0 ...] [--case ...]
[--noise-realisations N | --noise-free]``

Every catalogue case is rebuilt on each grid (pixel x slice, in mm; same field of view and
scan length as the full-size build), its anatomy found, the lesion segmented from the case's
seed and measured. With ``--noise-realisations N`` each case is built N times, with the
catalogue's noise and N - 1 other draws of it (seeds ``seed + 1000 r``): an outline tuned to
one draw of the noise shows here. ``--noise-free`` builds each case once without noise: what
error is left is the pipeline's own (without noise the adaptive HU window is at its
narrowest, so this is not the noisy pipeline minus its noise).

Printed per grid: the L and W error of each build against the truth, split into the
outline's error along the truth's own L and W directions and what the choice of the axes
adds (a blunt lesion's length axis is set by fractions of a millimetre of outline, and W is
taken across it), and the share of the outline on no visible edge; how many builds fall
within max(1 mm, 1 voxel) on both, how many outlines a plan would flag as uncertain, the
worst error, how many truth-borderline builds the plan's volume interval flags borderline
(and how many others it flags), the mean and SD of each part of the error, and on how many
builds the outline's own extents are within. The validated resolution limit, the
uncertain-outline limit and the outline error of the volume interval in the rules come from
this report.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from grids import DEFAULT_GRIDS, noise_free, on_grid, parse_grid

from planner.anatomy import segment_anatomy
from planner.dosing import dose_card
from planner.errors import PlanningError
from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask, segment_lesion, unseen_edge_warning
from planner.measure import measure_lesion, surface_points_lps
from planner.rules import PlanningRules
from planner.volume import load_volume
from sample_series.catalogue import CASES
from sample_series.phantom import SampleCase, build_case
from sample_series.spec import noise_draw


def outline_errors_mm(
    case: SampleCase, lesion: LesionMask, geometry: VolumeGeometry
) -> tuple[float, float]:
    """The outline's extent along the truth's L and W directions, minus the truth's L and W.

    The W direction is the truth's W line made perpendicular to L: its endpoints are points
    of the surface and need not face each other across L.
    """
    points = surface_points_lps(lesion, geometry)

    def extent(direction: np.ndarray) -> float:
        along = points @ direction
        return float(along.max() - along.min())

    a, b = np.asarray(case.truth.length_endpoints_lps_mm)
    length_axis = (b - a) / np.linalg.norm(b - a)
    c, d = np.asarray(case.truth.width_endpoints_lps_mm)
    width_axis = (d - c) - ((d - c) @ length_axis) * length_axis
    width_axis /= np.linalg.norm(width_axis)
    return (
        extent(length_axis) - case.truth.length_mm,
        extent(width_axis) - case.truth.width_mm,
    )


def within_on(length_errors: np.ndarray, width_errors: np.ndarray, tolerance_mm: float) -> int:
    """How many builds have both errors within the tolerance."""
    within = (np.abs(length_errors) <= tolerance_mm) & (np.abs(width_errors) <= tolerance_mm)
    return int(within.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", action="append", help="pixel x slice in mm, e.g. 1.2x1.5")
    parser.add_argument("--case", action="append", help="catalogue case (default: all)")
    parser.add_argument(
        "--noise-realisations", type=int, default=1, help="noise draws per case (default: 1)"
    )
    parser.add_argument(
        "--noise-free", action="store_true", help="build each case once, without image noise"
    )
    args = parser.parse_args()
    if args.noise_free and args.noise_realisations != 1:
        parser.error("--noise-free builds one draw: no noise to draw again")
    grids = [parse_grid(g) for g in (args.grid or DEFAULT_GRIDS)]
    names = args.case or list(CASES)
    rules = PlanningRules()
    for pixel_mm, slice_mm in grids:
        tolerance = max(1.0, pixel_mm, slice_mm)
        refused, flagged, lines = 0, 0, []
        errors = []  # per measured build: L, L's outline, W, W's outline (mm)
        borderline, caught, extra = 0, 0, 0
        t0 = time.perf_counter()
        runs = [(name, r) for name in names for r in range(args.noise_realisations)]
        for name, realisation in runs:
            spec = noise_draw(CASES[name], realisation)
            spec = on_grid(noise_free(spec) if args.noise_free else spec, pixel_mm, slice_mm)
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
            ol, ow = outline_errors_mm(case, lesion, volume.geometry)
            errors.append((dl, ol, dw, ow))
            ok = abs(dl) <= tolerance and abs(dw) <= tolerance
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
                f"  {label:28s} L {dl:+5.1f} (outline {ol:+5.1f}, axis {dl - ol:+5.1f})  "
                f"W {dw:+5.1f} (outline {ow:+5.1f}, axis {dw - ow:+5.1f}) mm  "
                f"{'within' if ok else 'OUTSIDE'}  "
                f"no edge {lesion.unseen_edge_fraction:.2f}{'  UNCERTAIN OUTLINE' * uncertain}"
                f"{flag}"
            )
        e = np.asarray(errors).reshape(-1, 4)

        within = within_on(e[:, 0], e[:, 2], tolerance)
        worst = float(np.abs(e[:, [0, 2]]).max(initial=0.0))
        print(
            f"grid {pixel_mm} x {pixel_mm} x {slice_mm} mm (tolerance {tolerance:.2f} mm): "
            f"{within}/{len(runs)} within, {refused} refused, {flagged} flagged uncertain, "
            f"worst error {worst:.1f} mm, {caught}/{borderline} truth-borderline builds flagged "
            f"borderline, {extra} others flagged ({time.perf_counter() - t0:.0f} s)"
        )
        if errors:
            parts = {
                "L": e[:, 0],
                "L outline": e[:, 1],
                "L axis": e[:, 0] - e[:, 1],
                "W": e[:, 2],
                "W outline": e[:, 3],
                "W axis": e[:, 2] - e[:, 3],
            }
            print(
                "  error (mean ± SD, mm): "
                + ", ".join(f"{k} {v.mean():+.2f} ± {v.std():.2f}" for k, v in parts.items())
                + "; the outline's own extents within on "
                + f"{within_on(e[:, 1], e[:, 3], tolerance)}/{len(e)}"
            )
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()

"""Where the lesion's outline lies against the true surface, by the tissue beyond it (a report,
not a test).

Usage: ``.venv/bin/python bench/outline.py [--grid 1.0x1.25] [--case ...] [--noise-realisations N]``

L and W are extremes of the outline, so their errors mix two biases that can cancel: where the
outline lies against the lesion's true surface, and how the calipers read a voxel outline (a
Feret diameter of a staircase picks its corners). This report measures the first alone. Each
catalogue case is built at full size (with ``--grid``: on that grid, pixel x slice in mm, as in
``bench/resolution.py``; with ``--noise-realisations N``: N draws of its noise, seeds
``seed + 1000 r``), its lesion segmented from the case's seed, and every vertex of the
outline's marching-cubes surface placed against the union of the truth's ellipsoids: signed
distance in mm, negative inside (first order, g / |grad g|: exact on the surface, good within a
few mm of it). The tissue beyond is the truth label 2 mm outside along the surface normal:
bone, lung, fat (soft tissue below -30 HU), soft tissue within 2 mm of bone, other soft tissue.
Printed: the median signed distance per case and tissue (vertex count in brackets), and the
median over builds; then the outline's spread about that median, half the 16th-84th percentile
range (one standard deviation for a normal spread), per tissue as a median over builds. The
truth's own label mask, measured the same way, is the zero of both: its spread is the voxel
staircase's.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import numpy.typing as npt
from grids import on_grid, parse_grid
from scipy import ndimage

from planner.anatomy import segment_anatomy
from planner.errors import PlanningError
from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask, segment_lesion
from planner.measure import surface_points_lps
from planner.rules import PlanningRules
from planner.volume import load_volume
from sample_series.catalogue import CASES
from sample_series.phantom import SampleCase, build_case
from sample_series.spec import noise_draw
from sample_series.tissues import LabelCode

TISSUES = ("bone", "soft", "soft near bone", "fat", "lung")
BEYOND_MM = 2.0
NEAR_BONE_MM = 2.0
FAT_BELOW_HU = -30.0
# Vertices further than this from the true surface belong to a leak or a missed lobe, not to
# the outline's position; they are left out of the medians.
NEAR_SURFACE_MM = 4.0


def signed_distance_mm(
    case: SampleCase, points: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Signed distance (mm, negative inside) of LPS points to the truth's union of ellipsoids,
    and the outward unit normal of the nearest lobe."""
    best = np.full(len(points), np.inf)
    normal = np.zeros_like(points)
    for lobe in case.truth.lobes:
        rotation = np.asarray(lobe.axes)
        semi = np.asarray(lobe.semi_axes_mm)
        q = ((points - np.asarray(lobe.centre_lps_mm)) @ rotation.T) / semi
        grad = (2.0 * q / semi) @ rotation
        norm = np.linalg.norm(grad, axis=1)
        d = ((q * q).sum(axis=1) - 1.0) / norm
        nearer = d < best
        best[nearer] = d[nearer]
        normal[nearer] = grad[nearer] / norm[nearer, None]
    return best, normal


def tissue_beyond(
    case: SampleCase, surface: npt.NDArray[np.float64], normal: npt.NDArray[np.float64]
) -> npt.NDArray[np.str_]:
    """The tissue class BEYOND_MM outside each true-surface point, along the normal."""
    kji = np.rint(case.geometry.lps_to_kji(surface + BEYOND_MM * normal)).astype(int)
    kji = np.clip(kji, 0, np.asarray(case.labels.shape) - 1)
    lo = np.maximum(kji.min(axis=0) - 8, 0)
    hi = kji.max(axis=0) + 9
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    spacing = case.geometry.spacing_mm
    bone_distance = ndimage.distance_transform_edt(
        case.labels[box] != LabelCode.BONE, sampling=(spacing[2], spacing[1], spacing[0])
    )
    at = tuple((kji - lo).T)
    label = case.labels[tuple(kji.T)]
    soft = label == LabelCode.SOFT_TISSUE
    return np.select(
        [
            label == LabelCode.BONE,
            label == LabelCode.LUNG,
            soft & (case.hu[tuple(kji.T)] < FAT_BELOW_HU),
            soft & (bone_distance[at] <= NEAR_BONE_MM),
            soft,
        ],
        ["bone", "lung", "fat", "soft near bone", "soft"],
        default="other",
    )


Position = tuple[float, float, int]  # median (mm), spread (mm), vertex count


def outline_bias(
    case: SampleCase, lesion: LesionMask, geometry: VolumeGeometry
) -> dict[str, Position]:
    """Median signed distance (mm), its spread (half the 16th-84th percentile range, mm) and
    the vertex count of the outline, per tissue beyond."""
    points = surface_points_lps(lesion, geometry)
    distance, normal = signed_distance_mm(case, points)
    tissue = tissue_beyond(case, points - distance[:, None] * normal, normal)
    near = np.abs(distance) < NEAR_SURFACE_MM
    found: dict[str, Position] = {}
    for t in TISSUES:
        d = distance[near & (tissue == t)]
        if len(d):
            p16, p50, p84 = np.percentile(d, [16.0, 50.0, 84.0])
            found[t] = (float(p50), float(p84 - p16) / 2.0, len(d))
    return found


def truth_mask(case: SampleCase, geometry: VolumeGeometry) -> LesionMask:
    """The truth's lesion label as a lesion mask on the planner's grid."""
    found = np.argwhere(case.labels == LabelCode.LESION)
    lo, hi = found.min(axis=0), found.max(axis=0) + 1
    # The planner's volume is sorted like the case grid: both run along the slice normal.
    corner = geometry.lps_to_kji(case.geometry.kji_to_lps(lo.astype(float)))
    assert np.allclose(corner, lo, atol=1e-3), "the planner's grid differs from the case grid"
    mask = case.labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] == LabelCode.LESION
    return LesionMask(mask, (int(lo[0]), int(lo[1]), int(lo[2])), case.truth.seed_lps_mm, None)


def _row(label: str, bias: dict[str, Position]) -> str:
    cells = [f"{bias[t][0]:+6.2f} ({bias[t][2]:5d})" if t in bias else " " * 14 for t in TISSUES]
    return f"  {label:30s} " + " ".join(cells)


def _spread_row(label: str, bias: dict[str, Position]) -> str:
    cells = [f"{bias[t][1]:14.2f}" if t in bias else " " * 14 for t in TISSUES]
    return f"  {label:30s} " + " ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", help="pixel x slice in mm, e.g. 1.2x1.5 (default: the case's)")
    parser.add_argument("--case", action="append", help="catalogue case (default: all)")
    parser.add_argument(
        "--noise-realisations", type=int, default=1, help="noise draws per case (default: 1)"
    )
    args = parser.parse_args()
    grid = parse_grid(args.grid) if args.grid else None
    rules = PlanningRules()
    names = args.case or list(CASES)
    header = f"  {'case':30s} " + " ".join(f"{t:>14s}" for t in TISSUES)
    print("median signed distance of the outline from the true surface, mm (vertices)")
    print(header)
    rows: dict[str, list[dict[str, Position]]] = {"segmented": [], "truth mask": []}
    for name in names:
        for realisation in range(args.noise_realisations):
            spec = noise_draw(CASES[name], realisation)
            if grid is not None:
                spec = on_grid(spec, *grid)
            label = name if args.noise_realisations == 1 else f"{name} #{realisation}"
            case = build_case(spec, full_size=True)
            volume = load_volume(case.datasets)
            anatomy = segment_anatomy(volume)
            truth = outline_bias(case, truth_mask(case, volume.geometry), volume.geometry)
            rows["truth mask"].append(truth)
            try:
                lesion = segment_lesion(volume, anatomy, case.truth.seed_lps_mm, rules.segmentation)
            except PlanningError as exc:
                print(f"  {label:30s} refused: {exc}", flush=True)
                continue
            bias = outline_bias(case, lesion, volume.geometry)
            rows["segmented"].append(bias)
            print(_row(label, bias), flush=True)
    summaries = {
        what: {
            t: (
                statistics.median(b[t][0] for b in found),
                statistics.median(b[t][1] for b in found),
                sum(b[t][2] for b in found),
            )
            for t in TISSUES
            if (found := [b for b in biases if t in b])
        }
        for what, biases in rows.items()
    }
    for what, summary in summaries.items():
        print(_row(f"median over builds, {what}", summary))
    print("spread of the outline about its median, mm (half the 16th-84th percentile range)")
    print(header)
    for what, summary in summaries.items():
        print(_spread_row(f"median over builds, {what}", summary))


if __name__ == "__main__":
    main()

"""Stage (manual mode): the radiologist's own caliper measurement in; lesion model out.

Input: the lesion centre (LPS mm), length and width (mm) or their endpoint pairs (LPS mm),
and the volume geometry.
Output: the same :class:`~planner.measure.Measurement` the segmentation path produces, and a
:class:`~planner.lesion.LesionMask` modelling the lesion as a ball of the measured width around
the centre, so the target and path search proceed exactly as after segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planner.errors import InvalidSeed
from planner.geometry import VolumeGeometry
from planner.lesion import LesionMask
from planner.measure import Measurement, voxel_step_mm

Point = tuple[float, float, float]


@dataclass(frozen=True)
class ManualMeasurement:
    center_lps_mm: Point
    length_mm: float | None = None
    width_mm: float | None = None
    length_endpoints_lps_mm: tuple[Point, Point] | None = None
    width_endpoints_lps_mm: tuple[Point, Point] | None = None


def _p(a: np.ndarray) -> Point:
    return (float(a[0]), float(a[1]), float(a[2]))


def _pair(
    given: tuple[Point, Point] | None,
    size_mm: float | None,
    centre: np.ndarray,
    axis: np.ndarray,
    name: str,
) -> tuple[float, tuple[Point, Point], np.ndarray]:
    if given is not None:
        a, b = np.asarray(given[0], float), np.asarray(given[1], float)
        size = float(np.linalg.norm(b - a))
        if size <= 0:
            raise InvalidSeed(f"the two {name} endpoints are the same point")
        return size, (_p(a), _p(b)), (b - a) / size
    if size_mm is None or size_mm <= 0:
        raise InvalidSeed(f"manual mode needs the {name} in mm or its two endpoints")
    half = axis * size_mm / 2.0
    return float(size_mm), (_p(centre - half), _p(centre + half)), axis


def manual_lesion(
    manual: ManualMeasurement, geometry: VolumeGeometry
) -> tuple[LesionMask, Measurement]:
    """Measurement and ball-shaped lesion model from the radiologist's caliper values."""
    centre = np.asarray(manual.center_lps_mm, dtype=np.float64)
    centre_kji = geometry.lps_to_kji(centre)
    if not geometry.contains_kji(centre_kji):
        raise InvalidSeed("the lesion centre lies outside the scanned volume")
    row_dir, col_dir = geometry.direction_matrix[:, 0], geometry.direction_matrix[:, 1]
    length, l_ends, l_axis = _pair(
        manual.length_endpoints_lps_mm, manual.length_mm, centre, row_dir, "length"
    )
    width, w_ends, w_axis = _pair(
        manual.width_endpoints_lps_mm, manual.width_mm, centre, col_dir, "width"
    )
    if width > length:
        raise InvalidSeed(
            f"width {width:.1f} mm exceeds length {length:.1f} mm: the length is the largest "
            "diameter"
        )
    spacing = np.asarray(geometry.spacing_kji_mm())
    radius = width / 2.0
    r = np.ceil(radius / spacing).astype(int)
    c = np.rint(centre_kji).astype(int)
    lo = np.maximum(c - r, 0)
    hi = np.minimum(c + r + 1, np.asarray(geometry.shape))
    grid = np.stack(
        np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"),
        axis=-1,
    )
    d = np.linalg.norm(geometry.kji_to_lps(grid) - centre, axis=-1)
    mask = d <= max(radius, 0.5 * float(spacing.min()))
    lesion = LesionMask(
        mask=mask,
        offset_kji=(int(lo[0]), int(lo[1]), int(lo[2])),
        seed_lps_mm=_p(centre),
        hu_window=None,
    )
    measurement = Measurement(
        length_mm=length,
        width_mm=width,
        length_endpoints_lps_mm=l_ends,
        width_endpoints_lps_mm=w_ends,
        length_uncertainty_mm=voxel_step_mm(l_axis, geometry),
        width_uncertainty_mm=voxel_step_mm(w_axis, geometry),
        voxel_volume_ml=None,
        center_lps_mm=_p(centre),
        mode=None,
    )
    return lesion, measurement

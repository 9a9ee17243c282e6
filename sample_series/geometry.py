"""Image grids of the phantom and how a scanner orients them for each patient position.

Conventions (same as the planner, restated here on purpose, no import):
- physical points are DICOM patient LPS in mm (x to the patient's left, y posterior, z head);
- numpy volumes are indexed ``[k, j, i]`` = ``[slice, row, column]``, slices sorted by
  increasing position along the slice normal ``cross(row_dir, col_dir)``;
- a voxel triple ``(i, j, k)`` is (column, row, slice).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Vec3 = tuple[float, float, float]


class PatientPosition(StrEnum):
    HFS = "HFS"
    HFP = "HFP"
    FFS = "FFS"
    FFP = "FFP"
    HFDL = "HFDL"
    HFDR = "HFDR"


# ImageOrientationPatient (row direction, column direction) a scanner writes for an axial scan:
# the image axes follow the gantry, the patient is turned inside it.
IMAGE_ORIENTATION: dict[PatientPosition, tuple[Vec3, Vec3]] = {
    PatientPosition.HFS: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    PatientPosition.HFP: ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    PatientPosition.FFS: ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    PatientPosition.FFP: ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    PatientPosition.HFDL: ((0.0, -1.0, 0.0), (1.0, 0.0, 0.0)),
    PatientPosition.HFDR: ((0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)),
}


def down_direction(position: PatientPosition) -> Vec3:
    """Unit LPS vector from the patient toward the table (the side the patient lies on).

    The table is always at the bottom of a gantry image, i.e. along the column direction
    (increasing row index): posterior for supine, anterior for prone, left for HFDL, right
    for HFDR.
    """
    return IMAGE_ORIENTATION[PatientPosition(position)][1]


def up_direction(position: PatientPosition) -> Vec3:
    """Unit LPS vector of the patient side facing up (away from the table)."""
    dx, dy, dz = down_direction(position)
    return (-dx + 0.0, -dy + 0.0, -dz + 0.0)


@dataclass(frozen=True)
class GridGeometry:
    """Affine map of a voxel grid to LPS mm (field names match ``planner.geometry``).

    ``origin_lps_mm`` is the centre of voxel (i, j, k) = (0, 0, 0) of the position-sorted
    volume; ``spacing_mm`` is (column, row, slice) spacing in index order (i, j, k);
    ``direction`` is the 3x3 matrix whose *columns* are the unit vectors of increasing i, j
    and k, stored row by row; ``shape`` is the numpy shape (slices, rows, columns).
    """

    origin_lps_mm: Vec3
    spacing_mm: Vec3
    direction: tuple[Vec3, Vec3, Vec3]
    shape: tuple[int, int, int]

    @property
    def direction_matrix(self) -> FloatArray:
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def row_direction(self) -> FloatArray:
        """Unit vector of increasing column index i (DICOM IOP first triplet)."""
        return self.direction_matrix[:, 0]

    @property
    def column_direction(self) -> FloatArray:
        """Unit vector of increasing row index j (DICOM IOP second triplet)."""
        return self.direction_matrix[:, 1]

    @property
    def slice_direction(self) -> FloatArray:
        return self.direction_matrix[:, 2]

    @property
    def affine(self) -> FloatArray:
        """4x4 matrix mapping homogeneous (i, j, k, 1) to (x, y, z, 1) in LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        m[:3, 3] = self.origin_lps_mm
        return m

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def index_to_lps(self, ijk: npt.ArrayLike) -> FloatArray:
        """(..., 3) continuous (i, j, k) indices to (..., 3) LPS mm."""
        a = self.affine
        return np.asarray(ijk, dtype=np.float64) @ a[:3, :3].T + a[:3, 3]

    def lps_to_index(self, lps_mm: npt.ArrayLike) -> FloatArray:
        """(..., 3) LPS mm to (..., 3) continuous (i, j, k) indices."""
        a = self.affine
        return (np.asarray(lps_mm, dtype=np.float64) - a[:3, 3]) @ np.linalg.inv(a[:3, :3]).T

    def lps_to_kji(self, lps_mm: npt.ArrayLike) -> FloatArray:
        return self.lps_to_index(lps_mm)[..., ::-1]

    def kji_to_lps(self, kji: npt.ArrayLike) -> FloatArray:
        return self.index_to_lps(np.asarray(kji, dtype=np.float64)[..., ::-1])

    def slice_origins_lps_mm(self) -> FloatArray:
        """(n_slices, 3) ImagePositionPatient of each slice, in position-sorted order."""
        k = np.arange(self.shape[0], dtype=np.float64)
        return np.asarray(self.origin_lps_mm)[None, :] + np.outer(
            k * self.spacing_mm[2], self.slice_direction
        )

    def is_axial(self) -> bool:
        """True when slices are perpendicular to z (no gantry tilt): the rasteriser needs it."""
        d = self.direction_matrix
        return bool(abs(abs(d[2, 2]) - 1.0) < 1e-9 and abs(d[2, 0]) < 1e-9 and abs(d[2, 1]) < 1e-9)


def axial_grid(
    position: PatientPosition,
    *,
    rows: int,
    columns: int,
    pixel_mm: float,
    n_slices: int,
    slice_mm: float,
    centre_lps_mm: npt.ArrayLike,
) -> GridGeometry:
    """Scanner image grid for ``position`` whose field of view is centred on ``centre_lps_mm``."""
    row_dir, col_dir = (np.asarray(v) for v in IMAGE_ORIENTATION[PatientPosition(position)])
    normal = np.cross(row_dir, col_dir)
    centre = np.asarray(centre_lps_mm, dtype=np.float64)
    origin = (
        centre
        - row_dir * pixel_mm * (columns - 1) / 2.0
        - col_dir * pixel_mm * (rows - 1) / 2.0
        - normal * slice_mm * (n_slices - 1) / 2.0
    )
    direction = np.stack([row_dir, col_dir, normal], axis=1)
    return GridGeometry(
        origin_lps_mm=_vec(origin),
        spacing_mm=(float(pixel_mm), float(pixel_mm), float(slice_mm)),
        direction=(_vec(direction[0]), _vec(direction[1]), _vec(direction[2])),
        shape=(int(n_slices), int(rows), int(columns)),
    )


def lps_box_grid(
    lo_lps_mm: npt.ArrayLike, hi_lps_mm: npt.ArrayLike, step_mm: float
) -> GridGeometry:
    """Axis-aligned LPS grid (i along x, j along y, k along z) covering a box."""
    lo = np.asarray(lo_lps_mm, dtype=np.float64)
    hi = np.asarray(hi_lps_mm, dtype=np.float64)
    n = np.maximum(np.ceil((hi - lo) / step_mm).astype(int) + 1, 1)
    return GridGeometry(
        origin_lps_mm=_vec(lo),
        spacing_mm=(step_mm, step_mm, step_mm),
        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
        shape=(int(n[2]), int(n[1]), int(n[0])),
    )


def _vec(v: npt.ArrayLike) -> Vec3:
    a = np.asarray(v, dtype=np.float64).reshape(3) + 0.0  # + 0.0 turns -0.0 into 0.0
    return (float(a[0]), float(a[1]), float(a[2]))

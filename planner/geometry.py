"""Voxel grid geometry: the one place where array indices and LPS millimetres meet.

Index conventions (used everywhere in the planner):
- numpy arrays are indexed ``[k, j, i]`` = ``[slice, row, column]``;
- a voxel index written as a triple is ``(i, j, k)`` = ``(column, row, slice)``, the DICOM /
  SimpleITK order;
- physical points are DICOM patient LPS coordinates in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VolumeGeometry:
    """Affine map of a regular voxel grid to patient LPS mm.

    ``origin_lps_mm`` is the centre of voxel (0, 0, 0); ``direction`` holds the unit vectors of
    increasing column, row and slice index as its three columns; ``spacing_mm`` is
    (column spacing, row spacing, slice spacing) = (x, y, z) in index order.
    ``shape`` is the numpy shape (slices, rows, columns).
    """

    origin_lps_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], ...]
    shape: tuple[int, int, int]

    @property
    def direction_matrix(self) -> FloatArray:
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def affine(self) -> FloatArray:
        """4x4 matrix mapping homogeneous (i, j, k, 1) to (x, y, z, 1) in LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix * np.asarray(self.spacing_mm)[None, :]
        m[:3, 3] = self.origin_lps_mm
        return m

    @property
    def slice_normal(self) -> FloatArray:
        return self.direction_matrix[:, 2]

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0

    def index_to_lps(self, ijk: npt.ArrayLike) -> FloatArray:
        """(..., 3) continuous (i, j, k) indices to (..., 3) LPS mm."""
        ijk_arr = np.asarray(ijk, dtype=np.float64)
        a = self.affine
        return ijk_arr @ a[:3, :3].T + a[:3, 3]

    def lps_to_index(self, lps_mm: npt.ArrayLike) -> FloatArray:
        """(..., 3) LPS mm to (..., 3) continuous (i, j, k) indices."""
        p = np.asarray(lps_mm, dtype=np.float64)
        a = self.affine
        return (p - a[:3, 3]) @ np.linalg.inv(a[:3, :3]).T

    def kji_to_lps(self, kji: npt.ArrayLike) -> FloatArray:
        """(..., 3) numpy-order (k, j, i) indices to LPS mm."""
        return self.index_to_lps(np.asarray(kji, dtype=np.float64)[..., ::-1])

    def lps_to_kji(self, lps_mm: npt.ArrayLike) -> FloatArray:
        """LPS mm to numpy-order continuous (k, j, i) indices."""
        return self.lps_to_index(lps_mm)[..., ::-1]

    def contains_kji(self, kji: npt.ArrayLike) -> bool:
        """True when the rounded numpy index lies inside the grid."""
        idx = np.rint(np.asarray(kji, dtype=np.float64)).astype(int)
        return bool(np.all(idx >= 0) and np.all(idx < np.asarray(self.shape)))

    def spacing_kji_mm(self) -> tuple[float, float, float]:
        """Spacing in numpy order (slice, row, column)."""
        sx, sy, sz = self.spacing_mm
        return (sz, sy, sx)

"""Paint a list of primitives onto an axial voxel grid: tissue ids at voxel centres.

Input: primitives in painting order, a :class:`GridGeometry` whose slices are perpendicular
to z (every scanner orientation of :mod:`sample_series.geometry` is). Output: uint8 tissue
ids ``[k, j, i]``. Each primitive is evaluated only on the block of voxels inside its LPS
bounding box; in-plane coordinates are built as broadcast arrays, so an axis-aligned grid
costs one full-size operation per comparison, not per coordinate.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from sample_series.geometry import GridGeometry
from sample_series.shapes import Primitive
from sample_series.tissues import AIR_ID

COORD_DTYPE = np.float32


class _AxialGrid:
    def __init__(self, grid: GridGeometry) -> None:
        if not grid.is_axial():
            raise ValueError("the phantom rasteriser needs axial slices (no gantry tilt)")
        self.grid = grid
        a = grid.affine
        self.origin = a[:3, 3]
        self.col_step = a[:3, 0]  # LPS step per column index i
        self.row_step = a[:3, 1]  # LPS step per row index j
        nk = grid.shape[0]
        self.z = (self.origin[2] + a[2, 2] * np.arange(nk)).astype(COORD_DTYPE)
        self.inplane_inv = np.linalg.inv(np.array([self.col_step[:2], self.row_step[:2]]).T)

    def block(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice, slice] | None:
        nk, nj, ni = self.grid.shape
        k_idx = np.nonzero((self.z >= lo[2] - 1e-4) & (self.z <= hi[2] + 1e-4))[0]
        if k_idx.size == 0:
            return None
        corners = np.array([[lo[0], lo[1]], [lo[0], hi[1]], [hi[0], lo[1]], [hi[0], hi[1]]])
        ij = (corners - self.origin[:2]) @ self.inplane_inv.T
        i0 = max(int(np.floor(ij[:, 0].min())) - 1, 0)
        i1 = min(int(np.ceil(ij[:, 0].max())) + 2, ni)
        j0 = max(int(np.floor(ij[:, 1].min())) - 1, 0)
        j1 = min(int(np.ceil(ij[:, 1].max())) + 2, nj)
        if i0 >= i1 or j0 >= j1:
            return None
        return slice(int(k_idx[0]), int(k_idx[-1]) + 1), slice(j0, j1), slice(i0, i1)

    def coords(self, ks: slice, js: slice, is_: slice) -> tuple[np.ndarray, ...]:
        """Broadcastable x, y (shape (1, nj|1, ni|1)) and z (shape (nk, 1, 1)) of a block."""
        i = np.arange(is_.start, is_.stop, dtype=np.float64)[None, None, :]
        j = np.arange(js.start, js.stop, dtype=np.float64)[None, :, None]
        xy = []
        for axis in (0, 1):
            term = np.full((1, 1, 1), self.origin[axis])
            if abs(self.col_step[axis]) > 1e-12:
                term = term + i * self.col_step[axis]
            if abs(self.row_step[axis]) > 1e-12:
                term = term + j * self.row_step[axis]
            xy.append(term.astype(COORD_DTYPE))
        z = self.z[ks][:, None, None]
        return xy[0], xy[1], z


def rasterize(
    primitives: Iterable[Primitive],
    grid: GridGeometry,
    out: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.uint8]:
    """Tissue id of every voxel centre of ``grid`` (air where no primitive is inside)."""
    g = _AxialGrid(grid)
    if out is None:
        out = np.full(grid.shape, AIR_ID, dtype=np.uint8)
    for prim in primitives:
        lo, hi = prim.bounds()
        blk = g.block(lo, hi)
        if blk is None:
            continue
        x, y, z = g.coords(*blk)
        prim.paint(out[blk], x, y, z)
    return out

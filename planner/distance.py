"""Euclidean distance maps (mm) on the volume grid, capped: the one place they are computed.

Input: a boolean mask indexed ``[slice, row, column]`` and the spacing in that order (mm).
Output: float32 distance (mm) from every voxel to the nearest voxel of the mask, capped at
``DISTANCE_CAP_MM``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import SimpleITK as sitk

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]

# Distances above this are stored as this: beyond it clearance no longer changes a plan.
DISTANCE_CAP_MM = 40.0


def distance_map_mm(mask: BoolArray, spacing_kji: tuple[float, float, float]) -> FloatArray:
    """Euclidean distance (mm) from every voxel to the nearest voxel of ``mask``, capped."""
    if not mask.any():
        return np.full(mask.shape, DISTANCE_CAP_MM, dtype=np.float32)
    image = sitk.GetImageFromArray(mask.view(np.uint8))
    sz, sy, sx = spacing_kji
    image.SetSpacing((sx, sy, sz))
    dist = sitk.SignedMaurerDistanceMap(
        image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    out = sitk.GetArrayFromImage(dist).astype(np.float32, copy=False)
    np.clip(out, 0.0, DISTANCE_CAP_MM, out=out)
    return out

"""Stage: HU volume in, anatomy masks out.

Input: :class:`~planner.volume.CTVolume`.
Output: :class:`Anatomy` with boolean masks on the volume grid ([slice, row, column]): body
(patient only: the CT table and anything outside the patient removed, internal air filled),
bone, lung and air inside the body, spinal canal and vertebral column (where found).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from planner.volume import CTVolume

BoolArray = npt.NDArray[np.bool_]

BODY_HU = -400.0
AIR_HU = -400.0
BONE_HU = 180.0
# Contact between the patient and the table or cushion narrower than this is cut.
TABLE_CUT_RADIUS_MM = 3.0
CANAL_AREA_MM2 = (40.0, 700.0)
CANAL_HU = (-30.0, 70.0)
CANAL_MIDLINE_MM = 30.0
VERTEBRA_RADIUS_MM = 45.0


@dataclass(frozen=True)
class Anatomy:
    body: BoolArray
    bone: BoolArray
    air: BoolArray
    canal: BoolArray
    spine: BoolArray
    structures_found: tuple[str, ...]
    warnings: tuple[str, ...]


def _disc(radius_mm: float, spacing_row_mm: float, spacing_col_mm: float) -> BoolArray:
    ry = max(1, int(round(radius_mm / spacing_row_mm)))
    rx = max(1, int(round(radius_mm / spacing_col_mm)))
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    disc = (yy * spacing_row_mm) ** 2 + (xx * spacing_col_mm) ** 2 <= radius_mm**2
    return disc[None, :, :]


def body_mask(volume: CTVolume) -> BoolArray:
    """The patient: the largest 3-D component above air density, table cut off, holes filled."""
    _, sy, sx = volume.geometry.spacing_kji_mm()
    dense = volume.hu > BODY_HU
    opened = ndimage.binary_opening(dense, structure=_disc(TABLE_CUT_RADIUS_MM, sy, sx))
    labels, n = ndimage.label(opened)
    if n == 0:
        return np.zeros_like(dense)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    body = labels == int(np.argmax(sizes))
    # Give back the skin surface the opening shaved off, but not the table it cut away.
    body = ndimage.binary_dilation(body, structure=_disc(TABLE_CUT_RADIUS_MM, sy, sx)) & dense
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def _find_canal(volume: CTVolume, bone: BoolArray, body: BoolArray) -> BoolArray:
    """Spinal canal: per slice, a soft-tissue hole enclosed by bone, posterior, near the midline."""
    geo = volume.geometry
    _, sy, sx = geo.spacing_kji_mm()
    pixel_area = sy * sx
    canal = np.zeros_like(bone)
    for k in range(bone.shape[0]):
        if not body[k].any():
            continue
        body_rows, body_cols = np.nonzero(body[k])
        centre = geo.kji_to_lps(np.array([k, body_rows.mean(), body_cols.mean()]))
        holes = ndimage.binary_fill_holes(bone[k]) & ~bone[k]
        labels, n = ndimage.label(holes)
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        areas = ndimage.sum_labels(holes, labels, index) * pixel_area
        means = ndimage.mean(volume.hu[k], labels, index)
        centroids = ndimage.center_of_mass(holes, labels, index)
        best, best_offset = 0, np.inf
        for lab, area, mean, (r, c) in zip(index, areas, means, centroids, strict=True):
            if not (CANAL_AREA_MM2[0] <= area <= CANAL_AREA_MM2[1]):
                continue
            if not (CANAL_HU[0] <= mean <= CANAL_HU[1]):
                continue
            p = geo.kji_to_lps(np.array([k, r, c]))
            # LPS: +x is patient left, +y posterior. The canal is posterior to the body centre.
            if abs(p[0] - centre[0]) > CANAL_MIDLINE_MM or p[1] <= centre[1]:
                continue
            # The canal sits on the midline; foramina and lesions enclosed by bone sit aside.
            if abs(p[0] - centre[0]) < best_offset:
                best, best_offset = int(lab), float(abs(p[0] - centre[0]))
        if best:
            canal[k] = labels == best
    return canal


def _spine_from_canal(volume: CTVolume, bone: BoolArray, canal: BoolArray) -> BoolArray:
    """Vertebral column: bone within VERTEBRA_RADIUS_MM in-plane of the canal centre."""
    geo = volume.geometry
    _, sy, sx = geo.spacing_kji_mm()
    found = np.flatnonzero(canal.any(axis=(1, 2)))
    spine = np.zeros_like(bone)
    if found.size == 0:
        return spine
    rows, cols = np.mgrid[0 : bone.shape[1], 0 : bone.shape[2]]
    centres = {int(k): ndimage.center_of_mass(canal[k]) for k in found}
    max_gap = max(1, int(round(20.0 / geo.spacing_kji_mm()[0])))
    for k in range(bone.shape[0]):
        nearest = int(found[np.argmin(np.abs(found - k))])
        if abs(nearest - k) > max_gap:
            continue
        r0, c0 = centres[nearest]
        near = ((rows - r0) * sy) ** 2 + ((cols - c0) * sx) ** 2 <= VERTEBRA_RADIUS_MM**2
        spine[k] = bone[k] & near
    return spine


def segment_anatomy(volume: CTVolume) -> Anatomy:
    """Body, bone, air/lung, spinal canal and vertebral column masks of the volume."""
    warnings: list[str] = []
    body = body_mask(volume)
    bone = (volume.hu > BONE_HU) & body
    air = (volume.hu < AIR_HU) & body
    canal = _find_canal(volume, bone, body)
    spine = _spine_from_canal(volume, bone, canal)
    found = ["body surface", "bone", "lung and air"]
    if canal.any():
        found += ["spinal canal", "vertebral column"]
    else:
        warnings.append("spinal canal not found: spine proximity and canal avoidance unchecked")
    return Anatomy(
        body=body,
        bone=bone,
        air=air,
        canal=canal,
        spine=spine,
        structures_found=tuple(found),
        warnings=tuple(warnings),
    )

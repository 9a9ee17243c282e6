"""Stage: HU volume in, anatomy masks, skin and distance maps out.

Input: :class:`~planner.volume.CTVolume`.
Output: :class:`Anatomy` on the volume grid ([slice, row, column]): body (patient only: the CT
table and its cushion (:mod:`planner.table`) and anything outside the patient removed, internal
air filled), bone, lung and air inside the body, spinal canal and vertebral column (where
found), the opacified large vessels (contrast-enhanced series only, :mod:`planner.vessels`;
they are not bone); the skin voxels with their outward normals and positions (LPS); and, per
forbidden structure, the distance map (mm) used to check needle clearance. Computed once per
series; each plan reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from planner.distance import DISTANCE_CAP_MM, distance_map_mm
from planner.table import TableFinding, find_table
from planner.vessels import find_large_vessels
from planner.volume import CTVolume

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]

BODY_HU = -400.0
AIR_HU = -400.0
BONE_HU = 180.0
# Contact between the patient and the table or cushion narrower than this is cut.
TABLE_CUT_RADIUS_MM = 3.0
# A disk of radius r is close to a square of half-width (sqrt(2) - 1) r followed by a diamond
# of radius (2 - sqrt(2)) r: the octagon they make reaches r along the axes and diagonals.
OCTAGON_SQUARE_SHARE = 2.0**0.5 - 1.0
CANAL_AREA_MM2 = (40.0, 700.0)
CANAL_HU = (-30.0, 70.0)
CANAL_MIDLINE_MM = 30.0
VERTEBRA_RADIUS_MM = 45.0
SKIN_NORMAL_SIGMA_MM = 2.0
_IN_PLANE = np.array(
    [[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]], [[0, 0, 0]] * 3],
    dtype=bool,
)


@dataclass(frozen=True)
class Anatomy:
    body: BoolArray
    bone: BoolArray
    air: BoolArray
    canal: BoolArray
    spine: BoolArray
    skin_kji: npt.NDArray[np.int32]  # sorted by slice
    skin_normals_lps: npt.NDArray[np.float32]
    skin_lps_mm: npt.NDArray[np.float64]  # centres of the skin voxels, in skin_kji's order
    distance_mm: dict[str, FloatArray]
    structures_found: tuple[str, ...]
    warnings: tuple[str, ...]
    vessel: BoolArray | None = None  # opacified large vessels; None when not found
    contrast_enhanced: bool = False
    # Why large vessels could not be checked (non-contrast series...); None when they were.
    vessel_warning: str | None = None


def _largest_component(mask: BoolArray) -> BoolArray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return np.asarray(labels == int(np.argmax(sizes)))


def _cross_step(mask: BoolArray, dilate: bool) -> BoolArray:
    """One in-plane erosion (or dilation) by the 3 x 3 cross."""
    out = mask.copy()
    op = np.logical_or if dilate else np.logical_and
    op(out[:, 1:, :], mask[:, :-1, :], out=out[:, 1:, :])
    op(out[:, :-1, :], mask[:, 1:, :], out=out[:, :-1, :])
    op(out[:, :, 1:], mask[:, :, :-1], out=out[:, :, 1:])
    op(out[:, :, :-1], mask[:, :, 1:], out=out[:, :, :-1])
    return out


def _octagon_in_plane(
    mask: BoolArray, radius_mm: float, spacing: tuple[float, float, float], dilate: bool
) -> BoolArray:
    """In-plane erosion (or dilation) by an octagon close to the disk of ``radius_mm``.

    The octagon is a square followed by a diamond (3 x 3 cross steps), sized so that it
    reaches the disk's radius along the axes and along the diagonals (its corners lie 8 %
    beyond): a separable filter and a few array shifts, about three times faster than the
    Euclidean distance map of the whole volume.
    """
    radius_px = radius_mm / min(spacing[1], spacing[2])
    total = max(1, round(radius_px))
    half = min(total, round(OCTAGON_SQUARE_SHARE * radius_px))
    filt = ndimage.maximum_filter if dilate else ndimage.minimum_filter
    out = filt(mask.view(np.uint8), size=(1, 2 * half + 1, 2 * half + 1)).view(bool)
    for _ in range(total - half):
        out = _cross_step(out, dilate)
    return out


def enclosed_in_plane(mask: BoolArray) -> tuple[npt.NDArray[np.int32], int]:
    """Per-slice holes of ``mask``: components of its complement not touching the slice edge."""
    labels, n = ndimage.label(~mask, structure=_IN_PLANE)
    edge = np.zeros(n + 1, dtype=bool)
    for border in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
        edge[np.unique(border)] = True
    edge[0] = True
    labels[edge[labels]] = 0
    return labels, n


@dataclass(frozen=True)
class Body:
    """The patient's voxels ([slice, row, column]), the table taken out of them, and a warning
    when a table was seen but could not be separated from the patient."""

    mask: BoolArray
    table: TableFinding
    warnings: tuple[str, ...]


def find_body(volume: CTVolume) -> Body:
    """The patient: the largest component above air density, without the CT table and its
    cushion (:mod:`planner.table`) or thin contacts with anything else, holes filled."""
    spacing = volume.geometry.spacing_kji_mm()
    table = find_table(volume, BODY_HU)
    dense = (volume.hu > BODY_HU) & ~table.mask
    # In-plane opening by TABLE_CUT_RADIUS_MM cuts thin contacts (sheets, a table seen apart).
    core = _largest_component(_octagon_in_plane(dense, TABLE_CUT_RADIUS_MM, spacing, False))
    body = dense & _octagon_in_plane(core, TABLE_CUT_RADIUS_MM + 0.5, spacing, True)
    holes, _ = enclosed_in_plane(body)
    warnings = (table.warning,) if table.warning else ()
    return Body(np.asarray(body | (holes > 0)), table, warnings)


def _find_canal(volume: CTVolume, bone: BoolArray, body: BoolArray) -> BoolArray:
    """Spinal canal: per slice, a soft-tissue hole enclosed by bone, posterior, near the midline."""
    geo = volume.geometry
    _, sy, sx = geo.spacing_kji_mm()
    holes, n = enclosed_in_plane(bone)
    canal = np.zeros_like(bone)
    if n == 0 or not holes.any():
        return canal
    ids = np.arange(n + 1)
    flat = holes.ravel()
    count = np.bincount(flat, minlength=n + 1).astype(np.float64)
    count[0] = 0
    present = ids[count > 0]
    coords = np.nonzero(holes)
    lab = holes[coords]
    hu_sum = np.bincount(lab, weights=volume.hu[coords], minlength=n + 1)
    centroid = np.stack(
        [np.bincount(lab, weights=c, minlength=n + 1) for c in coords], axis=1
    ) / np.maximum(count[:, None], 1)
    # Per slice, the body's centre (k, j, i) from its row and column profiles.
    per_row = body.sum(axis=2, dtype=np.float64)  # [k, j]
    per_col = body.sum(axis=1, dtype=np.float64)  # [k, i]
    body_count = np.maximum(per_row.sum(axis=1), 1)
    body_centre = np.stack(
        [
            np.arange(bone.shape[0], dtype=np.float64),
            per_row @ np.arange(bone.shape[1]) / body_count,
            per_col @ np.arange(bone.shape[2]) / body_count,
        ],
        axis=1,
    )

    best: dict[int, tuple[float, int]] = {}
    for h in present:
        area = count[h] * sy * sx
        mean = hu_sum[h] / count[h]
        if not CANAL_AREA_MM2[0] <= area <= CANAL_AREA_MM2[1]:
            continue
        if not CANAL_HU[0] <= mean <= CANAL_HU[1]:
            continue
        k = int(round(centroid[h][0]))
        p = geo.kji_to_lps(centroid[h])
        c = geo.kji_to_lps(body_centre[k])
        offset = abs(p[0] - c[0])
        # LPS: +x patient left, +y posterior. The canal is on the midline, behind the centre.
        if offset > CANAL_MIDLINE_MM or p[1] <= c[1]:
            continue
        if k not in best or offset < best[k][0]:
            best[k] = (offset, int(h))
    keep = np.zeros(n + 1, dtype=bool)
    keep[[h for _, h in best.values()]] = True
    canal = keep[holes]
    return np.asarray(canal)


def _spine_from_canal(volume: CTVolume, bone: BoolArray, canal: BoolArray) -> BoolArray:
    """Vertebral column: bone within VERTEBRA_RADIUS_MM in-plane of the canal centre."""
    geo = volume.geometry
    sz, sy, sx = geo.spacing_kji_mm()
    found = np.flatnonzero(canal.any(axis=(1, 2)))
    spine = np.zeros_like(bone)
    if found.size == 0:
        return spine
    rows, cols = np.ogrid[0 : bone.shape[1], 0 : bone.shape[2]]
    centres = {int(k): np.argwhere(canal[k]).mean(axis=0) for k in found}
    max_gap = max(1, int(round(20.0 / sz)))
    for k in range(bone.shape[0]):
        nearest = int(found[np.argmin(np.abs(found - k))])
        if abs(nearest - k) > max_gap:
            continue
        r0, c0 = centres[nearest]
        near = ((rows - r0) * sy) ** 2 + ((cols - c0) * sx) ** 2 <= VERTEBRA_RADIUS_MM**2
        spine[k] = bone[k] & near
    return spine


def skin_with_normals(
    volume: CTVolume, body: BoolArray
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Body surface voxels (k, j, i) and their outward unit normals in LPS.

    The normal is the downhill direction of the body mask smoothed over SKIN_NORMAL_SIGMA_MM:
    smoothing spreads the voxel staircase into a surface that follows the skin's shape.
    """
    geo = volume.geometry
    spacing = np.asarray(geo.spacing_kji_mm())
    interior = body.copy()
    interior[:, 1:, :] &= body[:, :-1, :]
    interior[:, :-1, :] &= body[:, 1:, :]
    interior[:, :, 1:] &= body[:, :, :-1]
    interior[:, :, :-1] &= body[:, :, 1:]
    skin = np.argwhere(body & ~interior).astype(np.int32)
    smooth = ndimage.gaussian_filter(body.astype(np.float32), SKIN_NORMAL_SIGMA_MM / spacing)
    shape = np.asarray(body.shape)
    inward = np.zeros((len(skin), 3), dtype=np.float64)
    for d in range(3):
        step = np.zeros(3, dtype=np.int32)
        step[d] = 1
        ahead = np.minimum(skin + step, shape - 1)
        behind = np.maximum(skin - step, 0)
        rise = smooth[tuple(ahead.T)] - smooth[tuple(behind.T)]
        inward[:, d] = rise / (spacing[d] * np.maximum(ahead[:, d] - behind[:, d], 1))
    direction_kji = geo.direction_matrix[:, ::-1]  # columns: LPS unit vectors of k, j, i
    outward = -(inward @ direction_kji.T)
    outward /= np.maximum(np.linalg.norm(outward, axis=1, keepdims=True), 1e-9)
    return skin, outward.astype(np.float32)


def _bounding_box(mask: BoolArray) -> tuple[slice, ...]:
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    found = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != d))) for d in range(3)]
    return tuple(slice(int(f[0]), int(f[-1]) + 1) for f in found)


def _distance_in_box(
    mask: BoolArray, box: tuple[slice, ...], spacing: tuple[float, float, float]
) -> FloatArray:
    """Distance map computed inside the body's box only: paths never leave the body."""
    out = np.full(mask.shape, DISTANCE_CAP_MM, dtype=np.float32)
    out[box] = distance_map_mm(np.ascontiguousarray(mask[box]), spacing)
    return out


def segment_anatomy(volume: CTVolume) -> Anatomy:
    """Body, bone, air/lung, spinal canal, vertebral column, large vessels (contrast-enhanced
    series), skin and distance maps."""
    warnings: list[str] = []
    spacing = volume.geometry.spacing_kji_mm()
    found_body = find_body(volume)
    body = found_body.mask
    warnings += found_body.warnings
    bone = (volume.hu > BONE_HU) & body
    air = (volume.hu < AIR_HU) & body
    canal = _find_canal(volume, bone, body)
    vessels = find_large_vessels(volume, body, canal)
    if vessels.mask is not None:
        bone &= ~vessels.mask  # opacified blood is as dense as marrow: it is not bone
    spine = _spine_from_canal(volume, bone, canal)
    skin, normals = skin_with_normals(volume, body)
    box = _bounding_box(body)
    distances = {
        "bone": _distance_in_box(bone, box, spacing),
        "lung or air": _distance_in_box(air, box, spacing),
    }
    found = ["body surface", "bone", "lung and air"]
    if canal.any():
        found += ["spinal canal", "vertebral column"]
        distances["spinal canal"] = _distance_in_box(canal, box, spacing)
    else:
        warnings.append("spinal canal not found: spine proximity and canal avoidance unchecked")
    if vessels.mask is not None:
        found.append("large vessels")
        distances["large vessel"] = _distance_in_box(vessels.mask, box, spacing)
    return Anatomy(
        body=body,
        bone=bone,
        air=air,
        canal=canal,
        spine=spine,
        skin_kji=skin,
        skin_normals_lps=normals,
        skin_lps_mm=volume.geometry.kji_to_lps(skin),
        distance_mm=distances,
        structures_found=tuple(found),
        warnings=tuple(warnings),
        vessel=vessels.mask,
        contrast_enhanced=vessels.contrast_enhanced,
        vessel_warning=vessels.warning,
    )

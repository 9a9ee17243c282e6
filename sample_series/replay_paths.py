"""Ground-truth check of one straight needle path on a case's label volume.

Input: the label volume ``[k, j, i]`` (:class:`~sample_series.tissues.LabelCode` values) and
its :class:`~sample_series.geometry.GridGeometry`, as ``labels.npz`` holds them, the entry and
target in LPS mm and the truth's up direction. Output: :class:`PathReport`.

Definitions (restated in the README's replay section):

- **crossed structures**: the segment entry -> target is sampled every quarter of the
  smallest voxel spacing; each sample takes the label of the voxel whose centre is nearest.
  Bone, lung, spinal canal, large vessel, table and outside air count as crossed. Bone within
  ``bone_allowance_mm`` of the target is the target's own bone (periosteal approach) and is
  allowed; outside air within ``air_allowance_mm`` of the entry is allowed because the entry's
  distance to the skin is checked on its own. Samples outside the image are "outside the image".
- **entry to skin**: distance from the entry to the voxelised skin, i.e. the nearest face
  shared by a body voxel (any label but air and table) and an outside-air voxel. The labels
  hold the truth at voxel centres, so that surface is itself within half a voxel of the true
  skin, and an entry placed on a skin voxel's centre is about half a voxel from it.
- **skin normal**: the mean outward normal of the skin faces within
  ``2 x`` the largest spacing of the nearest one; the entry faces up when the angle between
  that normal and the truth's up direction is under ``max_up_angle_deg``. Without skin faces
  nearby the entry faces up when ``(entry - lesion centre) . up > 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sample_series.geometry import GridGeometry
from sample_series.tissues import LabelCode

Vec3 = tuple[float, float, float]
FloatArray = npt.NDArray[np.float64]

OUTSIDE_IMAGE = "outside the image"
STRUCTURE_NAMES: dict[int, str] = {
    LabelCode.BONE: "bone",
    LabelCode.LUNG: "lung",
    LabelCode.SPINAL_CANAL: "spinal canal",
    LabelCode.LARGE_VESSEL: "large vessel",
    LabelCode.TABLE: "table",
    LabelCode.AIR: "air outside the body",
}
NOT_BODY = (int(LabelCode.AIR), int(LabelCode.TABLE))
SKIN_SEARCH_MM = 15.0  # beyond this the entry is simply "far from the skin"


@dataclass(frozen=True)
class Crossing:
    structure: str
    length_mm: float  # summed length of the samples in that structure
    first_at_mm: float  # distance from the entry of the first such sample


@dataclass(frozen=True)
class SkinContact:
    distance_mm: float  # inf when no skin face lies within SKIN_SEARCH_MM
    entry_outside_body: bool
    normal_lps: Vec3 | None  # outward unit normal of the skin near the entry


@dataclass(frozen=True)
class PathReport:
    length_mm: float
    crossings: tuple[Crossing, ...]
    allowed_bone_mm: float  # bone met within the allowance around the target
    entry_label: str
    target_label: str
    target_to_lesion_mm: float  # 0 inside the lesion; inf when the case has no lesion voxel
    skin: SkinContact
    up_angle_deg: float | None  # between the skin normal and the truth's up direction
    faces_up: bool

    @property
    def crossed(self) -> tuple[str, ...]:
        return tuple(c.structure for c in self.crossings)


def label_name(code: int) -> str:
    try:
        return LabelCode(code).name.lower().replace("_", " ")
    except ValueError:
        return OUTSIDE_IMAGE if code < 0 else f"label {code}"


def labels_at(
    labels: npt.NDArray[np.uint8], geometry: GridGeometry, points_lps_mm: npt.ArrayLike
) -> npt.NDArray[np.int16]:
    """Label of the voxel nearest each (..., 3) LPS point; -1 outside the image."""
    kji = np.rint(geometry.lps_to_kji(points_lps_mm)).astype(np.int64)
    shape = np.asarray(labels.shape)
    inside = np.all((kji >= 0) & (kji < shape), axis=-1)
    out = np.full(kji.shape[:-1], -1, dtype=np.int16)
    k, j, i = (kji[inside][:, a] for a in range(3))
    out[inside] = labels[k, j, i]
    return out


def walk_segment(
    labels: npt.NDArray[np.uint8],
    geometry: GridGeometry,
    entry_lps_mm: npt.ArrayLike,
    target_lps_mm: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int16], FloatArray, float]:
    """Labels sampled along entry -> target, each sample's distance from the entry (mm), and
    the length each sample stands for (mm)."""
    entry = np.asarray(entry_lps_mm, dtype=np.float64)
    target = np.asarray(target_lps_mm, dtype=np.float64)
    length = float(np.linalg.norm(target - entry))
    step = 0.25 * min(geometry.spacing_mm)
    n = max(int(math.ceil(length / step)) + 1, 2)
    t = np.linspace(0.0, 1.0, n)
    points = entry[None, :] + t[:, None] * (target - entry)[None, :]
    return labels_at(labels, geometry, points), t * length, length / (n - 1)


def crossings(
    sampled: npt.NDArray[np.int16],
    along_mm: FloatArray,
    sample_mm: float,
    *,
    length_mm: float,
    bone_allowance_mm: float,
    air_allowance_mm: float,
) -> tuple[tuple[Crossing, ...], float]:
    """Structures met along a walked segment, and the bone length allowed near the target."""
    near_target = (length_mm - along_mm) <= bone_allowance_mm
    near_entry = along_mm <= air_allowance_mm
    bone = sampled == LabelCode.BONE
    allowed = (bone & near_target) | ((sampled == LabelCode.AIR) & near_entry)
    found: list[Crossing] = []
    for code, name in [*STRUCTURE_NAMES.items(), (-1, OUTSIDE_IMAGE)]:
        hit = (sampled == code) & ~allowed
        if hit.any():
            first = float(along_mm[int(np.argmax(hit))])
            found.append(Crossing(name, float(hit.sum()) * sample_mm, first))
    found.sort(key=lambda c: c.first_at_mm)
    return tuple(found), float((bone & near_target).sum()) * sample_mm


def skin_contact(
    labels: npt.NDArray[np.uint8], geometry: GridGeometry, point_lps_mm: npt.ArrayLike
) -> SkinContact:
    """Distance from a point to the voxelised skin (body/outside-air faces) and the skin's
    outward normal there. Assumes orthogonal voxel axes, as every axial CT grid has."""
    p = geometry.lps_to_kji(point_lps_mm)
    spacing = np.asarray(geometry.spacing_mm[::-1])  # (k, j, i)
    axes_lps = geometry.direction_matrix[:, ::-1].T  # row a: unit LPS vector of numpy axis a
    half = np.ceil(SKIN_SEARCH_MM / spacing).astype(int) + 1
    shape = np.asarray(labels.shape)
    lo = np.clip(np.floor(p).astype(int) - half, 0, shape)
    hi = np.clip(np.ceil(p).astype(int) + half + 1, 0, shape)
    block = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    inside = labels_at(labels, geometry, point_lps_mm)
    outside = bool(inside < 0 or int(inside) in NOT_BODY)
    body = ~np.isin(block, NOT_BODY)
    air = block == LabelCode.AIR
    centres: list[FloatArray] = []
    normals: list[FloatArray] = []
    face_axes: list[npt.NDArray[np.intp]] = []
    for a in range(3):
        first = [slice(None)] * 3
        second = [slice(None)] * 3
        first[a], second[a] = slice(0, -1), slice(1, None)
        for sign, (x, y) in ((1.0, (body, air)), (-1.0, (air, body))):
            idx = np.argwhere(x[tuple(first)] & y[tuple(second)]).astype(np.float64)
            if idx.size:
                idx += lo
                idx[:, a] += 0.5
                centres.append(idx)
                normals.append(np.broadcast_to(sign * axes_lps[a], idx.shape))
                face_axes.append(np.full(len(idx), a, dtype=np.intp))
    if not centres:
        return SkinContact(math.inf, outside, None)
    c = np.concatenate(centres)
    n = np.concatenate(normals)
    axis = np.concatenate(face_axes)
    delta = np.abs(p[None, :] - c)
    across = np.maximum(delta - 0.5, 0.0)  # distance within the face's plane, in voxels
    across[np.arange(len(c)), axis] = delta[np.arange(len(c)), axis]
    dist = np.sqrt(((across * spacing[None, :]) ** 2).sum(axis=1))
    best = float(dist.min())
    if best > SKIN_SEARCH_MM:
        return SkinContact(math.inf, outside, None)
    near = dist <= best + 2.0 * float(spacing.max())
    mean = n[near].sum(axis=0)
    norm = float(np.linalg.norm(mean))
    normal = None if norm < 1e-9 else _vec(mean / norm)
    return SkinContact(best, outside, normal)


def distance_to_label(
    labels: npt.NDArray[np.uint8], geometry: GridGeometry, point_lps_mm: npt.ArrayLike, code: int
) -> float:
    """Distance (mm) from a point to the nearest voxel centre carrying ``code``; 0 inside."""
    if labels_at(labels, geometry, point_lps_mm) == code:
        return 0.0
    where = np.argwhere(labels == code)
    if not where.size:
        return math.inf
    points = geometry.kji_to_lps(where)
    return float(np.sqrt(((points - np.asarray(point_lps_mm)) ** 2).sum(axis=1)).min())


def check_path(
    labels: npt.NDArray[np.uint8],
    geometry: GridGeometry,
    entry_lps_mm: npt.ArrayLike,
    target_lps_mm: npt.ArrayLike,
    *,
    up_lps: npt.ArrayLike,
    lesion_centre_lps_mm: npt.ArrayLike,
    bone_allowance_mm: float = 6.0,
    air_allowance_mm: float = 0.0,
    max_up_angle_deg: float = 90.0,
) -> PathReport:
    """Everything the replay checks about one needle against the label volume."""
    entry = np.asarray(entry_lps_mm, dtype=np.float64)
    sampled, along, sample_mm = walk_segment(labels, geometry, entry, target_lps_mm)
    length = float(along[-1])
    found, allowed_bone = crossings(
        sampled,
        along,
        sample_mm,
        length_mm=length,
        bone_allowance_mm=bone_allowance_mm,
        air_allowance_mm=air_allowance_mm,
    )
    skin = skin_contact(labels, geometry, entry)
    up = np.asarray(up_lps, dtype=np.float64)
    up_angle = None
    if skin.normal_lps is not None:
        cos = float(np.clip(np.dot(skin.normal_lps, up) / np.linalg.norm(up), -1.0, 1.0))
        up_angle = math.degrees(math.acos(cos))
        faces_up = up_angle < max_up_angle_deg
    else:
        faces_up = float(np.dot(entry - np.asarray(lesion_centre_lps_mm), up)) > 0.0
    return PathReport(
        length_mm=length,
        crossings=found,
        allowed_bone_mm=allowed_bone,
        entry_label=label_name(int(sampled[0])),
        target_label=label_name(int(sampled[-1])),
        target_to_lesion_mm=distance_to_label(labels, geometry, target_lps_mm, LabelCode.LESION),
        skin=skin,
        up_angle_deg=up_angle,
        faces_up=faces_up,
    )


def half_voxel_diagonal_mm(geometry: GridGeometry) -> float:
    return 0.5 * float(np.linalg.norm(geometry.spacing_mm))


def _vec(v: FloatArray) -> Vec3:
    return (float(v[0]), float(v[1]), float(v[2]))

"""Stage: anatomy, lesion and patient position in; checked straight needle paths out.

Input: :class:`~planner.volume.CTVolume`, :class:`~planner.anatomy.Anatomy`, the lesion mask,
the target point (LPS mm), the patient position and :class:`~planner.rules.TrajectoryRules`.
Output: :class:`TrajectoryResult`: the best path and distinct alternatives (each with entry and
target in LPS mm, depth, needle length, angles, clearance per structure and score terms), the
structures checked, and, when no path passes every check, no needle and the reason.

Every candidate runs from a skin point on the side that faces up to the target. A path is
rejected when any point of it (the target's own bone near the target excepted) comes closer to
bone, lung/air, the spinal canal or a large vessel (where found: contrast-enhanced series)
than the needle radius plus the clearance margin, when it leaves the body, when it is longer
than the longest needle, or when it is too oblique to the skin or too steep craniocaudally
(checks: :mod:`planner.path_check`; best-first search: :mod:`planner.path_search`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from planner.anatomy import Anatomy
from planner.lesion import LesionMask
from planner.path_check import PathChecker
from planner.path_search import Candidates, search_paths
from planner.rules import NEEDLE_OUTER_DIAMETER_MM, TrajectoryRules
from planner.volume import CTVolume

Point = tuple[float, float, float]

# Patient direction that faces up (away from the table) in LPS, per DICOM PatientPosition.
UP_LPS: dict[str, tuple[float, float, float]] = {
    "HFS": (0.0, -1.0, 0.0),
    "FFS": (0.0, -1.0, 0.0),
    "HFP": (0.0, 1.0, 0.0),
    "FFP": (0.0, 1.0, 0.0),
    "HFDL": (-1.0, 0.0, 0.0),  # lying on the left side: the right flank is up
    "FFDL": (-1.0, 0.0, 0.0),
    "HFDR": (1.0, 0.0, 0.0),
    "FFDR": (1.0, 0.0, 0.0),
}
UP_SIDE_NAME = {
    (0.0, -1.0, 0.0): "anterior",
    (0.0, 1.0, 0.0): "posterior",
    (-1.0, 0.0, 0.0): "right",
    (1.0, 0.0, 0.0): "left",
}
FORBIDDEN = ("bone", "lung or air", "spinal canal", "large vessel")
# The skin boundary: halfway between air (-1000 HU) and soft tissue (about 0 HU).
SKIN_AIR_HU = -500.0
SKIN_SEARCH_MM = 6.0


@dataclass(frozen=True)
class ScoreTerms:
    craniocaudal_deg: float
    depth_mm: float
    clearance_mm: float
    skin_angle_deg: float
    total: float


@dataclass(frozen=True)
class NeedlePath:
    entry_lps_mm: Point
    target_lps_mm: Point
    depth_mm: float
    needle_length_mm: float
    in_plane_angle_deg: float
    in_plane_tilt_toward: str
    craniocaudal_angle_deg: float
    craniocaudal_tilt_toward: str
    entry_z_mm: float
    entry_slice_index: int
    lateral_offset_mm: float
    skin_angle_deg: float
    clearance_mm: dict[str, float]
    score: ScoreTerms


@dataclass(frozen=True)
class TrajectoryResult:
    """``candidates_evaluated``: candidate paths the search covered, each either checked or
    unable to beat the chosen paths even with the best clearance that counts;
    ``candidates_checked``: those whose checks ran."""

    needles: tuple[NeedlePath, ...]
    alternatives: tuple[NeedlePath, ...]
    up_side: str
    structures_checked: tuple[str, ...]
    candidates_evaluated: int
    warnings: tuple[str, ...]
    candidates_checked: int = 0


def _direction_name(v: npt.NDArray[np.float64]) -> str:
    axis = int(np.argmax(np.abs(v)))
    names = (("patient right", "patient left"), ("anterior", "posterior"), ("feet", "head"))
    return names[axis][int(v[axis] > 0)]


def _choose_needle(depth_mm: float, rules: TrajectoryRules) -> float | None:
    for length in sorted(rules.needle_lengths_mm):
        if depth_mm + rules.needle_length_margin_mm <= length:
            return length
    return None


def skin_surface_point(
    volume: CTVolume, inside_lps_mm: npt.NDArray[np.float64], direction: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Where the line through a skin voxel, backed out against ``direction``, meets the air.

    The skin voxel's centre can sit up to a voxel inside the skin; the radiologist marks the
    skin itself, so the entry moves out to the air boundary (trilinear HU, sub-voxel steps).
    """
    step = 0.25 * min(volume.geometry.spacing_mm)
    reach = np.arange(0.0, SKIN_SEARCH_MM + step, step)
    pts = inside_lps_mm[None, :] - reach[:, None] * direction[None, :]
    kji = volume.geometry.lps_to_kji(pts).T
    hu = ndimage.map_coordinates(volume.hu, kji, order=1, mode="nearest")
    outside = np.flatnonzero(hu < SKIN_AIR_HU)
    if outside.size == 0 or outside[0] == 0:
        return inside_lps_mm
    last_inside = int(outside[0]) - 1
    return np.asarray(pts[last_inside] - 0.5 * step * direction)


def _candidates(
    volume: CTVolume,
    anatomy: Anatomy,
    target: npt.NDArray[np.float64],
    up: npt.NDArray[np.float64],
    rules: TrajectoryRules,
) -> tuple[Candidates, npt.NDArray[np.intp], bool]:
    """Reachable skin entries: facing up, within the longest needle, the steepest tilt and the
    most oblique skin entry. Returns them (in skin order), their skin indices, and whether any
    up-facing skin lies within reach at all."""
    geo = volume.geometry
    longest = max(rules.needle_lengths_mm) - rules.needle_length_margin_mm
    skin_k = anatomy.skin_kji[:, 0]
    # Only slices within reach can hold an entry (skin_kji is sorted by slice).
    target_k = float(geo.lps_to_kji(target)[0])
    reach_k = longest / geo.spacing_kji_mm()[0] + 1.0
    lo, hi = np.searchsorted(skin_k, [target_k - reach_k, target_k + reach_k + 1.0])
    # Up-facing skin, first on float32 normals with some slack, then exactly on the rest.
    n32 = anatomy.skin_normals_lps[lo:hi]
    rough = n32[:, 0] * float(up[0]) + n32[:, 1] * float(up[1]) + n32[:, 2] * float(up[2])
    slack_cos = math.cos(math.radians(min(rules.max_entry_angle_from_up_deg, 180.0))) - 1e-3
    window = lo + np.flatnonzero(rough >= slack_cos)
    # Column-wise arithmetic: numpy reduces a length-3 axis slowly.
    e = anatomy.skin_lps_mm[window]
    tx, ty, tz = target[0] - e[:, 0], target[1] - e[:, 1], target[2] - e[:, 2]
    depth = np.sqrt(tx * tx + ty * ty + tz * tz)
    near = np.flatnonzero(depth <= longest)
    window, depth, tx, ty, tz = window[near], depth[near], tx[near], ty[near], tz[near]
    normals = anatomy.skin_normals_lps[window].astype(np.float64)
    nx, ny, nz = normals[:, 0], normals[:, 1], normals[:, 2]
    up_angle = np.degrees(np.arccos(np.clip(nx * up[0] + ny * up[1] + nz * up[2], -1, 1)))
    facing = np.flatnonzero(up_angle <= rules.max_entry_angle_from_up_deg)
    window, depth, tx, ty, tz = window[facing], depth[facing], tx[facing], ty[facing], tz[facing]
    nx, ny, nz = nx[facing], ny[facing], nz[facing]
    safe_depth = np.maximum(depth, 1e-9)
    dx, dy, dz = tx / safe_depth, ty / safe_depth, tz / safe_depth
    a = geo.slice_normal
    cc = np.degrees(np.arcsin(np.clip(np.abs(dx * a[0] + dy * a[1] + dz * a[2]), 0, 1)))
    skin_angle = np.degrees(np.arccos(np.clip(-(dx * nx + dy * ny + dz * nz), -1, 1)))
    keep = np.flatnonzero(
        (cc <= rules.max_craniocaudal_angle_deg + 1e-6)
        & (skin_angle <= rules.max_angle_to_skin_normal_deg)
    )
    entries = anatomy.skin_lps_mm[window[keep]]
    found = Candidates(entries, cc[keep], depth[keep], skin_angle[keep])
    return found, window[keep], bool(window.size)


def _needle_path(
    volume: CTVolume,
    anatomy: Anatomy,
    target: npt.NDArray[np.float64],
    entry_voxel_lps: npt.NDArray[np.float64],
    up: npt.NDArray[np.float64],
    terms: ScoreTerms,
    clearance_mm: dict[str, float],
    rules: TrajectoryRules,
) -> NeedlePath:
    """The needle path from a skin voxel's centre (moved out onto the skin) to the target."""
    geo = volume.geometry
    axial_normal = geo.slice_normal
    direction = (target - entry_voxel_lps) / max(
        float(np.linalg.norm(target - entry_voxel_lps)), 1e-9
    )
    entry = skin_surface_point(volume, entry_voxel_lps, direction)
    path_depth = float(np.linalg.norm(target - entry))
    vertical_down = -up  # gravity's vertical for the planned position
    flat = direction - (direction @ axial_normal) * axial_normal
    in_plane = float(
        np.degrees(np.arctan2(np.linalg.norm(np.cross(flat, vertical_down)), flat @ vertical_down))
    )
    horizontal = flat - (flat @ vertical_down) * vertical_down
    entry_kji = geo.lps_to_kji(entry)
    k = int(np.clip(np.rint(entry_kji[0]), 0, geo.shape[0] - 1))
    rows, cols = np.nonzero(anatomy.body[k])
    midline = geo.kji_to_lps(np.array([k, rows.mean(), cols.mean()]))
    length = _choose_needle(path_depth, rules)
    cc = terms.craniocaudal_deg
    return NeedlePath(
        entry_lps_mm=(float(entry[0]), float(entry[1]), float(entry[2])),
        target_lps_mm=(float(target[0]), float(target[1]), float(target[2])),
        depth_mm=path_depth,
        needle_length_mm=float(length) if length else float("nan"),
        in_plane_angle_deg=in_plane,
        in_plane_tilt_toward=_direction_name(horizontal) if in_plane > 0.5 else "none",
        craniocaudal_angle_deg=cc,
        craniocaudal_tilt_toward=(
            _direction_name(direction @ axial_normal * axial_normal) if cc > 0.5 else "none"
        ),
        entry_z_mm=float(entry[2]),
        entry_slice_index=k,
        lateral_offset_mm=float(entry[0] - midline[0]),
        skin_angle_deg=terms.skin_angle_deg,
        clearance_mm=clearance_mm,
        score=terms,
    )


def vessel_warning(anatomy: Anatomy) -> str | None:
    """Why the paths were not checked against large vessels; None when they were."""
    if "large vessel" in anatomy.distance_mm:
        return None
    return anatomy.vessel_warning or (
        "large vessels not identified: check the path against vessels"
    )


def plan_trajectories(
    volume: CTVolume,
    anatomy: Anatomy,
    lesion: LesionMask,
    target_lps_mm: Point,
    patient_position: str,
    rules: TrajectoryRules,
) -> TrajectoryResult:
    """Search straight paths from up-facing skin to the target; best first."""
    up = np.asarray(UP_LPS[patient_position], dtype=np.float64)
    up_side = UP_SIDE_NAME[tuple(float(v) for v in up)]  # type: ignore[index]
    target = np.asarray(target_lps_mm, dtype=np.float64)
    longest = max(rules.needle_lengths_mm) - rules.needle_length_margin_mm
    structures = ["body surface (entry on the up-facing skin, path inside the body)"]
    structures += [s for s in FORBIDDEN if s in anatomy.distance_mm]
    # An unfound canal is already in the anatomy's warnings, which every plan carries.
    warnings: list[str] = []
    unchecked_vessels = vessel_warning(anatomy)
    if unchecked_vessels:
        warnings.append(unchecked_vessels)

    candidates, skin_index, any_in_reach = _candidates(volume, anatomy, target, up, rules)
    if not any_in_reach:
        warnings.append(f"no skin on the {up_side} (up-facing) side within reach of the lesion")
    needle_radius = NEEDLE_OUTER_DIAMETER_MM.get(rules.needle_gauge, 0.72) / 2.0
    required = needle_radius + rules.clearance_margin_mm
    checker = PathChecker(
        volume, anatomy, lesion, target, candidates.entries_lps_mm, required, rules
    )
    found = search_paths(checker, candidates, rules)
    evaluated = found.evaluated
    if found.chosen.size == 0:
        counts = ", ".join(f"{v} {k}" for k, v in found.failures.items() if v)
        if evaluated == 0:
            reason = (
                f"no reachable skin entry: none on the {up_side} side within {longest:.0f} mm, "
                f"{rules.max_craniocaudal_angle_deg:.0f}° craniocaudal and "
                f"{rules.max_angle_to_skin_normal_deg:.0f}° to the skin"
            )
        else:
            reason = (
                f"no safe straight path within {longest:.0f} mm: of {evaluated} paths, {counts}"
            )
        return TrajectoryResult(
            (), (), up_side, tuple(structures), evaluated, (*warnings, reason), found.checked
        )

    paths = []
    for n, s in enumerate(found.chosen):
        terms = ScoreTerms(
            craniocaudal_deg=float(candidates.craniocaudal_deg[s]),
            depth_mm=float(candidates.depth_mm[s]),
            clearance_mm=float(found.min_clearance_mm[n]),
            skin_angle_deg=float(candidates.skin_angle_deg[s]),
            total=float(found.scores[n]),
        )
        clearance = {
            name: float(c[n]) for name, c in found.clearance_mm.items() if np.isfinite(c[n])
        }
        entry_voxel = anatomy.skin_lps_mm[skin_index[s]]
        paths.append(
            _needle_path(volume, anatomy, target, entry_voxel, up, terms, clearance, rules)
        )
    return TrajectoryResult(
        needles=(paths[0],),
        alternatives=tuple(paths[1:]),
        up_side=up_side,
        structures_checked=tuple(structures),
        candidates_evaluated=evaluated,
        warnings=tuple(warnings),
        candidates_checked=found.checked,
    )

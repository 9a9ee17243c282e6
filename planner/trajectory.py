"""Stage: anatomy, lesion and patient position in; checked straight needle paths out.

Input: :class:`~planner.volume.CTVolume`, :class:`~planner.anatomy.Anatomy`, the lesion mask,
the target point (LPS mm), the patient position and :class:`~planner.rules.TrajectoryRules`.
Output: :class:`TrajectoryResult`: the best path and distinct alternatives (each with entry and
target in LPS mm, depth, needle length, angles, clearance per structure and score terms), the
structures checked, and, when no path passes every check, no needle and the reason.

Every candidate runs from a skin point on the side that faces up to the target. A path is
rejected when any point of it (the target's own bone near the target excepted) comes closer to
bone, lung/air or the spinal canal than the needle radius plus the clearance margin, when it
leaves the body, when it is longer than the longest needle, or when it is too oblique to the
skin or too steep craniocaudally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from planner.anatomy import Anatomy
from planner.lesion import LesionMask
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
FORBIDDEN = ("bone", "lung or air", "spinal canal")
MAX_CANDIDATES = 6000
SKIN_SKIP_MM = 1.5
MIN_ALTERNATIVE_SEPARATION_MM = 15.0
# Second pass when the first finds nothing: dense search around the closest misses.
NEAR_MISS_COUNT = 40
NEAR_MISS_RADIUS_MM = 10.0
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
    needles: tuple[NeedlePath, ...]
    alternatives: tuple[NeedlePath, ...]
    up_side: str
    structures_checked: tuple[str, ...]
    candidates_evaluated: int
    warnings: tuple[str, ...]


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


class _PathCheck:
    """Checks straight paths from skin entries (indices into ``entries``) to the target."""

    def __init__(
        self,
        volume: CTVolume,
        anatomy: Anatomy,
        lesion: LesionMask,
        entries: npt.NDArray[np.float64],
        to_target: npt.NDArray[np.float64],
        depth: npt.NDArray[np.float64],
        required_mm: float,
        rules: TrajectoryRules,
    ) -> None:
        self.volume, self.anatomy, self.lesion = volume, anatomy, lesion
        self.entries, self.to_target, self.depth = entries, to_target, depth
        self.required_mm, self.rules = required_mm, rules

    def __call__(
        self, idx: npt.NDArray[np.intp]
    ) -> tuple[
        npt.NDArray[np.bool_], dict[str, npt.NDArray[np.float64]], dict[str, npt.NDArray[np.bool_]]
    ]:
        """(passes every check, clearance per structure, rejection reasons) per path."""
        geo, anatomy, lesion, rules = self.volume.geometry, self.anatomy, self.lesion, self.rules
        entries, to_target, depth = self.entries, self.to_target, self.depth
        longest = max(rules.needle_lengths_mm) - rules.needle_length_margin_mm
        step = 0.5 * min(geo.spacing_mm)
        n_samples = int(math.ceil(longest / step)) + 1
        t = np.linspace(0.0, 1.0, n_samples)
        pts = entries[idx, None, :] + t[None, :, None] * to_target[idx, None, :]
        along_mm = t[None, :] * depth[idx, None]  # distance from the entry
        from_target = depth[idx, None] - along_mm
        pk = np.rint(geo.lps_to_kji(pts)).astype(np.intp)
        for d in range(3):
            np.clip(pk[..., d], 0, geo.shape[d] - 1, out=pk[..., d])
        lookup = (pk[..., 0], pk[..., 1], pk[..., 2])
        active = along_mm >= SKIN_SKIP_MM
        k0, j0, i0 = lesion.offset_kji
        lk, lj, li = pk[..., 0] - k0, pk[..., 1] - j0, pk[..., 2] - i0
        dk, dj, di = lesion.mask.shape
        in_box = (lk >= 0) & (lk < dk) & (lj >= 0) & (lj < dj) & (li >= 0) & (li < di)
        inside_lesion = np.zeros(in_box.shape, dtype=bool)
        inside_lesion[in_box] = lesion.mask[lk[in_box], lj[in_box], li[in_box]]
        # Only the target's own periosteum may be touched: bone counts everywhere except
        # within the allowance of the target and inside the lesion itself. (Exempting the
        # whole way from the lesion's edge let a leaked outline carry a path across bone.)
        lesion_soft_tissue = inside_lesion & ~anatomy.bone[lookup]
        bone_exempt = (from_target <= rules.target_bone_allowance_mm) | lesion_soft_tissue

        rejected: dict[str, npt.NDArray[np.bool_]] = {}
        inside = anatomy.body[lookup] | ~active | inside_lesion
        rejected["leaves the body"] = ~np.all(inside, axis=1)
        clearance: dict[str, npt.NDArray[np.float64]] = {}
        for name, dist in anatomy.distance_mm.items():
            values = np.where(active, dist[lookup], np.inf)
            if name == "bone":
                values = np.where(bone_exempt, np.inf, values)
            clearance[name] = values.min(axis=1)
            rejected[f"crosses {name}"] = clearance[name] < self.required_mm
        ok = ~np.any(np.stack(list(rejected.values())), axis=0)
        return ok, clearance, rejected


def _near_misses(
    entries: npt.NDArray[np.float64],
    reachable: npt.NDArray[np.intp],
    tried: npt.NDArray[np.intp],
    clearance: dict[str, npt.NDArray[np.float64]],
    rejected: dict[str, npt.NDArray[np.bool_]],
) -> npt.NDArray[np.intp]:
    """Untried entries near the tried paths that kept the most clearance."""
    if tried.size == 0:
        return tried
    closest = np.minimum.reduce(list(clearance.values()))
    closest = np.where(rejected["leaves the body"], -np.inf, closest)
    best = tried[np.argsort(-closest)[:NEAR_MISS_COUNT]]
    tree = cKDTree(entries[reachable])
    near = {
        i for group in tree.query_ball_point(entries[best], r=NEAR_MISS_RADIUS_MM) for i in group
    }
    extra = np.setdiff1d(reachable[sorted(near)], tried)
    if extra.size > MAX_CANDIDATES:
        extra = extra[np.linspace(0, extra.size - 1, MAX_CANDIDATES).astype(int)]
    return extra


def plan_trajectories(
    volume: CTVolume,
    anatomy: Anatomy,
    lesion: LesionMask,
    target_lps_mm: Point,
    patient_position: str,
    rules: TrajectoryRules,
) -> TrajectoryResult:
    """Search straight paths from up-facing skin to the target; best first."""
    geo = volume.geometry
    up = np.asarray(UP_LPS[patient_position])
    up_side = UP_SIDE_NAME[tuple(float(v) for v in up)]  # type: ignore[index]
    target = np.asarray(target_lps_mm, dtype=np.float64)
    longest = max(rules.needle_lengths_mm) - rules.needle_length_margin_mm
    structures = ["body surface (entry on the up-facing skin, path inside the body)"]
    structures += [s for s in FORBIDDEN if s in anatomy.distance_mm]
    warnings: list[str] = []
    if not anatomy.canal.any():
        warnings.append("spinal canal not identified: the path was not checked against it")
    warnings.append("large vessels are not segmented yet: check the path against vessels")

    # Candidate entries: skin voxels within reach whose outward normal faces up.
    skin = anatomy.skin_kji
    entries = geo.kji_to_lps(skin)
    normals = anatomy.skin_normals_lps.astype(np.float64)
    to_target = target - entries
    depth = np.linalg.norm(to_target, axis=1)
    dirs = to_target / np.maximum(depth[:, None], 1e-9)
    axial_normal = geo.slice_normal
    cc = np.degrees(np.arcsin(np.clip(np.abs(dirs @ axial_normal), 0, 1)))
    skin_angle = np.degrees(np.arccos(np.clip(-(dirs * normals).sum(axis=1), -1, 1)))
    up_angle = np.degrees(np.arccos(np.clip(normals @ up, -1, 1)))
    keep = (
        (up_angle <= rules.max_entry_angle_from_up_deg)
        & (depth <= longest)
        & (cc <= rules.max_craniocaudal_angle_deg + 1e-6)
        & (skin_angle <= rules.max_angle_to_skin_normal_deg)
    )
    if not np.any((up_angle <= rules.max_entry_angle_from_up_deg) & (depth <= longest)):
        warnings.append(f"no skin on the {up_side} (up-facing) side within reach of the lesion")
    needle_radius = NEEDLE_OUTER_DIAMETER_MM.get(rules.needle_gauge, 0.72) / 2.0
    required = needle_radius + rules.clearance_margin_mm
    reachable = np.flatnonzero(keep)
    idx = reachable
    if idx.size > MAX_CANDIDATES:
        idx = idx[np.linspace(0, idx.size - 1, MAX_CANDIDATES).astype(int)]
    check = _PathCheck(volume, anatomy, lesion, entries, to_target, depth, required, rules)
    ok, clearance, rejected = check(idx)
    if not ok.any() and reachable.size > idx.size:
        # The safe window (e.g. between two transverse processes) can be narrower than the
        # first pass's spacing: look again densely around the paths that came closest.
        extra = _near_misses(entries, reachable, idx, clearance, rejected)
        if extra.size:
            ok2, clearance2, rejected2 = check(extra)
            idx = np.concatenate([idx, extra])
            ok = np.concatenate([ok, ok2])
            clearance = {k: np.concatenate([v, clearance2[k]]) for k, v in clearance.items()}
            rejected = {k: np.concatenate([v, rejected2[k]]) for k, v in rejected.items()}

    evaluated = int(idx.size)
    if not ok.any():
        counts = ", ".join(f"{int(v.sum())} {k}" for k, v in rejected.items() if v.any())
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
        return TrajectoryResult((), (), up_side, tuple(structures), evaluated, (*warnings, reason))

    min_clear = np.minimum.reduce([np.minimum(c, 20.0) for c in clearance.values()])
    sel = idx[ok]
    scores = (
        rules.weight_craniocaudal_per_deg * cc[sel]
        + rules.weight_depth_per_mm * depth[sel]
        - rules.weight_clearance_per_mm * min_clear[ok]
        + rules.weight_skin_angle_per_deg * skin_angle[sel]
    )
    order = np.argsort(scores)
    chosen: list[int] = []
    for o in order:
        e = entries[sel[o]]
        if all(
            np.linalg.norm(e - entries[sel[c]]) >= MIN_ALTERNATIVE_SEPARATION_MM for c in chosen
        ):
            chosen.append(int(o))
        if len(chosen) > rules.alternatives:
            break

    body_full = anatomy.body
    vertical_down = -up  # gravity's vertical for the planned position
    paths = []
    for o in chosen:
        s = int(sel[o])
        direction = dirs[s]
        entry = skin_surface_point(volume, entries[s], direction)
        path_depth = float(np.linalg.norm(target - entry))
        flat = direction - (direction @ axial_normal) * axial_normal
        in_plane = float(
            np.degrees(
                np.arctan2(np.linalg.norm(np.cross(flat, vertical_down)), flat @ vertical_down)
            )
        )
        horizontal = flat - (flat @ vertical_down) * vertical_down
        entry_kji = geo.lps_to_kji(entry)
        k = int(np.clip(np.rint(entry_kji[0]), 0, geo.shape[0] - 1))
        rows, cols = np.nonzero(body_full[k])
        midline = geo.kji_to_lps(np.array([k, rows.mean(), cols.mean()]))
        length = _choose_needle(path_depth, rules)
        paths.append(
            NeedlePath(
                entry_lps_mm=(float(entry[0]), float(entry[1]), float(entry[2])),
                target_lps_mm=(float(target[0]), float(target[1]), float(target[2])),
                depth_mm=path_depth,
                needle_length_mm=float(length) if length else float("nan"),
                in_plane_angle_deg=in_plane,
                in_plane_tilt_toward=_direction_name(horizontal) if in_plane > 0.5 else "none",
                craniocaudal_angle_deg=float(cc[s]),
                craniocaudal_tilt_toward=(
                    _direction_name(direction @ axial_normal * axial_normal)
                    if cc[s] > 0.5
                    else "none"
                ),
                entry_z_mm=float(entry[2]),
                entry_slice_index=k,
                lateral_offset_mm=float(entry[0] - midline[0]),
                skin_angle_deg=float(skin_angle[s]),
                clearance_mm={
                    name: float(c[ok][o]) for name, c in clearance.items() if np.isfinite(c[ok][o])
                },
                score=ScoreTerms(
                    craniocaudal_deg=float(cc[s]),
                    depth_mm=float(depth[s]),
                    clearance_mm=float(min_clear[ok][o]),
                    skin_angle_deg=float(skin_angle[s]),
                    total=float(scores[o]),
                ),
            )
        )
    return TrajectoryResult(
        needles=(paths[0],),
        alternatives=tuple(paths[1:]),
        up_side=up_side,
        structures_checked=tuple(structures),
        candidates_evaluated=evaluated,
        warnings=tuple(warnings),
    )

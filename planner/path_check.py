"""Safety checks of straight needle paths from skin entries to one target.

Input: the volume geometry, :class:`~planner.anatomy.Anatomy`, the lesion mask, the target and
the candidate entries (LPS mm), the clearance every forbidden structure needs (needle radius +
margin, mm) and :class:`~planner.rules.TrajectoryRules`.
Output: per path, whether it passes every check, its clearance per structure (mm) and the
checks it failed (:class:`PathChecks`).

Each path is sampled at ``n`` points evenly spaced from the entry to the target, ``n`` set so
that the longest possible path is sampled every half of the smallest voxel spacing; each sample
takes the values of its nearest voxel. A path fails when a sample beyond the first
``SKIN_SKIP_MM`` lies outside the body (and outside the lesion), or when any structure's
distance map at a sample is under the required clearance. Bone is not counted within
``target_bone_allowance_mm`` of the target nor inside the lesion's own soft tissue: only the
target's periosteum may be touched.

:meth:`PathChecker.screen` applies the same checks to every ``SCREEN_STRIDE``-th sample only:
a path it rejects is rejected by :meth:`PathChecker.check` too (a subset of the same samples),
so the full check runs on the paths that pass the screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.anatomy import Anatomy
from planner.lesion import LesionMask
from planner.rules import TrajectoryRules
from planner.volume import CTVolume

SKIN_SKIP_MM = 1.5
SCREEN_STRIDE = 4
LEAVES_BODY = "leaves the body"

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PathChecks:
    """Per path (in the order asked): passes every check, the smallest distance (mm) to each
    structure along it (inf when never counted), and each failed check by name."""

    ok: BoolArray
    clearance_mm: dict[str, npt.NDArray[np.float32]]
    rejected: dict[str, BoolArray]


def _affine_kji(volume: CTVolume, lps_mm: FloatArray) -> FloatArray:
    """LPS mm (n, 3) to continuous (k, j, i) indices, without BLAS (3x3 products are faster
    element-wise than through a threaded matrix product on a loaded machine)."""
    a = volume.geometry.affine
    m = np.linalg.inv(a[:3, :3])[::-1]  # rows give k, j, i
    p = lps_mm - a[:3, 3]
    return p[:, :1] * m[:, 0] + p[:, 1:2] * m[:, 1] + p[:, 2:3] * m[:, 2]


class PathChecker:
    """Checks straight paths from ``entries_lps_mm[idx]`` to one target."""

    def __init__(
        self,
        volume: CTVolume,
        anatomy: Anatomy,
        lesion: LesionMask,
        target_lps_mm: FloatArray,
        entries_lps_mm: FloatArray,
        required_mm: float,
        rules: TrajectoryRules,
    ) -> None:
        geo = volume.geometry
        self.shape = geo.shape
        self.required_mm = required_mm
        self.allowance_mm = rules.target_bone_allowance_mm
        longest = max(rules.needle_lengths_mm) - rules.needle_length_margin_mm
        step = 0.5 * min(geo.spacing_mm)
        self.t = np.linspace(0.0, 1.0, int(math.ceil(longest / step)) + 1)
        self.entry_kji = _affine_kji(volume, entries_lps_mm)
        target_kji = _affine_kji(volume, target_lps_mm[None, :])[0]
        self.span_kji = target_kji[None, :] - self.entry_kji
        self.depth = np.linalg.norm(target_lps_mm[None, :] - entries_lps_mm, axis=1)
        self.body = anatomy.body.reshape(-1)
        self.bone = anatomy.bone.reshape(-1)
        self.maps = {name: d.reshape(-1) for name, d in anatomy.distance_mm.items()}
        self.lesion = lesion
        # A sample farther than this from the target cannot fall in a lesion voxel (the
        # farthest corner of the lesion's box plus half a voxel diagonal); none is looked up
        # there.
        lo = np.asarray(lesion.offset_kji)
        corners = lo + np.indices((2, 2, 2)).reshape(3, -1).T * (np.asarray(lesion.mask.shape) - 1)
        half_diagonal = 0.5 * float(np.linalg.norm(geo.spacing_mm))
        farthest = np.linalg.norm(geo.kji_to_lps(corners) - target_lps_mm, axis=1).max()
        self.lesion_reach_mm = float(farthest) + half_diagonal + 1e-6
        if np.any(lo == 0) or np.any(lo + lesion.mask.shape >= geo.shape):
            self.lesion_reach_mm = math.inf  # clipped samples may land on it from anywhere

    def check(self, idx: npt.NDArray[np.intp]) -> PathChecks:
        """Every check on every sample of the paths ``idx``."""
        return self._run(idx, self.t)

    def screen(self, idx: npt.NDArray[np.intp]) -> BoolArray:
        """False for paths certain to fail :meth:`check` (from every SCREEN_STRIDE-th sample)."""
        return self._run(idx, self.t[::SCREEN_STRIDE]).ok

    def _lesion_lookup(
        self, k: npt.NDArray[np.intp], j: npt.NDArray[np.intp], i: npt.NDArray[np.intp]
    ) -> BoolArray:
        k0, j0, i0 = self.lesion.offset_kji
        dk, dj, di = self.lesion.mask.shape
        lk, lj, li = k - k0, j - j0, i - i0
        inside = (lk >= 0) & (lk < dk) & (lj >= 0) & (lj < dj) & (li >= 0) & (li < di)
        out = np.zeros(k.shape, dtype=bool)
        out[inside] = self.lesion.mask[lk[inside], lj[inside], li[inside]]
        return out

    def _run(self, idx: npt.NDArray[np.intp], t: FloatArray) -> PathChecks:
        depth = self.depth[idx, None]
        along_mm = t[None, :] * depth
        from_target = depth - along_mm
        kji = []
        for d in range(3):
            c = np.rint(self.entry_kji[idx, d, None] + t[None, :] * self.span_kji[idx, d, None])
            np.clip(c, 0, self.shape[d] - 1, out=c)
            kji.append(c.astype(np.intp))
        k, j, i = kji
        flat = (k * self.shape[1] + j) * self.shape[2] + i
        active = along_mm >= SKIN_SKIP_MM
        inside_lesion = np.zeros(flat.shape, dtype=bool)
        near = from_target <= self.lesion_reach_mm
        if near.any():
            inside_lesion[near] = self._lesion_lookup(k[near], j[near], i[near])
        # Only the target's own periosteum may be touched: bone counts everywhere except
        # within the allowance of the target and inside the lesion itself (bone voxels of a
        # leaked outline still count).
        bone_exempt = from_target <= self.allowance_mm
        if inside_lesion.any():
            soft = inside_lesion.copy()
            soft[inside_lesion] = ~self.bone[flat[inside_lesion]]
            bone_exempt |= soft

        rejected: dict[str, BoolArray] = {}
        inside = self.body[flat] | ~active | inside_lesion
        rejected[LEAVES_BODY] = ~np.all(inside, axis=1)
        clearance: dict[str, npt.NDArray[np.float32]] = {}
        counted_bone = active & ~bone_exempt
        for name, dist in self.maps.items():
            where = counted_bone if name == "bone" else active
            values = dist.take(flat)
            clearance[name] = np.minimum.reduce(values, axis=1, where=where, initial=np.inf)
            rejected[f"crosses {name}"] = clearance[name] < self.required_mm
        ok = ~np.any(np.stack(list(rejected.values())), axis=0)
        return PathChecks(ok, clearance, rejected)

"""Ground truth of a sample case, with the clinical rules of CLINICAL.md restated on purpose.

Nothing here comes from ``planner``: the QA compares the planner against figures computed a
second, independent way. Inputs: the case spec, its patient model, the image grid and the
label volume. Output: :class:`GroundTruth`, a frozen, JSON-serialisable record.

Rules (defaults in :class:`TruthSettings`, all configurable):
- caliper volume V = L x W**2 / 2 / 1000 mL with L, W from :mod:`sample_series.lesion`;
- anaesthetic tiers V < 10 -> 1.5 mL, 10 <= V <= 20 -> 5, 20 < V <= 50 -> 10, V > 50 -> 15;
- borderline when the interval [V(L - e, W - e), V(L + e, W + e)], e = one voxel's largest
  spacing, meets more than one tier; the other tier is reported as the alternative;
- steroid: cortivazol when the lesion lies within 30 mm of a vertebra (any element, the
  sacrum included) or the spinal canal, else triamcinolone; the distance is reported.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from sample_series.anatomy import PatientModel, build_patient_model
from sample_series.geometry import GridGeometry, down_direction, lps_box_grid, up_direction
from sample_series.lesion import LesionShape, Lobe, surface_points
from sample_series.raster import rasterize
from sample_series.spec import CaseSpec
from sample_series.tissues import SPINE_GROUPS, LabelCode, group_mask_lut, tissues

Vec3 = tuple[float, float, float]
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DoseTier:
    lower_ml: float | None  # None: no lower bound
    upper_ml: float | None  # None: no upper bound
    lower_inclusive: bool
    upper_inclusive: bool
    anaesthetic_ml: float

    def contains(self, volume_ml: float) -> bool:
        if self.lower_ml is not None and (
            volume_ml < self.lower_ml or (volume_ml == self.lower_ml and not self.lower_inclusive)
        ):
            return False
        return not (
            self.upper_ml is not None
            and (
                volume_ml > self.upper_ml
                or (volume_ml == self.upper_ml and not self.upper_inclusive)
            )
        )


DEFAULT_DOSE_TIERS: tuple[DoseTier, ...] = (
    DoseTier(None, 10.0, False, False, 1.5),
    DoseTier(10.0, 20.0, True, True, 5.0),
    DoseTier(20.0, 50.0, False, True, 10.0),
    DoseTier(50.0, None, False, False, 15.0),
)


@dataclass(frozen=True)
class TruthSettings:
    dose_tiers: tuple[DoseTier, ...] = DEFAULT_DOSE_TIERS
    uncertainty_voxels: float = 1.0
    near_spine_mm: float = 30.0
    near_spine_steroid: str = "cortivazol"
    peripheral_steroid: str = "triamcinolone"
    distance_step_mm: float = 1.0


def anaesthetic_tier(
    volume_ml: float, tiers: tuple[DoseTier, ...] = DEFAULT_DOSE_TIERS
) -> DoseTier:
    for tier in tiers:
        if tier.contains(volume_ml):
            return tier
    raise ValueError(f"no dose tier covers a volume of {volume_ml} mL")


def caliper_volume_ml(length_mm: float, width_mm: float) -> float:
    return length_mm * width_mm * width_mm / 2.0 / 1000.0


@dataclass(frozen=True)
class Borderline:
    interval_ml: tuple[float, float]
    anaesthetic_ml: tuple[float, ...]  # every tier the interval meets, in tier order
    borderline: bool
    alternative_anaesthetic_ml: float | None


def borderline_check(
    length_mm: float,
    width_mm: float,
    error_mm: float,
    tiers: tuple[DoseTier, ...] = DEFAULT_DOSE_TIERS,
) -> Borderline:
    """Tiers met by the caliper volume when L and W are both off by up to ``error_mm``."""
    lo = caliper_volume_ml(max(length_mm - error_mm, 0.0), max(width_mm - error_mm, 0.0))
    hi = caliper_volume_ml(length_mm + error_mm, width_mm + error_mm)
    met = tuple(
        t.anaesthetic_ml
        for t in tiers
        if not (
            t.upper_ml is not None
            and (lo > t.upper_ml or (lo == t.upper_ml and not t.upper_inclusive))
        )
        and not (
            t.lower_ml is not None
            and (hi < t.lower_ml or (hi == t.lower_ml and not t.lower_inclusive))
        )
    )
    nominal = anaesthetic_tier(caliper_volume_ml(length_mm, width_mm), tiers).anaesthetic_ml
    others = [a for a in met if a != nominal]
    alternative = None
    if others:  # the tier across the nearer boundary
        v = caliper_volume_ml(length_mm, width_mm)
        alternative = min(others, key=lambda a: abs(_tier_edge(tiers, nominal, a) - v))
    return Borderline((lo, hi), met, len(met) > 1, alternative)


def _tier_edge(tiers: tuple[DoseTier, ...], nominal: float, other: float) -> float:
    t_nom = next(t for t in tiers if t.anaesthetic_ml == nominal)
    t_oth = next(t for t in tiers if t.anaesthetic_ml == other)
    edges = [e for e in (t_nom.lower_ml, t_nom.upper_ml) if e is not None]
    ref = [e for e in (t_oth.lower_ml, t_oth.upper_ml) if e is not None]
    return min(edges, key=lambda e: min(abs(e - r) for r in ref))


@dataclass(frozen=True)
class LesionSurroundings:
    spine_distance_mm: float
    replaced_fractions: tuple[tuple[str, float], ...]  # tissue group -> fraction of lesion


@lru_cache(maxsize=64)
def lesion_surroundings(
    model: PatientModel, shape: LesionShape, step_mm: float, reach_mm: float
) -> LesionSurroundings:
    """What the lesion replaced and how far it is from the spine, from the anatomy *without*
    the lesion painted on an LPS grid of ``step_mm`` (grid-independent; the distance is that
    between the exact lesion surface and the spine's boundary voxels, good to ~``step_mm``).
    Beyond ``reach_mm`` the spine is searched on a coarse 4 mm grid."""
    lo, hi = shape.bounds()
    grid = lps_box_grid(lo - reach_mm, hi + reach_mm, step_mm)
    ids = rasterize(model.primitives, grid)
    # lesion membership only where the lesion can be: its bounding block
    k0, j0, i0 = np.floor(grid.lps_to_kji(lo)).astype(int)
    k1, j1, i1 = np.ceil(grid.lps_to_kji(hi)).astype(int) + 1
    block = (slice(k0, k1), slice(j0, j1), slice(i0, i1))
    kk, jj, ii = np.meshgrid(*(np.arange(s.start, s.stop) for s in block), indexing="ij")
    inside = shape.contains(grid.index_to_lps(np.stack([ii, jj, kk], axis=-1)))
    under = ids[block][inside]
    groups = [t.group for t in tissues()]
    counts: dict[str, int] = {}
    for tid, n in zip(*np.unique(under, return_counts=True), strict=True):
        counts[groups[tid]] = counts.get(groups[tid], 0) + int(n)
    total = max(sum(counts.values()), 1)
    fractions = tuple(sorted(((g, n / total) for g, n in counts.items()), key=lambda x: -x[1]))
    spine_lut = group_mask_lut(SPINE_GROUPS)
    if spine_lut[under].any():
        return LesionSurroundings(0.0, fractions)
    surface = surface_points(shape, per_lobe=1500)
    for g, labels in ((grid, ids), (None, None)):
        if g is None:  # nothing of the spine within reach: look further, coarsely
            g = lps_box_grid(lo - 200.0, hi + 200.0, 4.0)
            labels = rasterize(model.primitives, g)
        spine = spine_lut[labels]
        if spine.any():
            return LesionSurroundings(_min_distance(_boundary_points(spine, g), surface), fractions)
    return LesionSurroundings(float("inf"), fractions)


def _boundary_points(mask: npt.NDArray[np.bool_], grid: GridGeometry) -> npt.NDArray[np.float64]:
    """LPS centres of mask voxels with a 6-neighbour outside the mask."""
    padded = np.pad(mask, 1)
    interior = mask.copy()
    for axis in range(3):
        for shift in (1, -1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return grid.kji_to_lps(np.argwhere(mask & ~interior))


def _min_distance(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    best = np.inf
    b2 = (b * b).sum(axis=1)
    for start in range(0, len(a), 4096):
        chunk = a[start : start + 4096]
        d2 = (chunk * chunk).sum(axis=1)[:, None] + b2[None, :] - 2.0 * chunk @ b.T
        best = min(best, float(d2.min()))
    return float(np.sqrt(max(best, 0.0)))


@dataclass(frozen=True)
class GroundTruth:
    case_name: str
    description: str
    region: str
    site: str
    side: str
    host_bone: str
    patient_position: str
    contrast: bool
    seed: int
    seed_lps_mm: Vec3
    lesion_centre_lps_mm: Vec3
    lobes: tuple[Lobe, ...]
    length_mm: float
    width_mm: float
    length_axis_lps: Vec3
    width_axis_lps: Vec3
    length_endpoints_lps_mm: tuple[Vec3, Vec3]
    width_endpoints_lps_mm: tuple[Vec3, Vec3]
    caliper_volume_ml: float
    voxel_volume_ml: float  # volume of the continuous shape (what a voxel count estimates)
    label_volume_ml: float  # lesion voxels of this grid x voxel volume
    anaesthetic_ml: float
    borderline: bool
    volume_interval_ml: tuple[float, float]
    uncertainty_mm: float
    alternative_anaesthetic_ml: float | None
    steroid: str
    spine_distance_mm: float
    cortical_breach: bool
    replaced_fractions: tuple[tuple[str, float], ...]
    up_direction_lps: Vec3
    down_direction_lps: Vec3
    needle_access: str
    path_expected: bool
    no_path_reason: str | None
    access_note: str
    geometry: GridGeometry
    settings: TruthSettings = field(default_factory=TruthSettings)
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroundTruth:
        d = {k: _tuples(v) for k, v in data.items()}
        d["lobes"] = tuple(Lobe(**_tuple_dict(lobe)) for lobe in data["lobes"])
        d["geometry"] = GridGeometry(**_tuple_dict(data["geometry"]))
        s = dict(data["settings"])
        s["dose_tiers"] = tuple(DoseTier(**t) for t in s["dose_tiers"])
        d["settings"] = TruthSettings(**s)
        return cls(**d)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=True)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _tuple_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _tuples(v) for k, v in d.items()}


def compute_truth(
    spec: CaseSpec,
    grid: GridGeometry,
    labels: npt.NDArray[np.uint8],
    settings: TruthSettings = TruthSettings(),
) -> GroundTruth:
    shape = spec.lesion
    m = shape.measures
    model = build_patient_model(spec.region, spec.position, spec.contrast)
    env = lesion_surroundings(model, shape, settings.distance_step_mm, settings.near_spine_mm + 5.0)
    caliper = caliper_volume_ml(m.length_mm, m.width_mm)
    error_mm = settings.uncertainty_voxels * max(grid.spacing_mm)
    bl = borderline_check(m.length_mm, m.width_mm, error_mm, settings.dose_tiers)
    near = env.spine_distance_mm <= settings.near_spine_mm
    fractions = dict(env.replaced_fractions)
    non_bone = sum(f for g, f in fractions.items() if g not in _BONE_GROUPS)
    seed = shape.seed_lps_mm
    access = spec.access.value
    return GroundTruth(
        case_name=spec.name,
        description=spec.description,
        region=spec.region.value,
        site=spec.site.value,
        side=spec.side,
        host_bone=spec.bone_group,
        patient_position=spec.position.value,
        contrast=spec.contrast,
        seed=spec.seed,
        seed_lps_mm=(float(seed[0]), float(seed[1]), float(seed[2])),
        lesion_centre_lps_mm=m.centroid_lps_mm,
        lobes=shape.lobes,
        length_mm=m.length_mm,
        width_mm=m.width_mm,
        length_axis_lps=m.length_axis,
        width_axis_lps=m.width_axis,
        length_endpoints_lps_mm=m.length_endpoints_lps_mm,
        width_endpoints_lps_mm=m.width_endpoints_lps_mm,
        caliper_volume_ml=caliper,
        voxel_volume_ml=m.volume_ml,
        label_volume_ml=float(np.count_nonzero(labels == LabelCode.LESION)) * grid.voxel_volume_ml,
        anaesthetic_ml=anaesthetic_tier(caliper, settings.dose_tiers).anaesthetic_ml,
        borderline=bl.borderline,
        volume_interval_ml=bl.interval_ml,
        uncertainty_mm=error_mm,
        alternative_anaesthetic_ml=bl.alternative_anaesthetic_ml,
        steroid=settings.near_spine_steroid if near else settings.peripheral_steroid,
        spine_distance_mm=env.spine_distance_mm,
        cortical_breach=non_bone > 0.02,
        replaced_fractions=env.replaced_fractions,
        up_direction_lps=up_direction(spec.position),
        down_direction_lps=down_direction(spec.position),
        needle_access=access,
        path_expected=access != "none",
        no_path_reason=spec.access_note if access == "none" else None,
        access_note=spec.access_note,
        geometry=grid,
        settings=settings,
    )


_BONE_GROUPS = frozenset(t.group for t in tissues() if t.label == LabelCode.BONE)

"""Large blood vessels on a contrast-enhanced CT: HU volume and anatomy masks in, vessel mask out.

Input: :class:`~planner.volume.CTVolume` (HU grid and the header's ContrastBolusAgent), the
body mask and the spinal canal mask on the same grid ([slice, row, column]).
Output: :class:`VesselFinding`: the mask of the opacified large vessels (aorta, cardiac
chambers, large arteries) when the series is contrast-enhanced and they were found, whether
the series is contrast-enhanced (and how that was decided), and the warning to give when the
vessels could not be checked.

Opacified blood is 150-500 HU, like trabecular bone, so density alone cannot tell them apart.
A blood pool is told from bone by its shape and surroundings (each test below is one
constant): it is thick (its core lies ``CORE_RADIUS_MM`` inside the 150-500 HU region),
homogeneous (small spread of its core), has no cortical rim (its edge is not brighter than its
core, nothing denser than blood lines it or lies inside it), lies deep (never within
``MIN_SKIN_DEPTH_MM`` of the skin: that excludes the table and superficial bone) and away from
the spinal canal (which only bone borders). On a non-contrast series blood (about 40 HU) is
soft-tissue density: no vessel can be separated and the finding says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from planner.distance import distance_map_mm
from planner.volume import CTVolume

BoolArray = npt.NDArray[np.bool_]

BLOOD_HU = (150.0, 500.0)
# Denser than any opacified blood: cortex, calcification, metal.
DENSE_HU = 500.0
SOFT_TISSUE_HU = 40.0
# The vessel outline is drawn halfway between its blood and soft tissue, never below this.
MIN_EDGE_HU = 90.0
CORE_RADIUS_MM = 3.0
MIN_CORE_ML = 0.2
MIN_CORE_VOXELS = 10
# A "large" vessel: radius of the 150-500 HU region at least this.
MIN_RADIUS_MM = 4.0
MAX_CORE_IQR_HU = 45.0
# Cortical rim: the share of the region's edge brighter than its core by EDGE_BRIGHTER_HU.
EDGE_BRIGHTER_HU = 60.0
MAX_BRIGHT_EDGE = 0.06
# Cortex inside (coarse grids blur a whole rib into 150-500 HU): share brighter by this.
INSIDE_BRIGHTER_HU = 120.0
MAX_BRIGHT_INSIDE = 0.1
MAX_DENSE_SHELL = 0.2
MIN_SKIN_DEPTH_MM = 5.0
MIN_CANAL_DISTANCE_MM = 6.0
# A blood pool this large (the aorta, the heart) shows the series is contrast-enhanced.
POOL_ML = 20.0
POOL_RADIUS_MM = 7.0

# ContrastBolusAgent values some scanners write when no contrast was given.
NO_AGENT = frozenset({"", "NONE", "NO", "N/A", "NA", "-", "0", "NO CONTRAST"})
NON_CONTRAST_WARNING = (
    "non-contrast series: large vessels not distinguishable, check the path against vessels"
)
NOT_FOUND_WARNING = (
    "contrast-enhanced series ({source}) but no opacified large vessel found: large vessels "
    "not checked, check the path against vessels"
)


@dataclass(frozen=True)
class VesselFinding:
    mask: BoolArray | None  # None when no large vessel was found or the series is non-contrast
    contrast_enhanced: bool
    contrast_evidence: tuple[str, ...]  # "ContrastBolusAgent ...", "opacified blood pool"
    warning: str | None  # why the vessels were not checked; None when they were


@dataclass(frozen=True)
class _Component:
    outline: BoolArray  # the vessel's voxels in ``box``
    box: tuple[slice, ...]
    is_pool: bool


def _distance_mm(mask: BoolArray, spacing: tuple[float, float, float]) -> npt.NDArray[np.float32]:
    return distance_map_mm(np.ascontiguousarray(mask), spacing)


def _padded_box(
    found: tuple[slice, ...],
    pad_mm: float,
    spacing: tuple[float, float, float],
    shape: tuple[int, ...],
) -> tuple[slice, ...]:
    pads = [int(np.ceil(pad_mm / sp)) for sp in spacing]
    return tuple(
        slice(max(0, s.start - p), min(n, s.stop + p))
        for s, p, n in zip(found, pads, shape, strict=True)
    )


def _classify(
    box: tuple[slice, ...],
    hu: npt.NDArray[np.int16],
    blood: BoolArray,
    depth_mm: npt.NDArray[np.float32],
    core: BoolArray,
    body: BoolArray,
    canal: BoolArray,
    spacing: tuple[float, float, float],
) -> _Component | None:
    """The tests of one core component (every array cut to its padded ``box``), cheapest
    first; the vessel when it passes them all, else None."""
    radius_mm = float(depth_mm[core].max())
    q25, median, q75 = np.percentile(hu[core].astype(np.float64), [25, 50, 75])
    if radius_mm < MIN_RADIUS_MM or q75 - q25 > MAX_CORE_IQR_HU:
        return None
    near_core = _distance_mm(core, spacing) <= CORE_RADIUS_MM + max(spacing)
    region = near_core & blood
    filled = ndimage.binary_fill_holes(region)
    edge = filled & ~ndimage.binary_erosion(filled)
    shell = ndimage.binary_dilation(filled) & ~filled
    bright_edge = float(np.mean(hu[edge] > median + EDGE_BRIGHTER_HU)) if edge.any() else 1.0
    bright_inside = float(np.mean(hu[filled] > median + INSIDE_BRIGHTER_HU))
    dense_shell = float(np.mean(hu[shell] > DENSE_HU)) if shell.any() else 0.0
    if (
        bright_edge > MAX_BRIGHT_EDGE
        or bright_inside > MAX_BRIGHT_INSIDE
        or dense_shell > MAX_DENSE_SHELL
    ):
        return None
    if float(_distance_mm(~body, spacing)[region].min()) < MIN_SKIN_DEPTH_MM:
        return None
    if canal.any() and float(_distance_mm(canal, spacing)[region].min()) < MIN_CANAL_DISTANCE_MM:
        return None
    voxel_ml = float(np.prod(spacing)) / 1000.0
    is_pool = region.sum() * voxel_ml >= POOL_ML and radius_mm >= POOL_RADIUS_MM
    # The outline: halfway between the pool's blood and soft tissue (partial volume).
    edge_hu = max(MIN_EDGE_HU, (median + SOFT_TISSUE_HU) / 2.0)
    outline = near_core & body & (hu >= edge_hu) & (hu <= BLOOD_HU[1])
    return _Component(outline, box, is_pool)


def find_large_vessels(volume: CTVolume, body: BoolArray, canal: BoolArray) -> VesselFinding:
    """Opacified large vessels, or why there are none (see the module docstring)."""
    hu = volume.hu
    spacing = volume.geometry.spacing_kji_mm()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    agent = volume.contrast_agent.strip()
    if agent.upper() in NO_AGENT:
        agent = ""
    blood = body & (hu >= BLOOD_HU[0]) & (hu <= BLOOD_HU[1])
    components: list[_Component] = []
    if blood.any():
        found = ndimage.find_objects(blood.view(np.uint8))[0]
        assert found is not None
        outer = _padded_box(found, 0.0, spacing, hu.shape)
        depth_mm = np.zeros(hu.shape, dtype=np.float32)
        depth_mm[outer] = _distance_mm(~blood[outer], spacing)
        cores, _ = ndimage.label(depth_mm >= CORE_RADIUS_MM)
        pad_mm = max(CORE_RADIUS_MM + 2 * max(spacing), MIN_SKIN_DEPTH_MM, MIN_CANAL_DISTANCE_MM)
        for label, where in enumerate(ndimage.find_objects(cores), start=1):
            if where is None:
                continue
            core = cores[where] == label
            n = int(core.sum())
            if n < MIN_CORE_VOXELS or n * voxel_ml < MIN_CORE_ML:
                continue
            box = _padded_box(where, pad_mm, spacing, hu.shape)
            c = _classify(
                box, hu[box], blood[box], depth_mm[box], cores[box] == label, body[box],
                canal[box], spacing,
            )  # fmt: skip
            if c is not None:
                components.append(c)
    evidence = []
    if agent:
        evidence.append(f"ContrastBolusAgent {agent!r}")
    if any(c.is_pool for c in components):
        evidence.append("opacified blood pool")
    if not evidence:
        return VesselFinding(None, False, (), NON_CONTRAST_WARNING)
    if not components:
        warning = NOT_FOUND_WARNING.format(source=evidence[0])
        return VesselFinding(None, True, tuple(evidence), warning)
    mask = np.zeros(hu.shape, dtype=bool)
    for c in components:
        mask[c.box] |= c.outline
    return VesselFinding(mask, True, tuple(evidence), None)

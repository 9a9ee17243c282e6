"""What defines a sample case: the patient, the lesion, the expected needle access, the scan.

Pure data (frozen dataclasses); :mod:`sample_series.catalogue` holds the named instances and
:func:`sample_series.phantom.build_case` turns one into DICOM datasets plus ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from sample_series.anatomy import BodyRegion
from sample_series.geometry import PatientPosition
from sample_series.lesion import LesionShape


class BoneSite(StrEnum):
    RIB_LATERAL = "rib_lateral"
    RIB_POSTERIOR = "rib_posterior"
    RIB_ANTERIOR = "rib_anterior"
    VERTEBRAL_BODY = "vertebral_body"
    COSTOVERTEBRAL = "costovertebral_junction"
    SCAPULA = "scapula"
    ILIAC_WING = "iliac_wing"
    SACRUM = "sacrum"
    FEMUR = "femur"
    STERNUM = "sternum"


# Tissue group (see sample_series.tissues) of the bone each site lies in.
SITE_BONE_GROUP: dict[BoneSite, str] = {
    BoneSite.RIB_LATERAL: "rib",
    BoneSite.RIB_POSTERIOR: "rib",
    BoneSite.RIB_ANTERIOR: "rib",
    BoneSite.VERTEBRAL_BODY: "vertebra",
    BoneSite.COSTOVERTEBRAL: "rib",
    BoneSite.SCAPULA: "scapula",
    BoneSite.ILIAC_WING: "ilium",
    BoneSite.SACRUM: "sacrum",
    BoneSite.FEMUR: "femur",
    BoneSite.STERNUM: "sternum",
}


class NeedleAccess(StrEnum):
    """What straight 22 G needle routes the case is designed to offer (and the survey checks).

    IN_PLANE: a safe route exists in the axial (gantry) plane.
    TILTED_ONLY: no safe route within 10 degrees of the axial plane, but one tilted
    craniocaudally (15 to 40 degrees) exists.
    NONE: no safe straight route within 40 degrees of the axial plane.
    """

    IN_PLANE = "in_plane"
    TILTED_ONLY = "tilted_only"
    NONE = "none"


@dataclass(frozen=True)
class ScanSpec:
    """Acquisition grid and image formation of one build size."""

    rows: int
    columns: int
    pixel_mm: float
    n_slices: int
    slice_mm: float
    supersample: int = 1  # in-plane sub-voxels per axis averaged for partial volume
    blur_sigma_voxels: tuple[float, float, float] = (0.5, 0.5, 0.5)  # (i, j, k)

    @property
    def fov_mm(self) -> float:
        return self.columns * self.pixel_mm


SMALL_SCAN = ScanSpec(rows=160, columns=160, pixel_mm=2.6, n_slices=56, slice_mm=3.0, supersample=2)
FULL_SCAN = ScanSpec(rows=512, columns=512, pixel_mm=0.8, n_slices=150, slice_mm=1.0)


@dataclass(frozen=True)
class CaseSpec:
    name: str
    description: str
    region: BodyRegion
    site: BoneSite
    side: str  # "left", "right" or "midline"
    position: PatientPosition
    lesion: LesionShape
    access: NeedleAccess
    access_note: str  # why the access is what it is, in the radiologist's words
    seed: int
    small: ScanSpec = SMALL_SCAN
    full: ScanSpec = FULL_SCAN
    contrast: bool = False
    noise_sd_hu: float = 10.0
    instances_reversed: bool = False  # InstanceNumber runs against the slice normal
    pixel_representation: int = 1  # 1 signed (BitsStored 16), 0 unsigned (BitsStored 12)
    outside_circle_hu: float | None = None  # e.g. -2048 outside the reconstruction circle
    scan_offset_mm: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    @property
    def bone_group(self) -> str:
        return SITE_BONE_GROUP[self.site]

    def scan(self, full_size: bool) -> ScanSpec:
        return self.full if full_size else self.small


def noise_draw(spec: CaseSpec, realisation: int) -> CaseSpec:
    """The case with noise draw ``realisation`` (seed ``seed + 1000 * realisation``; 0 is the
    catalogue's own)."""
    return replace(spec, seed=spec.seed + 1000 * realisation)

"""Tissue classes of the phantom: CT number, ground-truth label and bone group of each.

The rasteriser paints a small integer "tissue id" per voxel; HU and label volumes are then
look-ups in the tables built here, so image and truth can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt


class LabelCode(IntEnum):
    """Ground-truth label codes of ``labels.npz`` (uint8, one per voxel)."""

    AIR = 0  # outside the patient and off the table
    SOFT_TISSUE = 1  # skin, fat, muscle, mediastinal and pelvic soft tissue, discs
    BONE = 2  # cortex and marrow of every bone
    LUNG = 3
    SPINAL_CANAL = 4  # canal contents incl. the cord, and the sacral canal
    LARGE_VESSEL = 5  # aorta, iliac and femoral arteries, cardiac blood pool
    LESION = 6
    TABLE = 7  # CT table and its cushion


@dataclass(frozen=True)
class Tissue:
    name: str
    hu: float
    label: LabelCode
    group: str  # bone name for bone tissues ("rib", "vertebra", ...), else a class name


CONTRAST_AORTA_HU = 250.0

_TISSUES: tuple[Tissue, ...] = (
    Tissue("air", -1000.0, LabelCode.AIR, "air"),
    Tissue("table", 200.0, LabelCode.TABLE, "table"),
    Tissue("cushion", -50.0, LabelCode.TABLE, "table"),
    Tissue("skin", 30.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("fat", -100.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("muscle", 50.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("mediastinum", 20.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("viscera", 35.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("liver", 55.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("disc", 80.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("cartilage", 110.0, LabelCode.SOFT_TISSUE, "soft"),
    Tissue("lung", -850.0, LabelCode.LUNG, "lung"),
    Tissue("heart", 40.0, LabelCode.LARGE_VESSEL, "vessel"),
    Tissue("aorta", 40.0, LabelCode.LARGE_VESSEL, "vessel"),
    Tissue("artery", 40.0, LabelCode.LARGE_VESSEL, "vessel"),
    Tissue("csf", 25.0, LabelCode.SPINAL_CANAL, "canal"),
    Tissue("cord", 40.0, LabelCode.SPINAL_CANAL, "canal"),
    Tissue("vertebra_cortex", 1000.0, LabelCode.BONE, "vertebra"),
    Tissue("vertebra_marrow", 250.0, LabelCode.BONE, "vertebra"),
    Tissue("rib_cortex", 900.0, LabelCode.BONE, "rib"),
    Tissue("rib_marrow", 220.0, LabelCode.BONE, "rib"),
    Tissue("sternum_cortex", 900.0, LabelCode.BONE, "sternum"),
    Tissue("sternum_marrow", 230.0, LabelCode.BONE, "sternum"),
    Tissue("scapula_cortex", 1000.0, LabelCode.BONE, "scapula"),
    Tissue("scapula_marrow", 300.0, LabelCode.BONE, "scapula"),
    Tissue("ilium_cortex", 1000.0, LabelCode.BONE, "ilium"),
    Tissue("ilium_marrow", 250.0, LabelCode.BONE, "ilium"),
    Tissue("sacrum_cortex", 950.0, LabelCode.BONE, "sacrum"),
    Tissue("sacrum_marrow", 230.0, LabelCode.BONE, "sacrum"),
    Tissue("femur_cortex", 1200.0, LabelCode.BONE, "femur"),
    Tissue("femur_marrow", 200.0, LabelCode.BONE, "femur"),
    Tissue("femur_medulla", -60.0, LabelCode.BONE, "femur"),  # adult yellow (fatty) marrow
    Tissue("lesion", 40.0, LabelCode.LESION, "lesion"),
)

TISSUE_NAMES: tuple[str, ...] = tuple(t.name for t in _TISSUES)
TISSUE_ID: dict[str, int] = {t.name: i for i, t in enumerate(_TISSUES)}
AIR_ID = TISSUE_ID["air"]
LESION_ID = TISSUE_ID["lesion"]

# Structures that make a lesion "near-spine" for the steroid choice (CLINICAL.md default):
# every vertebral element, the sacrum (fused sacral vertebrae) and the canal contents.
SPINE_GROUPS = frozenset({"vertebra", "sacrum", "canal"})


def tissue(name: str) -> Tissue:
    return _TISSUES[TISSUE_ID[name]]


def tissues() -> tuple[Tissue, ...]:
    return _TISSUES


def hu_lut(*, contrast: bool = False) -> npt.NDArray[np.float32]:
    """HU per tissue id; with ``contrast`` the aorta and arteries are opacified."""
    lut = np.array([t.hu for t in _TISSUES], dtype=np.float32)
    if contrast:
        for name in ("aorta", "artery", "heart"):
            lut[TISSUE_ID[name]] = CONTRAST_AORTA_HU
    return lut


def label_lut() -> npt.NDArray[np.uint8]:
    return np.array([int(t.label) for t in _TISSUES], dtype=np.uint8)


def group_mask_lut(groups: frozenset[str]) -> npt.NDArray[np.bool_]:
    """Boolean per tissue id: True for tissues whose group is in ``groups``."""
    return np.array([t.group in groups for t in _TISSUES], dtype=bool)

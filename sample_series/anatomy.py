"""The patient model: a body region's anatomy in LPS mm plus the CT table it lies on.

Input: body region, patient position, contrast flag. Output: :class:`PatientModel`, an
ordered list of primitives (table first, then the body, bones, canal; a lesion is appended
last by :func:`with_lesion`) that :func:`sample_series.raster.rasterize` paints on any grid.
The patient's anatomy is the same in every position (LPS moves with the patient); only the
table changes side: it lies against the patient's down side (posterior when supine,
anterior when prone, left for HFDL, right for HFDR).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np

from sample_series.geometry import PatientPosition, down_direction
from sample_series.lesion import LesionShape
from sample_series.pelvis import PelvisModel
from sample_series.shapes import Array, Ellipsoid, FloatArray, Primitive, paint_mask
from sample_series.thorax import ThoraxModel


class BodyRegion(StrEnum):
    THORAX = "thorax"
    PELVIS = "pelvis"


@dataclass(frozen=True)
class CTTable(Primitive):
    """Curved table top (concave toward the patient) with a cushion on it, along all z.

    ``down`` is the in-plane unit vector toward the table; the cushion's upper surface is
    ``top_mm`` along ``down`` at the midline and rises by q**2 / (2 R) at lateral offset q.
    """

    down_xy: tuple[float, float]
    top_mm: float
    cushion_mm: float = 8.0
    slab_mm: float = 14.0
    half_width_mm: float = 220.0
    radius_mm: float = 1200.0
    tissue: str = "table"

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        dx, dy = self.down_xy
        far = self.top_mm + self.cushion_mm + self.slab_mm
        lat = np.array([-dy, dx]) * self.half_width_mm
        near_pts = [
            np.array([dx, dy]) * (self.top_mm - self.half_width_mm**2 / (2 * self.radius_mm))
            + s * lat
            for s in (-1, 1)
        ]
        far_pts = [np.array([dx, dy]) * far + s * lat for s in (-1, 1)]
        pts = np.array(near_pts + far_pts)
        lo = np.append(pts.min(axis=0), -1e4)
        hi = np.append(pts.max(axis=0), 1e4)
        return lo, hi

    def paint(self, out: np.ndarray, x: Array, y: Array, z: Array) -> None:
        dx, dy = self.down_xy
        h = x * dx + y * dy
        q = y * dx - x * dy
        top = self.top_mm - q * q / (2.0 * self.radius_mm)
        lateral = np.abs(q) <= self.half_width_mm
        cushion = lateral & (h >= top) & (h < top + self.cushion_mm)
        slab = lateral & (h >= top + self.cushion_mm) & (h < top + self.cushion_mm + self.slab_mm)
        paint_mask(out, np.asarray(cushion), "cushion")
        paint_mask(out, np.asarray(slab), "table")


@dataclass(frozen=True)
class PatientModel:
    region: BodyRegion
    position: PatientPosition
    contrast: bool
    primitives: tuple[Primitive, ...]
    body_centre_xy_mm: tuple[float, float]
    body_semi_axes_mm: tuple[float, float]
    table: CTTable

    def body_support_mm(self, direction_xy: tuple[float, float]) -> float:
        """Farthest extent of the torso outline along an in-plane unit vector."""
        (cx, cy), (a, b) = self.body_centre_xy_mm, self.body_semi_axes_mm
        dx, dy = direction_xy
        return cx * dx + cy * dy + float(np.hypot(a * dx, b * dy))


THORAX = ThoraxModel()
PELVIS = PelvisModel()

# The patient sinks this far into the cushion, so the contact is a patch, not a line.
CUSHION_SINK_MM = 3.0


@lru_cache(maxsize=32)
def build_patient_model(
    region: BodyRegion, position: PatientPosition, contrast: bool = False
) -> PatientModel:
    """The anatomy of ``region`` lying on the table in ``position``."""
    anatomy = THORAX if BodyRegion(region) is BodyRegion.THORAX else PELVIS
    (cx, cy), (a, b) = anatomy.body_outline()
    down = down_direction(PatientPosition(position))
    down_xy = (down[0], down[1])
    support = cx * down_xy[0] + cy * down_xy[1] + float(np.hypot(a * down_xy[0], b * down_xy[1]))
    table = CTTable(down_xy=down_xy, top_mm=support - CUSHION_SINK_MM)
    return PatientModel(
        region=BodyRegion(region),
        position=PatientPosition(position),
        contrast=contrast,
        primitives=(table, *anatomy.primitives()),
        body_centre_xy_mm=(cx, cy),
        body_semi_axes_mm=(a, b),
        table=table,
    )


def with_lesion(model: PatientModel, lesion: LesionShape) -> tuple[Primitive, ...]:
    """Painting list with the lesion's lobes last: the lesion replaces whatever it covers."""
    lobes = tuple(
        Ellipsoid("lesion", lobe.centre_lps_mm, lobe.semi_axes_mm, lobe.axes)
        for lobe in lesion.lobes
    )
    return model.primitives + lobes

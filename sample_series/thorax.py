"""The thorax of the phantom patient, in LPS mm (x left, y posterior, z head).

Adult torso 340 mm left-right x 256 mm antero-posterior; z = 0 lies near T7. Vertebra Tn's
body is centred at z = 170 - 26 (n - 1) (T1 at 170, T12 at -116); rib n leaves its vertebra
6 mm above that centre. Output: the painting-ordered primitive list (no table, no lesion)
and landmark helpers the catalogue uses to place lesions in named bones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sample_series.bands import CageEllipse, RibCage, ScapulaBlade
from sample_series.shapes import (
    Capsule,
    Ellipsoid,
    EllipticPrism,
    FloatArray,
    Primitive,
    capsule_pair,
    ellipsoid_pair,
    orthonormal_frame,
    prism_pair,
)

LEFT, RIGHT = 1, -1


@dataclass(frozen=True)
class ThoraxModel:
    body_centre_y: float = 5.0
    body_semi: tuple[float, float] = (170.0, 128.0)
    skin_mm: float = 2.0
    fat_mm: float = 12.0
    cage: CageEllipse = CageEllipse(centre_y=-5.0, semi_x=140.0, semi_y=100.0)
    vertebra_pitch_mm: float = 26.0
    t1_z: float = 170.0
    vb_centre_y: float = 45.0
    vb_semi: tuple[float, float] = (17.0, 14.0)
    vb_half_height_mm: float = 10.0
    cortex_mm: float = 1.2
    canal_centre_y: float = 72.0
    canal_semi: tuple[float, float] = (9.0, 8.0)
    cord_radius_mm: float = 5.0
    sternum_centre_y: float = -103.0
    aorta_xy: tuple[float, float] = (24.0, 20.0)
    aorta_radius_mm: float = 12.0
    lung_margin_mm: float = 6.5  # rib-cage centre line to the pleura (2.5 mm inside the ribs)
    diaphragm_rim_z: float = -115.0
    diaphragm_top_z: float = -55.0

    # ---------------------------------------------------------------- landmarks
    def vertebra_z(self, level: int) -> float:
        """Centre z of thoracic vertebra T``level`` (1..12)."""
        return self.t1_z - (level - 1) * self.vertebra_pitch_mm

    def vertebral_body_centre(self, level: int) -> FloatArray:
        return np.array([0.0, self.vb_centre_y, self.vertebra_z(level)])

    @cached_property
    def ribs(self) -> RibCage:
        c = self.cage
        return RibCage(
            cage=c,
            rib1_head_z=self.vertebra_z(1) + 6.0,
            pitch_mm=self.vertebra_pitch_mm,
            first_rib=1,
            last_rib=12,
            s_max=(0.93, 1, 1, 1, 1, 1, 1, 0.97, 0.93, 0.88, 0.6, 0.4),
            phi_post=c.angle_at_x(45.0, posterior=True),
            phi_ant=c.angle_at_x(30.0, posterior=False),
            half_thickness_mm=4.0,
            half_height_mm=6.0,
            cortex_mm=self.cortex_mm,
            drop_mm=90.0,
            drop_power=1.6,
        )

    @cached_property
    def scapula(self) -> ScapulaBlade:
        return ScapulaBlade(
            cage=self.cage,
            offset_mm=17.0,
            half_thickness_mm=3.0,
            cortex_mm=1.5,
            z_tip=self.vertebra_z(7) + 2.0,
            z_top=self.vertebra_z(2) - 10.0,
            x_med_top=60.0,
            x_med_tip=82.0,
            x_lat_top=128.0,
            x_lat_tip=92.0,
        )

    def rib_point(self, side: int, rib: int, s: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Centre-line point of a rib, its unit tangent (toward the sternum) and the outward
        unit normal (radial, in-plane)."""
        p = self.ribs.centreline(side, rib, s)
        ds = 1e-3
        tangent = self.ribs.centreline(side, rib, min(s + ds, 1.0)) - self.ribs.centreline(
            side, rib, max(s - ds, 0.0)
        )
        tangent /= np.linalg.norm(tangent)
        radial = np.array([p[0], p[1] - self.cage.centre_y, 0.0])
        return p, tangent, radial / np.linalg.norm(radial)

    def rib_neck(self, side: int, rib: int) -> tuple[FloatArray, FloatArray]:
        """(costotransverse end, costovertebral joint) of a rib neck."""
        outer = self.ribs.centreline(side, rib, 0.0)
        z = outer[2]
        joint = np.array([side * (self.vb_semi[0] + 2.0), self.vb_centre_y + 2.0, z])
        return outer, joint

    def sternum_point(self, z: float) -> FloatArray:
        return np.array([0.0, self.sternum_centre_y, z])

    def body_outline(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (0.0, self.body_centre_y), self.body_semi

    # ---------------------------------------------------------------- primitives
    def primitives(self) -> list[Primitive]:
        prims: list[Primitive] = []
        prims += self._soft_tissues()
        for level in range(1, 13):
            prims += self._vertebra(level)
        prims.append(self.ribs)
        for side in (LEFT, RIGHT):
            for rib in range(1, 13):
                outer, joint = self.rib_neck(side, rib)
                prims += capsule_pair("rib", outer, joint, 4.5, self.cortex_mm)
            for rib in range(1, 8):
                end = self.ribs.centreline(side, rib, 1.0)
                prims.append(
                    Capsule("cartilage", tuple(end), (side * 14.0, -101.0, end[2] + 10.0), 4.5)
                )
        prims += self._sternum()
        prims.append(self.scapula)
        cy = self.canal_centre_y
        prims.append(EllipticPrism("csf", (0.0, cy), self.canal_semi))
        prims.append(EllipticPrism("cord", (0.0, cy - 1.0), (self.cord_radius_mm,) * 2))
        return prims

    def _soft_tissues(self) -> list[Primitive]:
        cx, cy = 0.0, self.body_centre_y
        a, b = self.body_semi
        s, f = self.skin_mm, self.skin_mm + self.fat_mm
        c = self.cage
        m = self.lung_margin_mm
        inner = (c.semi_x - m, c.semi_y - m)
        dome = (self.diaphragm_rim_z, self.diaphragm_top_z)
        ax, ay = self.aorta_xy
        r_ao = self.aorta_radius_mm
        return [
            EllipticPrism("skin", (cx, cy), (a, b)),
            EllipticPrism("fat", (cx, cy), (a - s, b - s)),
            EllipticPrism("muscle", (cx, cy), (a - f, b - f)),
            EllipticPrism("lung", (0.0, c.centre_y), inner, z_max=200.0, floor_dome=dome),
            EllipticPrism("liver", (0.0, c.centre_y), inner, z_min=-400.0, ceiling_dome=dome),
            # paravertebral muscles and the posterior mediastinum keep the lungs off the spine
            EllipticPrism("muscle", (0.0, 70.0), (44.0, 40.0)),
            EllipticPrism("mediastinum", (0.0, -30.0), (35.0, 75.0), z_min=-60.0),
            Ellipsoid("heart", (20.0, -38.0, -25.0), (62.0, 50.0, 48.0)),
            EllipticPrism("aorta", (ax, ay), (r_ao, r_ao)),
            EllipticPrism("aorta", (-8.0, -48.0), (15.0, 15.0), z_min=0.0, z_max=100.0),
            Capsule("aorta", (-8.0, -48.0, 100.0), (ax, ay, 112.0), r_ao),
        ]

    def _vertebra(self, level: int) -> list[Primitive]:
        z = self.vertebra_z(level)
        y = self.vb_centre_y
        h = self.vb_half_height_mm
        half_gap = self.vertebra_pitch_mm / 2.0
        c = self.cortex_mm
        prims: list[Primitive] = [
            EllipticPrism("disc", (0.0, y), self.vb_semi, z + h, z + 2 * half_gap - h),
        ]
        prims += prism_pair("vertebra", (0.0, y), self.vb_semi, z - h, z + h, c)
        for side in (LEFT, RIGHT):
            prims += capsule_pair(
                "vertebra", (side * 11, y + 11, z + 3), (side * 13, 74, z + 3), 4.5, c
            )
            prims += capsule_pair(
                "vertebra", (side * 13, 77, z + 4), (side * 38, 86, z + 4), 7.0, c
            )
            lamina_axes = orthonormal_frame((-side * 13.0, 10.0, 0.0), (0.0, 0.0, 1.0))
            # laminae of successive levels overlap like roof tiles, as in the thoracic spine
            prims += ellipsoid_pair(
                "vertebra", (side * 6.0, 83.0, z - 2.0), (12.0, 14.5, 3.5), lamina_axes, c
            )
        spinous_axes = orthonormal_frame((0.0, 24.0, -20.0), (0.0, 0.0, 1.0))
        prims += ellipsoid_pair(
            "vertebra", (0.0, 98.0, z - 10.0), (16.5, 7.0, 4.0), spinous_axes, c
        )
        return prims

    def _sternum(self) -> list[Primitive]:
        y = self.sternum_centre_y
        c = self.cortex_mm
        return prism_pair("sternum", (0.0, y), (25.0, 8.0), 75.0, 112.0, c) + prism_pair(
            "sternum", (0.0, y), (16.0, 7.0), -45.0, 75.0, c
        )

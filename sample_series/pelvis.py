"""The pelvis and proximal thighs of the phantom patient, in LPS mm.

Torso 350 x 236 mm down to the gluteal fold (z = -75), two thighs below. Landmarks: iliac
crest top z ~ 125, L5 body z = 95, sacrum from z = 75 (S1) to -35 (coccyx), femoral head
centres at (+-92, -12, -30). Output: painting-ordered primitives (no table, no lesion) and
landmark helpers for the catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from sample_series.shapes import (
    Array,
    Capsule,
    Ellipsoid,
    EllipticPrism,
    FloatArray,
    Primitive,
    TaperedPrism,
    capsule_pair,
    ellipsoid_pair,
    orthonormal_frame,
    prism_pair,
)
from sample_series.tissues import TISSUE_ID

LEFT, RIGHT = 1, -1
EYE = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True)
class IliacWings(Primitive):
    """Both iliac wings: a plate on a vertical circular arc (centre (+-cx, cy), radius R)
    from the anterior border (polar angle ``phi_ant(z)``) to the sacroiliac joint
    (``phi_si``), from ``z_min`` up to the crest ``z_crest(phi)``."""

    centre_xy: tuple[float, float] = (25.0, -20.0)
    radius_mm: float = 95.0
    half_thickness_mm: float = 4.5
    cortex_mm: float = 1.5
    phi_si: float = math.radians(77.0)
    phi_asis: float = math.radians(-15.0)
    z_min: float = 0.0
    crest_ends_z: float = 100.0
    crest_rise_mm: float = 25.0
    tissue: str = "ilium_cortex"

    def crest_z(self, phi: Array | float) -> Array:
        f = (np.asarray(phi) - self.phi_asis) / (self.phi_si - self.phi_asis)
        return self.crest_ends_z + self.crest_rise_mm * np.sin(np.pi * np.clip(f, 0.0, 1.0))

    def phi_ant(self, z: Array | float) -> Array:
        """Anterior border: the ASIS at the crest, receding toward the acetabulum below."""
        f = np.clip((60.0 - np.asarray(z)) / 60.0, 0.0, 1.0)
        return self.phi_asis + f * math.radians(45.0)

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        cx, cy = self.centre_xy
        r = self.radius_mm + self.half_thickness_mm
        return (
            np.array([-(cx + r), cy - r, self.z_min]),
            np.array([cx + r, cy + r, self.crest_ends_z + self.crest_rise_mm]),
        )

    def paint(self, out: npt.NDArray[np.uint8], x: Array, y: Array, z: Array) -> None:
        nj, ni = out.shape[1:]
        xx = np.abs(np.broadcast_to(x[0], (nj, ni))) - self.centre_xy[0]
        yy = np.broadcast_to(y[0], (nj, ni)) - self.centre_xy[1]
        phi = np.arctan2(yy, xx)
        d = np.sqrt(xx * xx + yy * yy) - self.radius_mm
        band = (np.abs(d) <= self.half_thickness_mm) & (phi >= self.phi_asis) & (phi <= self.phi_si)
        jj, ii = np.nonzero(band)
        if jj.size == 0:
            return
        phi_p, d_p = phi[jj, ii][None, :], np.abs(d[jj, ii])[None, :]
        zc = z[:, 0, :]
        crest = self.crest_z(phi_p)
        c = self.cortex_mm
        outer = (zc <= crest) & (phi_p >= self.phi_ant(zc))
        inner = (zc <= crest - c) & (zc >= self.z_min + c) & (phi_p >= self.phi_ant(zc) + 0.02)
        inner &= (phi_p <= self.phi_si - 0.02) & (d_p <= self.half_thickness_mm - c)
        sub = out[:, jj, ii]
        sub[outer] = TISSUE_ID["ilium_cortex"]
        sub[inner] = TISSUE_ID["ilium_marrow"]
        out[:, jj, ii] = sub

    def point(self, side: int, phi: float, z: float) -> tuple[FloatArray, FloatArray]:
        """Mid-plate point and its outward (gluteal side) unit normal."""
        cx, cy = self.centre_xy
        radial = np.array([math.cos(phi), math.sin(phi)])
        p = np.array([cx, cy]) + self.radius_mm * radial
        return (
            np.array([side * p[0], p[1], z]),
            np.array([side * radial[0], radial[1], 0.0]),
        )


@dataclass(frozen=True)
class PelvisModel:
    body_centre_y: float = 5.0
    body_semi: tuple[float, float] = (175.0, 118.0)
    skin_mm: float = 2.0
    fat_mm: float = 18.0
    crotch_z: float = -75.0
    thigh_centre: tuple[float, float] = (90.0, 38.0)
    thigh_radius_mm: float = 85.0
    cortex_mm: float = 1.5
    femoral_head: tuple[float, float, float] = (92.0, -12.0, -30.0)
    femoral_head_radius_mm: float = 24.0
    shaft_top: tuple[float, float, float] = (132.0, 0.0, -60.0)
    shaft_bottom: tuple[float, float, float] = (112.0, 8.0, -420.0)
    shaft_radius_mm: float = 15.0

    @cached_property
    def ilium(self) -> IliacWings:
        return IliacWings()

    def body_outline(self) -> tuple[tuple[float, float], tuple[float, float]]:
        return (0.0, self.body_centre_y), self.body_semi

    def sacrum_centre(self, z: float) -> FloatArray:
        t = (z - 75.0) / (-35.0 - 75.0)
        return np.array([0.0, 45.0 + t * 40.0, z])

    def femur_axis_point(self, side: int, z: float) -> tuple[FloatArray, FloatArray]:
        """Point on the femoral shaft axis at height z and the unit axis (toward the knee)."""
        top, bot = np.asarray(self.shaft_top), np.asarray(self.shaft_bottom)
        axis = (bot - top) / np.linalg.norm(bot - top)
        p = top + axis * (z - top[2]) / axis[2]
        return p * np.array([side, 1.0, 1.0]), axis * np.array([side, 1.0, 1.0])

    def primitives(self) -> list[Primitive]:
        prims = self._soft_tissues()
        prims += self._lumbar(95.0) + self._lumbar(130.0) + self._lumbar(165.0)
        prims += self._sacrum()
        prims.append(self.ilium)
        for side in (LEFT, RIGHT):
            prims += self._hip(side)
        prims.append(EllipticPrism("csf", (0.0, 64.0), (11.0, 8.0), z_min=75.0))
        prims.append(
            TaperedPrism("csf", 75.0, -30.0, (0.0, 60.0), (0.0, 88.0), (11.0, 7.0), (3.0, 2.5))
        )
        return prims

    def _soft_tissues(self) -> list[Primitive]:
        (cx, cy), (a, b) = self.body_outline()
        s, f = self.skin_mm, self.skin_mm + self.fat_mm
        zc = self.crotch_z
        prims: list[Primitive] = [
            EllipticPrism("skin", (cx, cy), (a, b), z_min=zc),
            EllipticPrism("fat", (cx, cy), (a - s, b - s), z_min=zc),
            EllipticPrism("muscle", (cx, cy), (a - f, b - f), z_min=zc),
        ]
        tx, ty = self.thigh_centre
        r = self.thigh_radius_mm
        for side in (LEFT, RIGHT):
            c = (side * tx, ty)
            prims += [
                EllipticPrism("skin", c, (r, r), z_max=zc),
                EllipticPrism("fat", c, (r - s, r - s), z_max=zc),
                EllipticPrism("muscle", c, (r - f + 5.0, r - f + 5.0), z_max=zc),
            ]
        prims.append(EllipticPrism("viscera", (0.0, -15.0), (75.0, 62.0), z_min=-45.0))
        prims.append(Capsule("aorta", (8.0, 12.0, 400.0), (8.0, 12.0, 132.0), 10.0))
        for side in (LEFT, RIGHT):
            p_bif, p_ext, p_fem = (
                (8.0, 12.0, 132.0),
                (side * 45.0, 2.0, 70.0),
                (side * 80.0, -36.0, -20.0),
            )
            prims.append(Capsule("artery", p_bif, p_ext, 6.5))
            prims.append(Capsule("artery", p_ext, p_fem, 5.5))
            # the femoral artery runs about 2 cm under the skin of the anterior thigh
            prims.append(Capsule("artery", p_fem, (side * 95.0, -5.0, -420.0), 5.0))
        return prims

    def _lumbar(self, z: float) -> list[Primitive]:
        c = self.cortex_mm
        prims: list[Primitive] = [
            EllipticPrism("disc", (0.0, 38.0), (25.0, 18.0), z + 13.0, z + 22.0)
        ]
        prims += prism_pair("vertebra", (0.0, 38.0), (25.0, 18.0), z - 13.0, z + 13.0, c)
        for side in (LEFT, RIGHT):
            prims += capsule_pair(
                "vertebra", (side * 13, 50, z + 4), (side * 15, 70, z + 4), 5.5, c
            )
            prims += capsule_pair(
                "vertebra", (side * 15, 70, z + 4), (side * 52, 72, z + 4), 5.5, c
            )
            lam = orthonormal_frame((-side * 12.0, 9.0, 0.0), (0.0, 0.0, 1.0))
            prims += ellipsoid_pair("vertebra", (side * 8.0, 77.0, z), (11.0, 12.0, 3.5), lam, c)
        prims += capsule_pair("vertebra", (0.0, 80.0, z), (0.0, 106.0, z - 6.0), 5.5, c)
        return prims

    def _sacrum(self) -> list[Primitive]:
        c = self.cortex_mm
        top, bot = self.sacrum_centre(75.0), self.sacrum_centre(-35.0)
        return [
            TaperedPrism(
                "sacrum_cortex",
                75.0,
                -35.0,
                (0.0, top[1]),
                (0.0, bot[1]),
                (48.0, 24.0),
                (12.0, 8.0),
            ),
            TaperedPrism(
                "sacrum_marrow",
                75.0 - c,
                -35.0 + c,
                (0.0, top[1]),
                (0.0, bot[1]),
                (48.0 - c, 24.0 - c),
                (12.0 - c, 8.0 - c),
            ),
        ]

    def _hip(self, side: int) -> list[Primitive]:
        c = self.cortex_mm
        hx, hy, hz = self.femoral_head
        head = (side * hx, hy, hz)
        # acetabulum and body of the ilium, cut off lateral to the head's equator
        lateral_cut = (((float(side), 0.0, 0.0), side * head[0] + 6.0),)
        prims: list[Primitive] = [
            Ellipsoid(
                "ilium_cortex", (side * 86.0, -8.0, -22.0), (30.0, 32.0, 36.0), EYE, lateral_cut
            ),
            Ellipsoid(
                "ilium_marrow", (side * 86.0, -8.0, -22.0), (28.0, 30.0, 34.0), EYE, lateral_cut
            ),
        ]
        prims += capsule_pair(
            "ilium", (side * 100.0, 22.0, 10.0), (side * 88.0, -2.0, -18.0), 17.0, c
        )
        prims += capsule_pair(
            "ilium", (side * 80.0, -30.0, -42.0), (side * 6.0, -72.0, -48.0), 10.0, c
        )
        prims += capsule_pair(
            "ilium", (side * 86.0, 4.0, -45.0), (side * 60.0, 30.0, -78.0), 14.0, c
        )
        prims.append(Ellipsoid("cartilage", head, (27.0, 27.0, 27.0)))
        r = self.femoral_head_radius_mm
        prims += ellipsoid_pair("femur", head, (r, r, r), EYE, c)
        neck_end = (side * 130.0, -2.0, -55.0)
        prims += capsule_pair("femur", head, neck_end, 16.0, 2.0)
        prims += ellipsoid_pair("femur", (side * 135.0, 0.0, -50.0), (16.0, 20.0, 24.0), EYE, 2.0)
        top = (side * self.shaft_top[0], self.shaft_top[1], self.shaft_top[2])
        bot = (side * self.shaft_bottom[0], self.shaft_bottom[1], self.shaft_bottom[2])
        prims += capsule_pair("femur", top, bot, self.shaft_radius_mm, 5.0)
        mid = np.asarray(top) + (np.asarray(bot) - np.asarray(top)) * 0.1
        prims.append(Capsule("femur_medulla", tuple(mid), bot, self.shaft_radius_mm - 6.0))
        return prims

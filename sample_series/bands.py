"""Curved bones that follow the chest wall: the ribs (all at once) and the scapular blades.

Both are described in polar coordinates around the rib-cage axis (x = 0, y = ``centre_y``),
mirrored left/right through ``|x|``. The rib cage is an elliptic cylinder (semi-axes A, B);
a rib is a tube of elliptic cross-section (radial half-thickness ``t``, craniocaudal
half-height ``h``) riding on it from the costotransverse joint (parameter s = 0) to the
costal cartilage (s = 1), dropping ``drop_mm * s**drop_power`` toward the feet on the way.
Painting gathers the pixels of the thin in-plane band where the bone can be, evaluates all
slices there and scatters back, which keeps every rib of a 512x512x150 grid cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sample_series.shapes import Array, FloatArray, Primitive
from sample_series.tissues import TISSUE_ID


@dataclass(frozen=True)
class CageEllipse:
    centre_y: float
    semi_x: float
    semi_y: float

    def radius(self, phi: Array) -> Array:
        """Distance from the axis to the ellipse along polar angle ``phi`` (from +x toward +y)."""
        a, b = self.semi_x, self.semi_y
        return a * b / np.sqrt((b * np.cos(phi)) ** 2 + (a * np.sin(phi)) ** 2)

    def angle_at_x(self, x_abs: float, posterior: bool) -> float:
        y = self.semi_y * math.sqrt(max(1.0 - (x_abs / self.semi_x) ** 2, 0.0))
        return math.atan2(y if posterior else -y, x_abs)

    def polar(self, x: Array, y: Array) -> tuple[Array, Array]:
        """(phi, r) of in-plane points, mirrored to the left half (|x|)."""
        ax = np.abs(x)
        dy = y - self.centre_y
        return np.arctan2(dy, ax), np.sqrt(ax * ax + dy * dy)


def _gather(
    x: Array, y: Array, out_shape: tuple[int, ...]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    nj, ni = out_shape[1:]
    xx = np.broadcast_to(x[0], (nj, ni))
    yy = np.broadcast_to(y[0], (nj, ni))
    return xx, yy


@dataclass(frozen=True)
class RibCage(Primitive):
    """Ribs ``first_rib``..``last_rib`` on both sides (cortex and marrow)."""

    cage: CageEllipse
    rib1_head_z: float
    pitch_mm: float
    first_rib: int
    last_rib: int
    s_max: tuple[float, ...]  # anterior extent of each rib 1..12 (1 = reaches the cartilage)
    phi_post: float
    phi_ant: float
    half_thickness_mm: float
    half_height_mm: float
    cortex_mm: float
    drop_mm: float
    drop_power: float
    tissue: str = "rib_cortex"

    def head_z(self, rib: int) -> float:
        return self.rib1_head_z - (rib - 1) * self.pitch_mm

    def drop(self, s: Array | float) -> Array:
        return self.drop_mm * np.maximum(s, 0.0) ** self.drop_power

    def s_of_phi(self, phi: Array | float) -> Array:
        return np.asarray((self.phi_post - np.asarray(phi)) / (self.phi_post - self.phi_ant))

    def phi_of_s(self, s: float) -> float:
        return self.phi_post - s * (self.phi_post - self.phi_ant)

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        r = self.cage.semi_x + self.half_thickness_mm
        lo_z = self.head_z(self.last_rib) - self.drop_mm - self.half_height_mm
        hi_z = self.head_z(self.first_rib) + self.half_height_mm
        cy = self.cage.centre_y
        return (
            np.array([-r, cy - self.cage.semi_y - self.half_thickness_mm, lo_z]),
            np.array([r, cy + self.cage.semi_y + self.half_thickness_mm, hi_z]),
        )

    def paint(self, out: npt.NDArray[np.uint8], x: Array, y: Array, z: Array) -> None:
        xx, yy = _gather(x, y, out.shape)
        phi, r = self.cage.polar(xx, yy)
        dr = r - self.cage.radius(phi)
        s = self.s_of_phi(phi)
        band = (np.abs(dr) <= self.half_thickness_mm) & (s >= 0.0) & (s <= max(self.s_max))
        jj, ii = np.nonzero(band)
        if jj.size == 0:
            return
        s_p = s[jj, ii][None, :]
        dr_p = dr[jj, ii][None, :]
        u = z[:, 0, :] + self.drop(s_p)  # (nk, M): z shifted back to the rib's head level
        rib = np.rint((self.rib1_head_z - u) / self.pitch_mm).astype(np.int32) + 1
        rib = np.clip(rib, self.first_rib, self.last_rib)
        dz = u - (self.rib1_head_z - (rib - 1) * self.pitch_mm)
        valid = s_p <= np.asarray(self.s_max, dtype=np.float32)[rib - 1]
        t, h, c = self.half_thickness_mm, self.half_height_mm, self.cortex_mm
        outer = valid & ((dz / h) ** 2 + (dr_p / t) ** 2 <= 1.0)
        inner = valid & ((dz / (h - c)) ** 2 + (dr_p / (t - c)) ** 2 <= 1.0)
        sub = out[:, jj, ii]
        sub[outer] = TISSUE_ID["rib_cortex"]
        sub[inner] = TISSUE_ID["rib_marrow"]
        out[:, jj, ii] = sub

    def centreline(self, side: int, rib: int, s: float) -> FloatArray:
        """LPS point on the centre line of rib ``rib`` (side +1 left, -1 right) at ``s``."""
        phi = self.phi_of_s(s)
        r = float(self.cage.radius(np.asarray(phi)))
        z = self.head_z(rib) - float(self.drop(np.asarray(s)))
        return np.array([side * r * math.cos(phi), self.cage.centre_y + r * math.sin(phi), z])


@dataclass(frozen=True)
class ScapulaBlade(Primitive):
    """Both scapular blades: a curved plate ``offset_mm`` outside the rib-cage ellipse.

    Between ``z_tip`` (inferior angle) and ``z_top`` the plate spans |x| from the medial
    border ``x_med(z)`` to the lateral border ``x_lat(z)``, both linear in z, so it narrows
    to the inferior angle.
    """

    cage: CageEllipse
    offset_mm: float
    half_thickness_mm: float
    cortex_mm: float
    z_tip: float
    z_top: float
    x_med_top: float
    x_med_tip: float
    x_lat_top: float
    x_lat_tip: float
    tissue: str = "scapula_cortex"

    def borders(self, z: Array | float) -> tuple[Array, Array]:
        f = (self.z_top - np.asarray(z)) / (self.z_top - self.z_tip)
        return (
            self.x_med_top + f * (self.x_med_tip - self.x_med_top),
            self.x_lat_top + f * (self.x_lat_tip - self.x_lat_top),
        )

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        r = max(self.cage.semi_x, self.cage.semi_y) + self.offset_mm + self.half_thickness_mm
        x = max(self.x_lat_top, self.x_lat_tip) + 5.0
        return (
            np.array([-x, self.cage.centre_y, self.z_tip]),
            np.array([x, self.cage.centre_y + r, self.z_top]),
        )

    def paint(self, out: npt.NDArray[np.uint8], x: Array, y: Array, z: Array) -> None:
        xx, yy = _gather(x, y, out.shape)
        phi, r = self.cage.polar(xx, yy)
        d = r - self.cage.radius(phi) - self.offset_mm
        lo = min(self.x_med_top, self.x_med_tip)
        hi = max(self.x_lat_top, self.x_lat_tip)
        ax = np.abs(xx)
        band = (np.abs(d) <= self.half_thickness_mm) & (ax >= lo) & (ax <= hi) & (phi > 0)
        jj, ii = np.nonzero(band)
        if jj.size == 0:
            return
        ax_p = ax[jj, ii][None, :]
        d_p = np.abs(d[jj, ii])[None, :]
        x_med, x_lat = self.borders(z[:, 0, :])
        c = self.cortex_mm
        outer = (ax_p >= x_med) & (ax_p <= x_lat)
        inner = (ax_p >= x_med + c) & (ax_p <= x_lat - c) & (d_p <= self.half_thickness_mm - c)
        inner &= (z[:, 0, :] >= self.z_tip + c) & (z[:, 0, :] <= self.z_top - c)
        sub = out[:, jj, ii]
        sub[outer] = TISSUE_ID["scapula_cortex"]
        sub[inner] = TISSUE_ID["scapula_marrow"]
        out[:, jj, ii] = sub

    def surface_point(self, side: int, z: float, u: float) -> tuple[FloatArray, FloatArray]:
        """Mid-plate point at height ``z``, fraction ``u`` from medial (0) to lateral (1)
        border, and the outward unit normal there (approximately radial)."""
        x_med, x_lat = (float(v) for v in self.borders(z))
        target_x = x_med + u * (x_lat - x_med)
        # the plate's |x| at polar angle phi is (R(phi) + offset) cos(phi): solve by bisection
        lo, hi = 0.0, math.pi / 2
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            rr = float(self.cage.radius(np.asarray(mid))) + self.offset_mm
            if rr * math.cos(mid) > target_x:
                lo = mid
            else:
                hi = mid
        phi = 0.5 * (lo + hi)
        rr = float(self.cage.radius(np.asarray(phi))) + self.offset_mm
        point = np.array([side * rr * math.cos(phi), self.cage.centre_y + rr * math.sin(phi), z])
        normal = np.array([side * math.cos(phi), math.sin(phi), 0.0])
        return point, normal

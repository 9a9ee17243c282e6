"""Analytic solid primitives in patient LPS mm, evaluated on broadcast coordinate blocks.

Every primitive gives its LPS bounding box and an ``inside(x, y, z)`` test on numpy arrays that
broadcast together: ``x`` and ``y`` of shape ``(1, nj|1, ni|1)`` (in-plane), ``z`` of shape
``(nk, 1, 1)``. A result of leading size 1 means "the same in every slice of the block" (the
rasteriser has already restricted the block to the primitive's z range). ``paint`` writes the
primitive's tissue id into a uint8 block where it is inside; later primitives overwrite
earlier ones, so the model list is a painting order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from sample_series.tissues import TISSUE_ID

FloatArray = npt.NDArray[np.float64]
Array = npt.NDArray[Any]
Vec3 = tuple[float, float, float]
BIG_MM = 1.0e4


def paint_mask(out: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], tissue: str) -> None:
    """Set ``out`` to the tissue id where ``mask`` (broadcastable to ``out``) is True."""
    tid = TISSUE_ID[tissue]
    if mask.ndim == 3 and mask.shape[0] == 1:
        out[:, np.broadcast_to(mask[0], out.shape[1:])] = tid
    else:
        out[np.broadcast_to(mask, out.shape)] = tid


class Primitive:
    """Base class: subclasses define ``tissue``, ``bounds`` and ``inside`` (or ``paint``)."""

    tissue: str

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        raise NotImplementedError

    def inside(self, x: Array, y: Array, z: Array) -> npt.NDArray[np.bool_]:
        raise NotImplementedError

    def paint(self, out: npt.NDArray[np.uint8], x: Array, y: Array, z: Array) -> None:
        paint_mask(out, np.asarray(self.inside(x, y, z)), self.tissue)


@dataclass(frozen=True)
class EllipticPrism(Primitive):
    """Elliptic cylinder along z, optionally rotated in-plane, between ``z_min`` and ``z_max``.

    ``floor_dome``/``ceiling_dome`` = (z at the rim, z at the centre) bend the bottom/top into a
    dome over the cross-section (diaphragm); the dome height falls off as ``1 - r**2`` with
    the normalised elliptic radius r.
    """

    tissue: str
    centre_xy_mm: tuple[float, float]
    semi_axes_mm: tuple[float, float]
    z_min: float = -BIG_MM
    z_max: float = BIG_MM
    angle_rad: float = 0.0
    floor_dome: tuple[float, float] | None = None
    ceiling_dome: tuple[float, float] | None = None

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        cx, cy = self.centre_xy_mm
        r = max(self.semi_axes_mm)
        z_lo = self.z_min if self.floor_dome is None else min(self.floor_dome)
        z_hi = self.z_max if self.ceiling_dome is None else max(self.ceiling_dome)
        return np.array([cx - r, cy - r, z_lo]), np.array([cx + r, cy + r, z_hi])

    def radius2(self, x: Array, y: Array) -> Array:
        cx, cy = self.centre_xy_mm
        a, b = self.semi_axes_mm
        dx = x - cx
        dy = y - cy
        if self.angle_rad:
            c, s = float(np.cos(self.angle_rad)), float(np.sin(self.angle_rad))
            dx, dy = dx * c + dy * s, dy * c - dx * s
        return (dx / a) ** 2 + (dy / b) ** 2

    def inside(self, x: Array, y: Array, z: Array) -> npt.NDArray[np.bool_]:
        r2 = self.radius2(x, y)
        mask = r2 <= 1.0
        if self.floor_dome is not None:
            rim, top = self.floor_dome
            mask = mask & (z >= rim + (top - rim) * np.maximum(1.0 - r2, 0.0))
        if self.ceiling_dome is not None:
            rim, top = self.ceiling_dome
            mask = mask & (z <= rim + (top - rim) * np.maximum(1.0 - r2, 0.0))
        if self.floor_dome is not None or self.ceiling_dome is not None:
            mask = mask & (z >= self.z_min) & (z <= self.z_max)
        return np.asarray(mask)


@dataclass(frozen=True)
class TaperedPrism(Primitive):
    """Elliptic cross-section whose centre and semi-axes vary linearly from ``z0`` to ``z1``."""

    tissue: str
    z0: float
    z1: float
    centre0_xy_mm: tuple[float, float]
    centre1_xy_mm: tuple[float, float]
    semi0_mm: tuple[float, float]
    semi1_mm: tuple[float, float]

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        c = np.array([self.centre0_xy_mm, self.centre1_xy_mm])
        r = max(*self.semi0_mm, *self.semi1_mm)
        lo = [c[:, 0].min() - r, c[:, 1].min() - r, min(self.z0, self.z1)]
        hi = [c[:, 0].max() + r, c[:, 1].max() + r, max(self.z0, self.z1)]
        return np.array(lo), np.array(hi)

    def inside(self, x: Array, y: Array, z: Array) -> npt.NDArray[np.bool_]:
        t = (z - self.z0) / (self.z1 - self.z0)
        (cx0, cy0), (cx1, cy1) = self.centre0_xy_mm, self.centre1_xy_mm
        (a0, b0), (a1, b1) = self.semi0_mm, self.semi1_mm
        cx, cy = cx0 + t * (cx1 - cx0), cy0 + t * (cy1 - cy0)
        a, b = a0 + t * (a1 - a0), b0 + t * (b1 - b0)
        return np.asarray(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0)


Plane = tuple[Vec3, float]  # keep points p with dot(normal, p) <= offset


def _clip(mask: Array, x: Array, y: Array, z: Array, planes: Sequence[Plane]) -> Array:
    for (nx, ny, nz), offset in planes:
        mask = mask & (x * nx + y * ny + z * nz <= offset)
    return mask


@dataclass(frozen=True)
class Ellipsoid(Primitive):
    """Ellipsoid with arbitrary orientation: ``axes`` are orthonormal unit vectors (rows)."""

    tissue: str
    centre_lps_mm: Vec3
    semi_axes_mm: Vec3
    axes: tuple[Vec3, Vec3, Vec3] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    clip: tuple[Plane, ...] = field(default=())

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        r = np.asarray(self.axes, dtype=np.float64)
        s = np.asarray(self.semi_axes_mm, dtype=np.float64)
        half = np.sqrt(((r * s[:, None]) ** 2).sum(axis=0))
        c = np.asarray(self.centre_lps_mm)
        return c - half, c + half

    def inside(self, x: Array, y: Array, z: Array) -> npt.NDArray[np.bool_]:
        cx, cy, cz = self.centre_lps_mm
        dx, dy, dz = x - cx, y - cy, z - cz
        acc: Array | float = 0.0
        for (ax, ay, az), s in zip(self.axes, self.semi_axes_mm, strict=True):
            acc = acc + ((dx * ax + dy * ay + dz * az) / s) ** 2
        return np.asarray(_clip(np.asarray(acc) <= 1.0, x, y, z, self.clip))


@dataclass(frozen=True)
class Capsule(Primitive):
    """All points within ``radius_mm`` of the segment p0-p1 (a rod with round ends)."""

    tissue: str
    p0_lps_mm: Vec3
    p1_lps_mm: Vec3
    radius_mm: float
    clip: tuple[Plane, ...] = field(default=())

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        p = np.array([self.p0_lps_mm, self.p1_lps_mm])
        return p.min(axis=0) - self.radius_mm, p.max(axis=0) + self.radius_mm

    def inside(self, x: Array, y: Array, z: Array) -> npt.NDArray[np.bool_]:
        x0, y0, z0 = self.p0_lps_mm
        d = np.subtract(self.p1_lps_mm, self.p0_lps_mm)
        dd = float(d @ d)
        px, py, pz = x - x0, y - y0, z - z0
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / dd, 0.0, 1.0)
        dist2 = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2
        return np.asarray(_clip(dist2 <= self.radius_mm**2, x, y, z, self.clip))


def capsule_pair(
    bone: str, p0: npt.ArrayLike, p1: npt.ArrayLike, radius_mm: float, cortex_mm: float
) -> list[Primitive]:
    """Cortex rod and the marrow rod inside it (painted in that order)."""
    a, b = _v3(p0), _v3(p1)
    return [
        Capsule(f"{bone}_cortex", a, b, radius_mm),
        Capsule(f"{bone}_marrow", a, b, max(radius_mm - cortex_mm, 0.3)),
    ]


def prism_pair(
    bone: str,
    centre_xy: tuple[float, float],
    semi_axes: tuple[float, float],
    z_min: float,
    z_max: float,
    cortex_mm: float,
    angle_rad: float = 0.0,
) -> list[Primitive]:
    a, b = semi_axes
    return [
        EllipticPrism(f"{bone}_cortex", centre_xy, semi_axes, z_min, z_max, angle_rad),
        EllipticPrism(
            f"{bone}_marrow",
            centre_xy,
            (a - cortex_mm, b - cortex_mm),
            z_min + cortex_mm,
            z_max - cortex_mm,
            angle_rad,
        ),
    ]


def ellipsoid_pair(
    bone: str,
    centre: npt.ArrayLike,
    semi_axes: npt.ArrayLike,
    axes: tuple[Vec3, Vec3, Vec3],
    cortex_mm: float,
) -> list[Primitive]:
    s = _v3(semi_axes)
    inner = (s[0] - cortex_mm, s[1] - cortex_mm, s[2] - cortex_mm)
    return [
        Ellipsoid(f"{bone}_cortex", _v3(centre), s, axes),
        Ellipsoid(f"{bone}_marrow", _v3(centre), inner, axes),
    ]


def orthonormal_frame(primary: npt.ArrayLike, hint: npt.ArrayLike) -> tuple[Vec3, Vec3, Vec3]:
    """Right-handed unit axes: ``primary``, then ``hint`` made perpendicular, then their cross."""
    u = np.asarray(primary, dtype=np.float64)
    u = u / np.linalg.norm(u)
    v = np.asarray(hint, dtype=np.float64)
    v = v - (v @ u) * u
    norm = np.linalg.norm(v)
    if norm < 1e-9:
        raise ValueError("orthonormal_frame: hint is parallel to the primary axis")
    v = v / norm
    w = np.cross(u, v)
    return _v3(u), _v3(v), _v3(w)


def _v3(v: npt.ArrayLike) -> Vec3:
    a = np.asarray(v, dtype=np.float64).reshape(3)
    return (float(a[0]), float(a[1]), float(a[2]))

"""Catalogue cases rebuilt on another grid (pixel x slice, in mm) or without noise: shared by the
bench reports."""

from __future__ import annotations

import dataclasses

from sample_series.spec import CaseSpec, ScanSpec

DEFAULT_GRIDS = ("0.8x1.0", "0.8x2.0", "1.0x1.25", "1.2x1.5", "1.6x2.0", "2.0x2.5")
# Coarser than this in-plane, each pixel is averaged from 2 x 2 sub-pixels (partial volume),
# as in the catalogue's small builds.
SUPERSAMPLE_ABOVE_MM = 1.2


def parse_grid(text: str) -> tuple[float, float]:
    """``"1.2x1.5"`` as (pixel, slice) in mm."""
    pixel, slice_ = text.lower().split("x")
    return float(pixel), float(slice_)


def noise_free(spec: CaseSpec) -> CaseSpec:
    """The case without image noise: what is left of an error is the pipeline's own."""
    return dataclasses.replace(spec, noise_sd_hu=0.0)


def on_grid(spec: CaseSpec, pixel_mm: float, slice_mm: float) -> CaseSpec:
    """The case's full-size scan on the grid (same field of view and scan length)."""
    full = spec.full
    scan = ScanSpec(
        rows=round(full.rows * full.pixel_mm / pixel_mm),
        columns=round(full.columns * full.pixel_mm / pixel_mm),
        pixel_mm=pixel_mm,
        n_slices=round(full.n_slices * full.slice_mm / slice_mm),
        slice_mm=slice_mm,
        supersample=2 if pixel_mm > SUPERSAMPLE_ABOVE_MM else 1,
    )
    return dataclasses.replace(spec, full=scan)

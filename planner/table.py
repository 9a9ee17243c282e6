"""The CT table and its cushion, found from the image: HU volume in, voxels not of the body.

Input: :class:`~planner.volume.CTVolume` (HU ``[slice, row, column]``, its geometry, and the
PatientPosition, which says on which side of the patient the table lies).
Output: :class:`TableFinding`: the table and cushion voxels on the volume grid (none when no
table was seen, or when it could not be told from the patient: then a warning says so).

Why it works: the table top and its cushion move through the gantry with the patient, so their
cross-section is the same in every slice, and they lie on the patient's down side. Per in-plane
pixel, the median HU over the slices and whether it is dense in nearly every slice give a 2-D
image of what does not change along z. Along each image line in the down direction the table
is the lowest such dense run, and its bottom surface is smooth from line to line. Beside the
patient the run ends in outside air: there the table's thickness and HU profile are seen.
Then, per slice and line, the table goes from its bottom surface up while the HU matches that
profile, never past the top surface interpolated from the free parts; where the patient lies
on it, the row where the skin meets the cushion (a pixel of both reads like either) is left to
the patient. A patient's back may not change along z either: density alone proves nothing, so
a table is only taken when seen beside the patient, with outside air above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from planner.volume import HU_FLOOR, CTVolume

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]

# Unit LPS vector from the patient toward the table, per DICOM PatientPosition (the opposite
# of planner.trajectory.UP_LPS): supine lies on the back, prone on the front, decubitus left
# (DL) on the left flank, decubitus right (DR) on the right.
DOWN_LPS: dict[str, tuple[float, float, float]] = {
    "HFS": (0.0, 1.0, 0.0),
    "FFS": (0.0, 1.0, 0.0),
    "HFP": (0.0, -1.0, 0.0),
    "FFP": (0.0, -1.0, 0.0),
    "HFDL": (1.0, 0.0, 0.0),
    "FFDL": (1.0, 0.0, 0.0),
    "HFDR": (-1.0, 0.0, 0.0),
    "FFDR": (-1.0, 0.0, 0.0),
}
NOT_SEPARATED_WARNING = (
    "the CT table or its cushion could not be separated from the patient "
    "({reason}): check that no entry point is on the table"
)
# The down direction must lie within this angle of an image axis (always so on axial scans).
MAX_AXIS_ANGLE_DEG = 20.0
MAX_SAMPLED_SLICES = 25
# A table pixel is dense in at least this fraction of the slices (a thin layer flickers).
ALWAYS_DENSE_FRACTION = 0.8
MIN_TABLE_WIDTH_MM = 100.0
# Denser than any skin: a layer like this at the bottom of the image is taken for a table.
TABLE_HU = 100.0
MAX_TABLE_THICKNESS_MM = 80.0
# Between neighbouring image lines the table's bottom surface moves by at most this.
BOTTOM_STEP_MM = 1.5
# The table seen free of the patient over at least this width, in all.
MIN_FREE_WIDTH_MM = 8.0
# Free lines whose table thickness differs from the median by more than this are not used.
THICKNESS_TOLERANCE_MM = 2.0
# Free lines whose thickness agrees with the median: at least this fraction of them.
CONSISTENT_FREE_FRACTION = 0.6
# Under the patient, the table matching its profile for less than half its thickness in more
# than this fraction of its lines (slices x columns) is not the table seen beside the patient.
MAX_SHORT_FRACTION = 0.05
# HU margin around the free table's profile within which a pixel under the patient is table.
PROFILE_TOLERANCE_HU = 20.0
# Per slice, a pixel below this at the table's expected top is a gap of air above it (fat and
# skin are above -150 HU, a pixel part air and part table or skin can be anything below).
GAP_HU = -250.0
# ... or a pixel below this and darker than both its neighbours along the line by this much.
DARK_GAP_HU = -150.0
GAP_DEPTH_HU = 100.0


@dataclass(frozen=True)
class TableFinding:
    """The table and cushion voxels ([slice, row, column]) and what was seen."""

    mask: BoolArray
    found: bool  # a table was seen (free of the patient somewhere)
    width_mm: float  # its width seen in the image; 0 when not found
    thickness_mm: float  # table and cushion, where free of the patient; 0 when not found
    warning: str | None  # set when a table was seen but not separated from the patient


@dataclass(frozen=True)
class _Orientation:
    """Maps 2-D [row, column] images to and from a frame where the table is at the bottom."""

    transpose: bool
    flip: bool
    row_mm: float  # pixel size along the down direction in the canonical frame
    column_mm: float

    def to_canonical(self, image: npt.NDArray) -> npt.NDArray:
        out = image.swapaxes(-1, -2) if self.transpose else image
        return out[..., ::-1, :] if self.flip else out

    def from_canonical(self, image: npt.NDArray) -> npt.NDArray:
        out = image[..., ::-1, :] if self.flip else image
        return out.swapaxes(-1, -2) if self.transpose else out


def _orientation(volume: CTVolume) -> _Orientation | None:
    """The frame in which the down direction is increasing row; None when it is oblique."""
    down = np.asarray(DOWN_LPS.get(volume.patient_position, DOWN_LPS["HFS"]))
    d = volume.geometry.direction_matrix
    along_column, along_row = float(d[:, 0] @ down), float(d[:, 1] @ down)
    limit = float(np.cos(np.radians(MAX_AXIS_ANGLE_DEG)))
    sx, sy, _ = volume.geometry.spacing_mm
    if abs(along_row) >= limit:
        return _Orientation(transpose=False, flip=along_row < 0, row_mm=sy, column_mm=sx)
    if abs(along_column) >= limit:
        return _Orientation(transpose=True, flip=along_column < 0, row_mm=sx, column_mm=sy)
    return None


def _none(shape: tuple[int, ...], warning: str | None = None) -> TableFinding:
    return TableFinding(np.zeros(shape, dtype=bool), False, 0.0, 0.0, warning)


@dataclass(frozen=True)
class _ZImage:
    """What does not change along z, in the canonical frame ([row, column], table below)."""

    always: BoolArray  # dense in nearly every slice
    outside_air: BoolArray  # air in nearly every slice, connected to the image border
    no_data: BoolArray  # at the HU floor: outside the reconstruction circle
    median_hu: FloatArray  # median over a sample of slices
    spread_hu: FloatArray  # interquartile range over the same sample


def _z_image(volume: CTVolume, orient: _Orientation, dense_hu: float) -> _ZImage:
    n = volume.hu.shape[0]
    fraction = orient.to_canonical(np.count_nonzero(volume.hu > dense_hu, axis=0) / float(n))
    sampled = np.unique(np.linspace(0, n - 1, min(n, MAX_SAMPLED_SLICES)).round().astype(int))
    ordered = orient.to_canonical(np.sort(volume.hu[sampled], axis=0).astype(np.float32))
    m = len(sampled)
    labels, _ = ndimage.label(fraction <= 1.0 - ALWAYS_DENSE_FRACTION)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return _ZImage(
        always=fraction >= ALWAYS_DENSE_FRACTION,
        outside_air=np.isin(labels, border[border > 0]),
        no_data=ordered[(3 * m) // 4] <= HU_FLOOR,
        median_hu=ordered[m // 2],
        spread_hu=ordered[(3 * m) // 4] - ordered[m // 4],
    )


def _widest_smooth_run(bottom: IntArray, max_step: int) -> tuple[int, int]:
    """Columns [start, stop) of the widest run where the bottom row exists and moves smoothly."""
    ok = bottom >= 0
    breaks = ~ok[1:] | ~ok[:-1] | (np.abs(np.diff(bottom)) > max_step)
    best, start = (0, 0), 0
    for stop in [*(np.flatnonzero(breaks) + 1).tolist(), bottom.size]:
        if ok[start] and stop - start > best[1] - best[0]:
            best = (start, stop)
        start = stop
    return best


def _run_up(ok: BoolArray, bottom: IntArray, cols: IntArray, max_rows: int) -> IntArray:
    """Per column, how many pixels from ``bottom`` upward are ``ok`` in a row (2-D ``ok``)."""
    run = np.zeros(cols.size, dtype=np.intp)
    going = np.ones(cols.size, dtype=bool)
    for t in range(max_rows + 1):
        r = bottom - t
        going &= (r >= 0) & ok[np.maximum(r, 0), cols]
        run += going
    return run


def _crossing(
    median: FloatArray, inner: IntArray, outer: IntArray, cols: IntArray, level: float
) -> npt.NDArray[np.float64]:
    """Sub-pixel row where the median HU falls below ``level`` from row ``inner`` to ``outer``."""
    a, b = median[inner, cols], median[outer, cols]
    fraction = np.clip((a - level) / np.maximum(a - b, 1e-3), 0.0, 1.0)
    return inner + fraction * (outer - inner)


@dataclass(frozen=True)
class _Profile:
    """The free table's median HU, row by row from its bottom up, as the lowest and highest
    value within a row of each (its bottom surface moves within a pixel from column to column;
    below the bottom row: air)."""

    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]

    def bounds(self, t: IntArray) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        i = np.minimum(t, self.low.size - 1)
        return self.low[i], self.high[i]


def _profile(median: FloatArray, bottom: IntArray, cols: IntArray, n_rows: int) -> _Profile:
    p = np.array([np.median(median[bottom - t, cols]) for t in range(max(1, n_rows))])
    padded = np.concatenate([[-np.inf], p, [p[-1]]])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 3)
    return _Profile(windows.min(axis=1), windows.max(axis=1))


def find_table(volume: CTVolume, dense_hu: float) -> TableFinding:
    """The CT table and cushion of ``volume`` (voxels above ``dense_hu``), see the module doc."""
    shape = volume.hu.shape
    orient = _orientation(volume)
    if orient is None:
        return _none(shape, NOT_SEPARATED_WARNING.format(reason="the image axes are oblique"))
    z = _z_image(volume, orient, dense_hu)
    rows = z.always.shape[0]

    # The table's bottom surface: per column, the lowest always-dense pixel, smooth across.
    lowest = np.max(np.where(z.always, np.arange(rows)[:, None], -1), axis=0)
    start, stop = _widest_smooth_run(lowest, max(1, int(round(BOTTOM_STEP_MM / orient.row_mm))))
    width_mm = (stop - start) * orient.column_mm
    if width_mm < MIN_TABLE_WIDTH_MM:
        return _none(shape)
    cols = np.arange(start, stop)
    bottom = lowest[cols]

    # Free of the patient: a short always-dense run from the bottom, outside air above it.
    # Where the reconstruction circle cuts the table's bottom the run is shorter: such columns
    # are left out of the profile, and removed only where free.
    max_rows = int(round(MAX_TABLE_THICKNESS_MM / orient.row_mm))
    run = _run_up(z.always, bottom, cols, max_rows)
    above = np.maximum(bottom - run, 0)
    # (a thin top flickers across the density threshold: the air may start one row higher)
    air = z.outside_air[above, cols] | z.outside_air[np.maximum(above - 1, 0), cols]
    free = (run <= max_rows) & (bottom - run >= 0) & air
    cut = (bottom + 1 < rows) & z.no_data[np.minimum(bottom + 1, rows - 1), cols]
    seen = free & ~cut
    if not seen.any():
        # Nothing like a table beside the patient. A dense layer at the bottom (skin is not)
        # may still be one that the patient covers from edge to edge.
        lowest_rows = [z.median_hu[np.maximum(bottom - t, 0), cols] for t in range(3)]
        dense_floor = np.max(lowest_rows, axis=0) > TABLE_HU
        if np.count_nonzero(dense_floor) >= CONSISTENT_FREE_FRACTION * cols.size:
            reason = "the patient covers it across the image"
            return _none(shape, NOT_SEPARATED_WARNING.format(reason=reason))
        return _none(shape)
    low_edge = _crossing(z.median_hu, bottom, np.minimum(bottom + 1, rows - 1), cols, dense_hu)
    top_edge = _crossing(z.median_hu, bottom - run + 1, above, cols, dense_hu)
    thickness = low_edge - top_edge
    typical = float(np.median(thickness[seen]))
    tolerance_rows = max(1.0, THICKNESS_TOLERANCE_MM / orient.row_mm)
    consistent = seen & (np.abs(thickness - typical) <= tolerance_rows)
    if np.count_nonzero(consistent) < CONSISTENT_FREE_FRACTION * np.count_nonzero(seen):
        reason = "its thickness beside the patient varies"
        return _none(shape, NOT_SEPARATED_WARNING.format(reason=reason))
    if np.count_nonzero(consistent) * orient.column_mm < MIN_FREE_WIDTH_MM:
        reason = "it is hardly seen beside the patient"
        return _none(shape, NOT_SEPARATED_WARNING.format(reason=reason))

    # The free table's profile short of its top row: part air, that one reads like fat.
    n_run = int(round(float(np.median(run[consistent]))))
    profile = _profile(z.median_hu, bottom[consistent], cols[consistent], n_run - 1)
    spread = [z.spread_hu[bottom[consistent] - t, cols[consistent]] for t in range(n_run)]
    noise_sd = float(np.median(np.concatenate(spread))) / 1.35
    # Under the patient the top surface lies the free parts' thickness above the bottom; the
    # table is the rows wholly below it.
    top = low_edge - np.interp(cols, cols[consistent], thickness[consistent])
    reach = bottom - np.ceil(top + 0.5).astype(np.intp) + 1
    reach[cut] = np.where(free[cut], run[cut], 0)
    height, short = _heights_per_slice(
        volume, orient, dense_hu, (bottom, cols, reach, ~cut), profile, noise_sd
    )
    warning = None
    if (cut & ~free).any():
        warning = NOT_SEPARATED_WARNING.format(reason="the scan circle cuts it under the patient")
    elif short > MAX_SHORT_FRACTION:
        warning = NOT_SEPARATED_WARNING.format(reason="under the patient it differs from beside")
    mask = np.zeros(orient.to_canonical(volume.hu).shape, dtype=bool)
    for t in range(int(height.max(initial=0))):
        k, c = np.nonzero(height > t)
        mask[k, bottom[c] - t, cols[c]] = True
    return TableFinding(
        np.ascontiguousarray(orient.from_canonical(mask)),
        True,
        width_mm,
        typical * orient.row_mm,
        warning,
    )


def _heights_per_slice(
    volume: CTVolume,
    orient: _Orientation,
    dense_hu: float,
    columns: tuple[IntArray, IntArray, IntArray, BoolArray],
    profile: _Profile,
    noise_sd: float,
) -> tuple[IntArray, float]:
    """Per slice and table column, how many pixels from the bottom up are table; and the
    fraction of these lines where, under the patient, it stops short of half its reach.

    ``columns``: per table column, its bottom row, its index, how many rows from the bottom
    may be table, and whether its bottom is in the image (where the scan circle cuts it, its
    profile is unknown and only density counts). The table goes up while the HU (averaged over
    three columns, for noise) matches the free table's profile. Where a gap of air lies at its
    top, the column is free in that slice: all of it below the gap is table. Otherwise the
    patient lies on it and the last matching row is left to the patient: where the skin sinks
    into the cushion, a pixel of both reads like either.
    """
    bottom, cols, reach, profiled = columns
    n_rows = int(reach.max()) + 3
    t = np.arange(n_rows)[:, None]
    rows = bottom[None, :] - t  # [t, column]: image row of each step up from the bottom
    inside = rows >= 0
    first = max(int(rows.min()), 0)
    band = orient.to_canonical(volume.hu)[:, first : int(bottom.max()) + 1].astype(np.float32)
    index = (np.maximum(rows, first) - first, cols[None, :])
    raw = band[:, index[0], index[1]]  # [slice, t, column]
    # Averaged over 3 columns at the same height above the bottom: the table's layers follow
    # its bottom, so this cuts the noise and not them.
    value = ndimage.uniform_filter1d(raw, 3, axis=2, mode="nearest")

    tolerance = max(PROFILE_TOLERANCE_HU, 3.0 * noise_sd / np.sqrt(3.0))
    low, high = profile.bounds(t)
    # Denser than a dense layer of the table is no skin or fat either: noise, or the table.
    high = np.where(high >= TABLE_HU, np.inf, high)
    in_range = (raw > dense_hu) & (
        ~profiled | ((value >= low - tolerance) & (value <= high + tolerance))
    )
    # The bottom two rows are part air, whatever they read: the patient cannot be there.
    matches = inside & (in_range | (t < 2))
    climbing = np.logical_and.accumulate(matches, axis=1)
    matching = np.count_nonzero(climbing & (t < reach), axis=1)

    # A gap: air, or a pixel much darker than both neighbours (air between table and skin).
    below = np.concatenate([raw[:, :1], raw[:, :-1]], axis=1)
    above = np.concatenate([raw[:, 1:], raw[:, -1:]], axis=1)
    darker = (raw < DARK_GAP_HU) & (raw < np.minimum(below, above) - GAP_DEPTH_HU)
    near_top = (t >= reach - 1) & (t <= reach + 2)
    is_gap = near_top & ((raw < GAP_HU) | darker | ~inside)
    gap = np.where(is_gap.any(axis=1), np.argmax(is_gap, axis=1), -1)
    free = (gap >= 0) & (matching >= gap - 2) & (reach > 0)
    lines = np.broadcast_to((reach > 0) & profiled, free.shape)
    short = np.count_nonzero(lines & ~free & (2 * matching < reach)) / max(1, lines.sum())
    return np.where(free, gap, np.maximum(matching - 1, 0)), float(short)

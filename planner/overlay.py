"""Stage: volume and plan in, annotated RGB views out.

Input: :class:`~planner.volume.CTVolume` and :class:`~planner.plan.Plan`.
Output: :class:`OverlayView` per needle (or one through the lesion when there is no needle):
an RGB uint8 array of the axial CT slice through the target, shown as stored (as on the
scanner console), with the lesion outline, L and W, target, entry with a skin-mark cross,
needle path, orientation letters and a scale bar, beside a text panel with the dose card.
L and W measured in the axial mode are drawn only on the slice they were measured on; when no
needle view shows that slice, a further view of it is added last.
Colours are from the Okabe-Ito colour-blind-safe palette.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from planner.anatomy import DISTANCE_CAP_MM
from planner.geometry import VolumeGeometry
from planner.measure import MeasurementMode
from planner.plan import Plan
from planner.trajectory import NeedlePath
from planner.volume import CTVolume

ORANGE = (230, 159, 0)  # lesion outline
SKY_BLUE = (86, 180, 233)  # length
GREEN = (0, 158, 115)  # width
YELLOW = (240, 228, 66)  # entry / skin mark
VERMILLION = (213, 94, 0)  # needle
WHITE = (255, 255, 255)
PANEL_WIDTH_PX = 360
MIN_IMAGE_PX = 512
WINDOW_CENTER_HU = 60.0
WINDOW_WIDTH_HU = 500.0
SAFETY_LINE = "SUGGESTED PLAN - verify before use"
# A needle tilted more than this out of the axial plane also gets an oblique view.
OUT_OF_PLANE_DEG = 2.0
OBLIQUE_MARGIN_MM = 25.0
OBLIQUE_HALF_WIDTH_MM = 70.0
LABEL_CLEARANCE_PX = 40.0


@dataclass(frozen=True)
class OverlayView:
    """One rendered view; ``slice_index`` is the CT slice (volume order) it derives from."""

    rgb: npt.NDArray[np.uint8]
    slice_index: int
    title: str
    row_direction_lps: tuple[float, ...]  # patient direction of the image's +x
    column_direction_lps: tuple[float, ...]  # patient direction of the image's +y


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _orientation_letters(vector: npt.NDArray[np.float64]) -> str:
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    order = np.argsort(-np.abs(vector))
    return "".join(letters[a][int(vector[a] > 0)] for a in order if abs(vector[a]) > 0.25)


def _measurement_lines(plan: Plan, geo: VolumeGeometry) -> list[tuple[str, tuple[int, int, int]]]:
    m = plan.measurement
    how = {MeasurementMode.THREE_D: "3-D, largest", MeasurementMode.AXIAL: "axial, largest"}
    lines = [
        (f"L  {m.length_mm:.1f} mm ({how[m.mode] if m.mode else 'manual'})", SKY_BLUE),
        (f"W  {m.width_mm:.1f} mm (perpendicular)", GREEN),
    ]
    if m.mode is MeasurementMode.AXIAL and m.slice_index is not None:
        z = geo.kji_to_lps((m.slice_index, 0, 0))[2]
        lines.append((f"   L/W measured on axial slice {m.slice_index} (z {z:.1f} mm)", WHITE))
    return lines


def _text_lines(
    plan: Plan, geo: VolumeGeometry, needle: NeedlePath | None, measurement_view: bool
) -> list[tuple[str, tuple[int, int, int]]]:
    d = plan.dose
    lo, hi = d.volume_interval_ml
    lines: list[tuple[str, tuple[int, int, int]]] = [
        (SAFETY_LINE, YELLOW),
        ("", WHITE),
        *_measurement_lines(plan, geo),
        (f"Volume LxWxW/2  {d.caliper_volume_ml:.1f} mL", WHITE),
        (f"   interval {lo:.1f}-{hi:.1f} mL", WHITE),
        (f"Anaesthetic  {d.anaesthetic_ml:g} mL", WHITE),
    ]
    if d.borderline:
        alt = " / ".join(f"{v:g}" for v in d.alternative_anaesthetic_ml)
        lines.append((f"BORDERLINE: {alt} mL possible", VERMILLION))
    lines += [
        (f"Steroid  {d.steroid.value} (max {d.max_steroid_ampoules} amp.)", WHITE),
        (f"Contrast {d.contrast_ml:g} mL first, {d.needle_gauge} G needle", WHITE),
        (f"Needles suggested  {d.suggested_needles}", WHITE),
        (f"Position  {plan.patient_position} (up: {plan.trajectory.up_side})", WHITE),
        ("", WHITE),
    ]
    if needle is not None:
        n = needle
        lines += [
            (f"Needle {n.needle_length_mm:.0f} mm, depth {n.depth_mm:.0f} mm", VERMILLION),
            (f"Angle {n.in_plane_angle_deg:.0f}° from vertical", VERMILLION),
            (f"CC tilt {n.craniocaudal_angle_deg:.0f}° {n.craniocaudal_tilt_toward}", VERMILLION),
            (f"Entry z {n.entry_z_mm:.1f} mm, {n.lateral_offset_mm:+.0f} mm", YELLOW),
            ("   from midline (+ = patient left)", YELLOW),
            (
                "Clearance "
                + ", ".join(f"{k} {_mm(v)}" for k, v in sorted(n.clearance_mm.items())),
                WHITE,
            ),
        ]
    elif measurement_view and plan.trajectory.needles:
        lines.append(("Needle path: see the needle view(s)", WHITE))
    else:
        lines.append(("NO SAFE PATH FOUND", VERMILLION))
    checked = ", ".join(s.split(" (")[0] for s in plan.trajectory.structures_checked)
    lines += [("", WHITE), ("Checked: " + checked, WHITE)]
    return lines


def _mm(value: float) -> str:
    """Clearances are measured up to DISTANCE_CAP_MM; beyond it they read as '>cap'."""
    return f">{DISTANCE_CAP_MM:.0f} mm" if value >= DISTANCE_CAP_MM - 0.01 else f"{value:.1f} mm"


def _label(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    colour: tuple[int, int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    right_edge: float,
) -> None:
    """Text on the image, kept off the side panel."""
    width = draw.textlength(text, font=font)
    x = min(xy[0], right_edge - width - 4)
    draw.text((max(x, 2.0), xy[1]), text, fill=colour, font=font)


def _wrap(text: str, width_chars: int) -> list[str]:
    words, out, line = text.split(" "), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width_chars and line:
            out.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    out.append(line)
    return out


@dataclass(frozen=True)
class _Plane:
    """A 2-D cut through the volume: grey pixels, lesion mask, and the LPS mapping."""

    grey: npt.NDArray[np.uint8]
    lesion: npt.NDArray[np.bool_]
    origin_lps_mm: npt.NDArray[np.float64]  # centre of pixel (0, 0)
    row_dir: npt.NDArray[np.float64]  # LPS unit vector of increasing column (image x)
    col_dir: npt.NDArray[np.float64]  # LPS unit vector of increasing row (image y)
    pixel_mm: float
    label: str
    slice_index: int | None  # the CT slice an axial plane shows; None when oblique

    def to_pixel(self, lps: tuple[float, float, float], scale: int) -> tuple[float, float]:
        d = np.asarray(lps) - self.origin_lps_mm
        return (
            (float(d @ self.row_dir) / self.pixel_mm + 0.5) * scale,
            (float(d @ self.col_dir) / self.pixel_mm + 0.5) * scale,
        )


def _window(hu: npt.NDArray[np.floating] | npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    lo = WINDOW_CENTER_HU - WINDOW_WIDTH_HU / 2
    return np.clip((hu.astype(np.float32) - lo) / WINDOW_WIDTH_HU * 255, 0, 255).astype(np.uint8)


def _slice_of(geo: VolumeGeometry, lps: tuple[float, float, float]) -> int:
    return int(np.clip(np.rint(geo.lps_to_kji(lps)[0]), 0, geo.shape[0] - 1))


def _axial_plane(volume: CTVolume, plan: Plan, k: int) -> _Plane:
    geo = volume.geometry
    return _Plane(
        grey=_window(volume.hu[k]),
        lesion=plan.lesion.full_mask(geo.shape)[k],
        origin_lps_mm=geo.kji_to_lps((k, 0, 0)),
        row_dir=geo.direction_matrix[:, 0],
        col_dir=geo.direction_matrix[:, 1],
        pixel_mm=float(geo.spacing_mm[0]),
        label=f"axial z {geo.kji_to_lps((k, 0, 0))[2]:.1f} mm",
        slice_index=k,
    )


def _oblique_plane(volume: CTVolume, plan: Plan, needle: NeedlePath) -> _Plane:
    """The plane holding the whole needle and the horizontal perpendicular to it."""
    geo = volume.geometry
    entry, target = np.asarray(needle.entry_lps_mm), np.asarray(needle.target_lps_mm)
    along = (target - entry) / np.linalg.norm(target - entry)
    across = np.cross(along, geo.slice_normal)
    across /= np.linalg.norm(across)
    pixel = float(min(geo.spacing_mm[:2]))
    half_along = needle.depth_mm / 2 + OBLIQUE_MARGIN_MM
    n_along = int(np.ceil(2 * half_along / pixel))
    n_across = int(np.ceil(2 * OBLIQUE_HALF_WIDTH_MM / pixel))
    # Image x runs across the needle, image y along it (entry at the top).
    origin = (entry + target) / 2 - half_along * along - OBLIQUE_HALF_WIDTH_MM * across
    jj, ii = np.mgrid[0:n_along, 0:n_across]
    pts = origin + ii[..., None] * pixel * across + jj[..., None] * pixel * along
    kji = geo.lps_to_kji(pts.reshape(-1, 3)).T
    hu = ndimage.map_coordinates(volume.hu, kji, order=1, mode="constant", cval=-1000.0)
    mask = plan.lesion.full_mask(geo.shape)
    lesion = ndimage.map_coordinates(mask.view(np.uint8), kji, order=0, mode="constant")
    return _Plane(
        grey=_window(hu.reshape(n_along, n_across)),
        lesion=lesion.reshape(n_along, n_across).astype(bool),
        origin_lps_mm=origin,
        row_dir=across,
        col_dir=along,
        pixel_mm=pixel,
        label=f"OBLIQUE along the needle (tilt {needle.craniocaudal_angle_deg:.0f}°)",
        slice_index=None,
    )


def _shows_calipers(plane: _Plane, plan: Plan) -> bool:
    """Axial-mode L and W lie on one slice: drawn there only, not projected onto others."""
    m = plan.measurement
    return m.mode is not MeasurementMode.AXIAL or plane.slice_index == m.slice_index


def _draw_view(
    plane: _Plane,
    plan: Plan,
    geo: VolumeGeometry,
    needle: NeedlePath | None,
    measurement_view: bool = False,
) -> npt.NDArray[np.uint8]:
    """One view; a ``measurement_view`` shows the lesion and its L and W without the target."""
    rows, cols = plane.grey.shape
    scale = max(1, int(np.ceil(MIN_IMAGE_PX / max(rows, cols))))
    w, h = cols * scale, rows * scale
    base = Image.fromarray(plane.grey).resize((w, h), Image.Resampling.BILINEAR)
    panel = [
        (part, colour)
        for text, colour in _text_lines(plan, geo, needle, measurement_view)
        for part in _wrap(text, 40)
    ]
    # Pillow's built-in font has no en dash: the plan's warnings use one in intervals.
    warnings = [
        part
        for warning in plan.warnings
        for part in _wrap("! " + warning.replace("\u2013", "-"), 44)
    ]
    # The canvas grows to show every warning: none may be cut off the panel.
    panel_px = 10 + 20 * len(panel) + 16 * len(warnings) + 10
    arr = np.zeros((max(h, 512, panel_px), w + PANEL_WIDTH_PX, 3), dtype=np.uint8)
    arr[:h, :w] = np.asarray(base.convert("RGB"))
    if plane.lesion.any():
        big = np.kron(plane.lesion, np.ones((scale, scale), dtype=bool))
        edge = big & ~ndimage.binary_erosion(big, iterations=max(1, scale // 2))
        arr[:h, :w][edge] = ORANGE
    canvas = Image.fromarray(arr)
    draw = ImageDraw.Draw(canvas)
    font, small, big_font = _font(15), _font(13), _font(20)

    m = plan.measurement
    calipers = (
        (m.length_endpoints_lps_mm, SKY_BLUE, f"L {m.length_mm:.0f}"),
        (m.width_endpoints_lps_mm, GREEN, f"W {m.width_mm:.0f}"),
    )
    labelled: list[tuple[float, float]] = []
    for (p1, p2), colour, label in calipers if _shows_calipers(plane, plan) else ():
        a, b = plane.to_pixel(p1, scale), plane.to_pixel(p2, scale)
        draw.line([a, b], fill=colour, width=2)
        # L and W ending side by side would print one label over the other.
        crowded = any(np.hypot(b[0] - x, b[1] - y) < LABEL_CLEARANCE_PX for x, y in labelled)
        end = a if crowded else b
        labelled.append(end)
        _label(draw, (end[0] + 4, end[1] - 8), label, colour, small, w)

    anchor = needle.target_lps_mm if needle else plan.target_lps_mm
    if needle is not None:
        e, t = plane.to_pixel(needle.entry_lps_mm, scale), plane.to_pixel(anchor, scale)
        draw.line([e, t], fill=VERMILLION, width=3)
        r = 10
        draw.line([(e[0] - r, e[1]), (e[0] + r, e[1])], fill=YELLOW, width=3)
        draw.line([(e[0], e[1] - r), (e[0], e[1] + r)], fill=YELLOW, width=3)
        _label(draw, (e[0] + 12, e[1] - 22), f"{needle.depth_mm:.0f} mm", YELLOW, font, w)
        nearest = min(needle.clearance_mm.items(), key=lambda kv: kv[1], default=None)
        if nearest is not None:
            mid = ((e[0] + t[0]) / 2 + 8, (e[1] + t[1]) / 2)
            _label(draw, mid, f"nearest {nearest[0]} {_mm(nearest[1])}", YELLOW, small, w)
    if not measurement_view:
        tx, ty = plane.to_pixel(anchor, scale)
        draw.ellipse([tx - 5, ty - 5, tx + 5, ty + 5], outline=WHITE, width=2)

    draw.text((w / 2 - 8, 6), _orientation_letters(-plane.col_dir), fill=WHITE, font=big_font)
    draw.text((w / 2 - 8, h - 28), _orientation_letters(plane.col_dir), fill=WHITE, font=big_font)
    draw.text((6, h / 2 - 10), _orientation_letters(-plane.row_dir), fill=WHITE, font=big_font)
    draw.text((w - 30, h / 2 - 10), _orientation_letters(plane.row_dir), fill=WHITE, font=big_font)
    bar_px = 50.0 / plane.pixel_mm * scale
    draw.line([(10, h - 12), (10 + bar_px, h - 12)], fill=WHITE, width=3)
    draw.text((10, h - 32), "50 mm", fill=WHITE, font=small)
    draw.text((10, 8), plane.label, fill=WHITE, font=small)

    y = 10
    for part, colour in panel:
        draw.text((w + 12, y), part, fill=colour, font=font)
        y += 20
    for part in warnings:
        draw.text((w + 12, y), part, fill=ORANGE, font=small)
        y += 16
    return np.asarray(canvas, dtype=np.uint8)


def _view(
    plane: _Plane,
    plan: Plan,
    geo: VolumeGeometry,
    needle: NeedlePath | None,
    title: str,
    slice_index: int,
    measurement_view: bool = False,
) -> OverlayView:
    return OverlayView(
        rgb=_draw_view(plane, plan, geo, needle, measurement_view),
        slice_index=slice_index,
        title=title,
        row_direction_lps=tuple(float(v) for v in plane.row_dir),
        column_direction_lps=tuple(float(v) for v in plane.col_dir),
    )


def render_overlays(volume: CTVolume, plan: Plan) -> tuple[OverlayView, ...]:
    """Per needle an axial view, and an oblique one along it when it leaves the axial plane;
    one axial view through the lesion when no needle was planned; last, when L and W were
    measured in the axial mode on a slice none of those shows, an axial view of that slice."""
    geo = volume.geometry
    views: list[OverlayView] = []
    axial_slices: set[int] = set()
    if not plan.trajectory.needles:
        k = _slice_of(geo, plan.target_lps_mm)
        views.append(_view(_axial_plane(volume, plan, k), plan, geo, None, "lesion (no needle)", k))
        axial_slices.add(k)
    for n, needle in enumerate(plan.trajectory.needles, start=1):
        k = _slice_of(geo, needle.target_lps_mm)
        axial = _axial_plane(volume, plan, k)
        views.append(_view(axial, plan, geo, needle, f"needle {n}, axial view", k))
        axial_slices.add(k)
        if needle.craniocaudal_angle_deg > OUT_OF_PLANE_DEG:
            oblique = _oblique_plane(volume, plan, needle)
            views.append(_view(oblique, plan, geo, needle, f"needle {n}, oblique view", k))
    m = plan.measurement
    if m.mode is MeasurementMode.AXIAL and m.slice_index not in axial_slices:
        k = int(m.slice_index) if m.slice_index is not None else _slice_of(geo, m.center_lps_mm)
        title = f"lesion measurement, axial slice {k}"
        views.append(_view(_axial_plane(volume, plan, k), plan, geo, None, title, k, True))
    return tuple(views)

"""Stage: volume and plan in, annotated RGB views out.

Input: :class:`~planner.volume.CTVolume` and :class:`~planner.plan.Plan`.
Output: :class:`OverlayView` per needle (or one through the lesion when there is no needle):
an RGB uint8 array of the axial CT slice through the target, shown as stored (as on the
scanner console), with the lesion outline, L and W, target, entry with a skin-mark cross,
needle path, orientation letters and a scale bar, beside a text panel with the dose card.
Colours are from the Okabe-Ito colour-blind-safe palette.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from planner.plan import Plan
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


@dataclass(frozen=True)
class OverlayView:
    rgb: npt.NDArray[np.uint8]
    slice_index: int
    title: str


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _orientation_letters(vector: npt.NDArray[np.float64]) -> str:
    letters = (("R", "L"), ("A", "P"), ("F", "H"))
    order = np.argsort(-np.abs(vector))
    return "".join(letters[a][int(vector[a] > 0)] for a in order if abs(vector[a]) > 0.25)


def _text_lines(plan: Plan) -> list[tuple[str, tuple[int, int, int]]]:
    m, d = plan.measurement, plan.dose
    lo, hi = d.volume_interval_ml
    lines: list[tuple[str, tuple[int, int, int]]] = [
        (SAFETY_LINE, YELLOW),
        ("", WHITE),
        (f"L  {m.length_mm:.1f} mm (3-D, largest)", SKY_BLUE),
        (f"W  {m.width_mm:.1f} mm (perpendicular)", GREEN),
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
    if plan.trajectory.needles:
        n = plan.trajectory.needles[0]
        lines += [
            (f"Needle {n.needle_length_mm:.0f} mm, depth {n.depth_mm:.0f} mm", VERMILLION),
            (f"Angle {n.in_plane_angle_deg:.0f}° from vertical", VERMILLION),
            (f"CC tilt {n.craniocaudal_angle_deg:.0f}° {n.craniocaudal_tilt_toward}", VERMILLION),
            (f"Entry z {n.entry_z_mm:.1f} mm, {n.lateral_offset_mm:+.0f} mm", YELLOW),
            ("   from midline (+ = patient left)", YELLOW),
        ]
    else:
        lines.append(("NO SAFE PATH FOUND", VERMILLION))
    checked = ", ".join(s.split(" (")[0] for s in plan.trajectory.structures_checked)
    lines += [("", WHITE), ("Checked: " + checked, WHITE)]
    return lines


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


def _to_pixel(
    volume: CTVolume, lps: tuple[float, float, float], scale: float
) -> tuple[float, float]:
    k, j, i = volume.geometry.lps_to_kji(lps)
    return ((i + 0.5) * scale, (j + 0.5) * scale)


def render_view(volume: CTVolume, plan: Plan, needle_index: int | None) -> OverlayView:
    geo = volume.geometry
    needle = plan.trajectory.needles[needle_index] if needle_index is not None else None
    anchor = needle.target_lps_mm if needle else plan.target_lps_mm
    k = int(np.clip(np.rint(geo.lps_to_kji(anchor)[0]), 0, geo.shape[0] - 1))
    lo = WINDOW_CENTER_HU - WINDOW_WIDTH_HU / 2
    grey = np.clip((volume.hu[k].astype(np.float32) - lo) / WINDOW_WIDTH_HU * 255, 0, 255)
    rows, cols = grey.shape
    scale = max(1, int(np.ceil(MIN_IMAGE_PX / max(rows, cols))))
    base = Image.fromarray(grey.astype(np.uint8)).resize(
        (cols * scale, rows * scale), Image.Resampling.BILINEAR
    )
    canvas = Image.new("RGB", (cols * scale + PANEL_WIDTH_PX, max(rows * scale, 512)), (0, 0, 0))
    canvas.paste(base.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font, small = _font(15), _font(13)

    lesion_slice = plan.lesion.full_mask(geo.shape)[k]
    if lesion_slice.any():
        big = np.kron(lesion_slice, np.ones((scale, scale), dtype=bool))
        edge = big & ~ndimage.binary_erosion(big, iterations=max(1, scale // 2))
        arr = np.asarray(canvas).copy()
        arr[: big.shape[0], : big.shape[1]][edge] = ORANGE
        canvas = Image.fromarray(arr)
        draw = ImageDraw.Draw(canvas)

    m = plan.measurement
    for (p1, p2), colour, label in (
        (m.length_endpoints_lps_mm, SKY_BLUE, f"L {m.length_mm:.0f}"),
        (m.width_endpoints_lps_mm, GREEN, f"W {m.width_mm:.0f}"),
    ):
        a, b = _to_pixel(volume, p1, scale), _to_pixel(volume, p2, scale)
        draw.line([a, b], fill=colour, width=2)
        draw.text((b[0] + 4, b[1] - 8), label, fill=colour, font=small)

    if needle is not None:
        e = _to_pixel(volume, needle.entry_lps_mm, scale)
        t = _to_pixel(volume, needle.target_lps_mm, scale)
        draw.line([e, t], fill=VERMILLION, width=3)
        r = 10
        draw.line([(e[0] - r, e[1]), (e[0] + r, e[1])], fill=YELLOW, width=3)
        draw.line([(e[0], e[1] - r), (e[0], e[1] + r)], fill=YELLOW, width=3)
        draw.text((e[0] + 12, e[1] - 22), f"{needle.depth_mm:.0f} mm", fill=YELLOW, font=font)
        if needle.craniocaudal_angle_deg > 0.5:
            draw.text(
                (e[0] + 12, e[1] - 40),
                f"out of plane {needle.craniocaudal_angle_deg:.0f}°: projection",
                fill=YELLOW,
                font=small,
            )
    tx, ty = _to_pixel(volume, anchor, scale)
    draw.ellipse([tx - 5, ty - 5, tx + 5, ty + 5], outline=WHITE, width=2)

    row_dir, col_dir = geo.direction_matrix[:, 0], geo.direction_matrix[:, 1]
    w, h = cols * scale, rows * scale
    big_font = _font(20)
    draw.text((w / 2 - 8, 6), _orientation_letters(-col_dir), fill=WHITE, font=big_font)
    draw.text((w / 2 - 8, h - 28), _orientation_letters(col_dir), fill=WHITE, font=big_font)
    draw.text((6, h / 2 - 10), _orientation_letters(-row_dir), fill=WHITE, font=big_font)
    draw.text((w - 26, h / 2 - 10), _orientation_letters(row_dir), fill=WHITE, font=big_font)
    bar_px = 50.0 / geo.spacing_mm[0] * scale
    draw.line([(10, h - 12), (10 + bar_px, h - 12)], fill=WHITE, width=3)
    draw.text((10, h - 32), "50 mm", fill=WHITE, font=small)
    draw.text((10, 8), f"z {geo.kji_to_lps((k, 0, 0))[2]:.1f} mm", fill=WHITE, font=small)

    y = 10
    for text, colour in _text_lines(plan):
        for part in _wrap(text, 40):
            draw.text((w + 12, y), part, fill=colour, font=font)
            y += 20
    for warning in plan.warnings:
        for part in _wrap("! " + warning, 44):
            if y < canvas.height - 18:
                draw.text((w + 12, y), part, fill=ORANGE, font=small)
                y += 16
    title = f"needle {needle_index + 1}" if needle_index is not None else "lesion (no needle)"
    return OverlayView(rgb=np.asarray(canvas, dtype=np.uint8), slice_index=k, title=title)


def render_overlays(volume: CTVolume, plan: Plan) -> tuple[OverlayView, ...]:
    """One axial view per needle; one view through the lesion when no needle was planned."""
    if not plan.trajectory.needles:
        return (render_view(volume, plan, None),)
    return tuple(render_view(volume, plan, i) for i in range(len(plan.trajectory.needles)))

"""The named sample cases: deterministic phantoms covering sites, positions, tiers and access.

Every lesion is placed relative to a landmark of the analytic anatomy (a rib's centre line, a
vertebral body, the scapular plate, the iliac arc, the femoral axis...), so moving a bone in
the model moves its lesion with it. Figures quoted in descriptions are design targets; the
truth computed by :mod:`sample_series.truth` is authoritative.
"""

from __future__ import annotations

import math

import numpy as np

from sample_series.anatomy import PELVIS, THORAX, BodyRegion
from sample_series.geometry import PatientPosition as P
from sample_series.lesion import LesionShape, Lobe
from sample_series.spec import BoneSite, CaseSpec, NeedleAccess, ScanSpec
from sample_series.thorax import LEFT, RIGHT

Z_AXIS = (0.0, 0.0, 1.0)


def _scan(rows: int, pixel_mm: float, n_slices: int, slice_mm: float) -> ScanSpec:
    return ScanSpec(
        rows=rows,
        columns=rows,
        pixel_mm=pixel_mm,
        n_slices=n_slices,
        slice_mm=slice_mm,
        supersample=2,
    )


def _rib_lesion(
    side: int,
    rib: int,
    s: float,
    semi: tuple[float, float, float],
    out_mm: float,
    extra: tuple[tuple[float, float, tuple[float, float, float]], ...] = (),
) -> LesionShape:
    """Main lobe on the rib (semi-axes along the rib, outward, and across), centred ``out_mm``
    outward of the centre line; ``extra`` lobes = (outward offset, along-rib offset, semi)."""
    p, tangent, outward = THORAX.rib_point(side, rib, s)
    lobes = [Lobe.oriented(p + out_mm * outward, semi, tangent, outward)]
    for off_out, off_along, esemi in extra:
        lobes.append(
            Lobe.oriented(p + off_out * outward + off_along * tangent, esemi, tangent, outward)
        )
    return LesionShape(tuple(lobes))


def _rib_lateral_small() -> CaseSpec:
    return CaseSpec(
        name="rib_lateral_small",
        description="Lytic lesion of the left 6th rib, lateral arc, 15 x 10 mm; supine. The "
        "simple end-to-end case.",
        region=BodyRegion.THORAX,
        site=BoneSite.RIB_LATERAL,
        side="left",
        position=P.HFS,
        lesion=_rib_lesion(LEFT, 6, 0.47, (7.5, 5.0, 5.0), 1.0),
        access=NeedleAccess.IN_PLANE,
        access_note="direct lateral route in the axial plane",
        seed=101,
        small=_scan(160, 2.6, 48, 3.0),
        instances_reversed=True,
    )


def _rib_lateral_decubitus() -> CaseSpec:
    extension = ((9.0, 2.0, (15.0, 9.0, 13.5)),)
    return CaseSpec(
        name="rib_lateral_decubitus",
        description="Expansile lytic lesion of the right 7th rib, lateral arc, with a soft-tissue "
        "mass through the cortex; patient lying on the left side (right side up).",
        region=BodyRegion.THORAX,
        site=BoneSite.RIB_LATERAL,
        side="right",
        position=P.HFDL,
        lesion=_rib_lesion(RIGHT, 7, 0.5, (20.0, 7.0, 9.0), 0.0, extension),
        access=NeedleAccess.IN_PLANE,
        access_note="lateral route from the up side, in plane",
        seed=102,
        small=_scan(176, 2.4, 56, 3.0),
        outside_circle_hu=-2048.0,
    )


def _rib_posterior() -> CaseSpec:
    extra = ((6.0, -8.0, (10.0, 8.0, 12.0)), (5.0, 10.0, (11.0, 9.0, 13.5)))
    return CaseSpec(
        name="rib_posterior_prone",
        description="Lobulated lytic lesion of the right 8th rib, posterior arc below the scapula, "
        "breaching the cortex into the back muscles; prone.",
        region=BodyRegion.THORAX,
        site=BoneSite.RIB_POSTERIOR,
        side="right",
        position=P.HFP,
        lesion=_rib_lesion(RIGHT, 8, 0.12, (15.0, 7.0, 9.0), 1.0, extra),
        access=NeedleAccess.IN_PLANE,
        access_note="posterior route through the back muscles",
        seed=103,
        small=_scan(160, 2.6, 56, 3.0),
    )


def _rib_anterior() -> CaseSpec:
    return CaseSpec(
        name="rib_anterior_ffs",
        description="Lytic lesion of the left 4th rib, anterior arc near the costal cartilage; "
        "supine, feet first.",
        region=BodyRegion.THORAX,
        site=BoneSite.RIB_ANTERIOR,
        side="left",
        position=P.FFS,
        lesion=_rib_lesion(LEFT, 4, 0.85, (10.0, 6.0, 7.0), 1.5),
        access=NeedleAccess.IN_PLANE,
        access_note="anterior route in the axial plane",
        seed=104,
        small=_scan(144, 2.9, 48, 3.0),
        pixel_representation=0,
    )


def _sternum() -> CaseSpec:
    c = THORAX.sternum_point(20.0)
    lobe = Lobe.oriented(c + [0.0, -2.0, 0.0], (17.0, 12.25, 8.0), Z_AXIS, (1.0, 0.0, 0.0))
    return CaseSpec(
        name="sternum_borderline_10",
        description="Lytic lesion of the sternal body, 34 x 24.5 mm, caliper volume just above "
        "10 mL: borderline between the 1.5 and 5 mL tiers; supine.",
        region=BodyRegion.THORAX,
        site=BoneSite.STERNUM,
        side="midline",
        position=P.HFS,
        lesion=LesionShape((lobe,)),
        access=NeedleAccess.IN_PLANE,
        access_note="anterior route in the axial plane",
        seed=105,
        small=_scan(160, 2.6, 56, 3.0),
    )


def _vertebral_body() -> CaseSpec:
    z = THORAX.vertebra_z(8)
    c = THORAX.vertebral_body_centre(8)
    main = Lobe.oriented(c + [-5.0, 1.0, 0.0], (11.0, 9.0, 8.5), (1.0, 0.3, 0.0), Z_AXIS)
    ext = Lobe.oriented((-20.0, 52.0, z - 3.0), (8.0, 6.0, 7.0), (1.0, -0.6, 0.0), Z_AXIS)
    return CaseSpec(
        name="vertebral_body_t8",
        description="Lytic lesion of the T8 vertebral body, right half, with a right "
        "paravertebral extension; prone, contrast-enhanced aorta.",
        region=BodyRegion.THORAX,
        site=BoneSite.VERTEBRAL_BODY,
        side="right",
        position=P.HFP,
        lesion=LesionShape((main, ext)),
        access=NeedleAccess.IN_PLANE,
        access_note="posterolateral route below the transverse process, in plane",
        seed=106,
        small=_scan(160, 2.6, 56, 3.0),
        contrast=True,
        instances_reversed=True,
        outside_circle_hu=-2048.0,
    )


def _costovertebral() -> CaseSpec:
    outer, joint = THORAX.rib_neck(RIGHT, 7)
    c = outer + 0.55 * (joint - outer) + [0.0, 0.0, -2.0]  # level with the transverse process
    lobe = Lobe.oriented(c, (8.0, 4.0, 6.0), joint - outer, Z_AXIS)
    return CaseSpec(
        name="costovertebral_tilted",
        description="Lytic lesion of the right 7th costovertebral junction (rib neck) between "
        "the vertebral body and the transverse process; prone. In the axial plane the "
        "transverse process, the vertebra and the lung block every route; a route tilted "
        "craniocaudally passes between two transverse processes.",
        region=BodyRegion.THORAX,
        site=BoneSite.COSTOVERTEBRAL,
        side="right",
        position=P.HFP,
        lesion=LesionShape((lobe,)),
        access=NeedleAccess.TILTED_ONLY,
        access_note="no route in the axial plane (transverse process, vertebra, lung); a "
        "craniocaudally tilted posterior route passes between the transverse processes",
        seed=107,
        small=_scan(160, 2.6, 64, 2.5),
    )


def _vertebral_no_path() -> CaseSpec:
    z = THORAX.vertebra_z(9)
    main = Lobe.oriented((3.0, 36.0, z), (10.0, 7.0, 7.5), (1.0, 0.0, 0.0), Z_AXIS)
    ext = Lobe.oriented((-3.0, 27.0, z + 1.0), (10.0, 6.0, 8.0), (1.0, 0.2, 0.0), Z_AXIS)
    return CaseSpec(
        name="vertebral_body_no_path",
        description="Lytic lesion of the anterior T9 vertebral body bulging into the posterior "
        "mediastinum, between the lungs, the aorta and the heart; prone, feet first. No safe "
        "straight route for a 22 G needle.",
        region=BodyRegion.THORAX,
        site=BoneSite.VERTEBRAL_BODY,
        side="midline",
        position=P.FFP,
        lesion=LesionShape((main, ext)),
        access=NeedleAccess.NONE,
        access_note="every straight route crosses the vertebra, lung, the aorta or the heart, "
        "or is longer than 150 mm",
        seed=108,
        small=_scan(160, 2.6, 56, 3.0),
        instances_reversed=True,
    )


def _scapula() -> CaseSpec:
    p, normal = THORAX.scapula.surface_point(LEFT, 80.0, 0.5)
    along = np.cross(Z_AXIS, normal)
    main = Lobe.oriented(p, (12.0, 10.0, 4.5), along, Z_AXIS)
    ext = Lobe.oriented(p + 6.0 * normal, (9.0, 8.0, 6.0), along, Z_AXIS)
    return CaseSpec(
        name="scapula_decubitus",
        description="Lytic lesion of the left scapular blade with a posterior soft-tissue "
        "extension; patient lying on the right side (left side up).",
        region=BodyRegion.THORAX,
        site=BoneSite.SCAPULA,
        side="left",
        position=P.HFDR,
        lesion=LesionShape((main, ext)),
        access=NeedleAccess.IN_PLANE,
        access_note="posterior route onto the blade, in plane",
        seed=109,
        small=_scan(176, 2.4, 48, 3.0),
        pixel_representation=0,
    )


def _iliac_large() -> CaseSpec:
    phi = math.radians(30.0)
    p, normal = PELVIS.ilium.point(LEFT, phi, 70.0)
    along = np.cross(Z_AXIS, normal)
    lobe = Lobe.oriented(p + 3.0 * normal, (37.5, 25.0, 17.0), along, Z_AXIS)
    return CaseSpec(
        name="iliac_wing_large",
        description="Large lytic mass of the left iliac wing, 75 x 50 mm, replacing the wing and "
        "bulging into the gluteal and iliacus muscles; supine, feet first.",
        region=BodyRegion.PELVIS,
        site=BoneSite.ILIAC_WING,
        side="left",
        position=P.FFS,
        lesion=LesionShape((lobe,)),
        access=NeedleAccess.IN_PLANE,
        access_note="lateral route through the gluteal muscles",
        seed=110,
        small=_scan(160, 2.7, 56, 3.0),
        outside_circle_hu=-2048.0,
    )


def _iliac_borderline_50() -> CaseSpec:
    phi = math.radians(38.0)
    p, normal = PELVIS.ilium.point(RIGHT, phi, 75.0)
    along = np.cross(Z_AXIS, normal)
    lobe = Lobe.oriented(p + 4.0 * normal, (29.0, 20.75, 15.0), Z_AXIS, along)
    return CaseSpec(
        name="iliac_borderline_50",
        description="Lytic lesion of the right iliac wing, 58 x 41.5 mm, caliper volume just "
        "below 50 mL: borderline between the 10 and 15 mL tiers; prone, feet first.",
        region=BodyRegion.PELVIS,
        site=BoneSite.ILIAC_WING,
        side="right",
        position=P.FFP,
        lesion=LesionShape((lobe,)),
        access=NeedleAccess.IN_PLANE,
        access_note="posterolateral route through the gluteal muscles",
        seed=111,
        small=_scan(160, 2.7, 56, 3.0),
    )


def _sacrum() -> CaseSpec:
    c = PELVIS.sacrum_centre(30.0)
    main = Lobe.oriented(c + [-18.0, -2.0, 0.0], (18.0, 14.0, 11.0), Z_AXIS, (1.0, 0.0, 0.0))
    ext = Lobe.oriented(c + [-25.0, 14.0, -4.0], (15.0, 12.0, 9.0), Z_AXIS, (1.0, 0.0, 0.0))
    return CaseSpec(
        name="sacrum_prone",
        description="Lytic lesion of the right sacral ala and body with a dorsal soft-tissue "
        "extension; prone, feet first.",
        region=BodyRegion.PELVIS,
        site=BoneSite.SACRUM,
        side="right",
        position=P.FFP,
        lesion=LesionShape((main, ext)),
        access=NeedleAccess.IN_PLANE,
        access_note="posterior route in the axial plane",
        seed=112,
        small=_scan(160, 2.7, 56, 3.0),
        instances_reversed=True,
    )


def _femur() -> CaseSpec:
    p, axis = PELVIS.femur_axis_point(LEFT, -100.0)
    lateral = np.array([1.0, 0.0, 0.0])
    lobe = Lobe.oriented(p + 3.0 * lateral, (22.5, 15.0, 15.0), axis, lateral)
    return CaseSpec(
        name="femur_borderline_20",
        description="Lytic lesion of the left proximal femoral shaft, 45 x 30 mm, caliper volume "
        "just above 20 mL: borderline between the 5 and 10 mL tiers; supine, feet first.",
        region=BodyRegion.PELVIS,
        site=BoneSite.FEMUR,
        side="left",
        position=P.FFS,
        lesion=LesionShape((lobe,)),
        access=NeedleAccess.IN_PLANE,
        access_note="lateral route through the thigh muscles",
        seed=113,
        small=_scan(160, 2.7, 56, 3.0),
        pixel_representation=0,
    )


_BUILDERS = (
    _rib_lateral_small,
    _rib_lateral_decubitus,
    _rib_posterior,
    _rib_anterior,
    _sternum,
    _vertebral_body,
    _costovertebral,
    _vertebral_no_path,
    _scapula,
    _iliac_large,
    _iliac_borderline_50,
    _sacrum,
    _femur,
)

CASES: dict[str, CaseSpec] = {spec.name: spec for spec in (b() for b in _BUILDERS)}
E2E_CASE = "rib_lateral_small"


def list_cases() -> list[CaseSpec]:
    return list(CASES.values())

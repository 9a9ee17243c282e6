"""Build a sample case: patient model -> image grid -> HU volume -> DICOM + ground truth.

Input: a case name from :data:`sample_series.catalogue.CASES` or a :class:`CaseSpec`.
Output: :class:`SampleCase` with the datasets in sending order, the label volume and HU
volume ``[k, j, i]`` in position-sorted order, the grid geometry and the ground truth.
Every voxel's LPS point comes from the same IOP/IPP/spacing that is written to the files, so
image, labels and DICOM geometry agree for every patient position by construction.

Image formation: tissue HU at voxel centres (averaged over ``supersample``**2 in-plane
sub-voxels when asked), a separable Gaussian blur of ``blur_sigma_voxels`` for partial volume
and the scanner's point spread, seeded Gaussian noise, an optional constant outside the
reconstruction circle, then storage with RescaleIntercept -1024.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from sample_series.anatomy import BodyRegion, PatientModel, build_patient_model, with_lesion
from sample_series.dicom_writer import RESCALE_INTERCEPT, SeriesIdentity, build_datasets
from sample_series.errors import UnknownCase
from sample_series.geometry import GridGeometry, axial_grid
from sample_series.raster import rasterize
from sample_series.spec import CaseSpec, ScanSpec
from sample_series.tissues import hu_lut, label_lut
from sample_series.truth import GroundTruth, TruthSettings, compute_truth

FOV_MARGIN_MM = 8.0


@dataclass(frozen=True)
class SampleCase:
    spec: CaseSpec
    datasets: list[Dataset]  # sending order (InstanceNumber 1..n), pixel data set
    labels: npt.NDArray[np.uint8]  # [k, j, i], position-sorted, LabelCode values
    hu: npt.NDArray[np.int16]  # [k, j, i], position-sorted, HU as stored (after noise)
    geometry: GridGeometry
    truth: GroundTruth
    full_size: bool

    @property
    def name(self) -> str:
        return self.spec.name


def resolve_spec(name_or_spec: str | CaseSpec) -> CaseSpec:
    if isinstance(name_or_spec, CaseSpec):
        return name_or_spec
    from sample_series.catalogue import CASES

    try:
        return CASES[name_or_spec]
    except KeyError:
        known = ", ".join(CASES)
        raise UnknownCase(f"unknown sample case {name_or_spec!r}; known cases: {known}") from None


def scan_grid(spec: CaseSpec, scan: ScanSpec, model: PatientModel) -> GridGeometry:
    """The scanner grid: FOV centred on the body and table across, on the lesion along z."""
    down = np.array(model.table.down_xy)
    lateral = np.array([-down[1], down[0]])
    (cx, cy) = model.body_centre_xy_mm
    top = -model.body_support_mm((-down[0], -down[1]))  # body edge farthest from the table
    bottom = model.table.top_mm + model.table.cushion_mm + model.table.slab_mm
    fov = min(scan.rows, scan.columns) * scan.pixel_mm
    h = 0.5 * (top + bottom)
    if bottom - top > fov - 2 * FOV_MARGIN_MM:  # keep the whole body, cut the table
        h = top - FOV_MARGIN_MM + fov / 2.0
    q = cx * lateral[0] + cy * lateral[1]
    centre_xy = h * down + q * lateral
    z = spec.lesion.measures.centroid_lps_mm[2]
    centre = np.array([centre_xy[0], centre_xy[1], z]) + np.asarray(spec.scan_offset_mm)
    return axial_grid(
        spec.position,
        rows=scan.rows,
        columns=scan.columns,
        pixel_mm=scan.pixel_mm,
        n_slices=scan.n_slices,
        slice_mm=scan.slice_mm,
        centre_lps_mm=centre,
    )


def _subvoxel_grid(grid: GridGeometry, ss: int) -> GridGeometry:
    sx, sy, sz = grid.spacing_mm
    shift = (0.5 / ss - 0.5) * (sx * grid.row_direction + sy * grid.column_direction)
    o = np.asarray(grid.origin_lps_mm) + shift
    nk, nj, ni = grid.shape
    return GridGeometry(
        origin_lps_mm=(float(o[0]), float(o[1]), float(o[2])),
        spacing_mm=(sx / ss, sy / ss, sz),
        direction=grid.direction,
        shape=(nk, nj * ss, ni * ss),
    )


def gaussian_blur(vol: npt.NDArray[np.float32], sigmas: tuple[float, float, float]) -> None:
    """In-place separable Gaussian blur; ``sigmas`` in voxels along numpy axes (k, j, i).
    Edges replicate the border voxel."""
    for axis, sigma in enumerate(sigmas):
        n = vol.shape[axis]
        if sigma <= 0 or n < 2:
            continue
        r = min(max(1, int(round(2.5 * sigma))), n - 1)
        w = np.exp(-0.5 * (np.arange(r + 1) / sigma) ** 2)
        w /= w[0] + 2.0 * w[1:].sum()
        src = np.moveaxis(vol.copy(), axis, 0)
        dst = np.moveaxis(vol, axis, 0)
        dst *= w[0]
        for t in range(1, r + 1):
            wt = np.float32(w[t])
            dst[t:] += wt * src[:-t]
            dst[:-t] += wt * src[t:]
            dst[:t] += wt * src[0]
            dst[-t:] += wt * src[-1]


def form_image(
    spec: CaseSpec,
    scan: ScanSpec,
    grid: GridGeometry,
    primitives: tuple,
    ids: npt.NDArray[np.uint8],
) -> npt.NDArray[np.float32]:
    """HU volume of the scanner image (before quantisation)."""
    lut = hu_lut(contrast=spec.contrast)
    if scan.supersample > 1:
        ss = scan.supersample
        fine = rasterize(primitives, _subvoxel_grid(grid, ss))
        nk, nj, ni = grid.shape
        hu = lut[fine].reshape(nk, nj, ss, ni, ss).mean(axis=(2, 4), dtype=np.float32)
    else:
        hu = lut[ids]
    bi, bj, bk = scan.blur_sigma_voxels
    gaussian_blur(hu, (bk, bj, bi))
    if spec.noise_sd_hu > 0:
        rng = np.random.default_rng(spec.seed)
        noise = rng.standard_normal(hu.shape, dtype=np.float32)
        noise *= np.float32(spec.noise_sd_hu)
        hu += noise
    if spec.outside_circle_hu is not None:
        nk, nj, ni = grid.shape
        jj, ii = np.ogrid[:nj, :ni]
        r = min(nj, ni) / 2.0
        outside = (jj - (nj - 1) / 2.0) ** 2 + (ii - (ni - 1) / 2.0) ** 2 > r * r
        hu[:, outside] = spec.outside_circle_hu
    return hu


def quantise(hu: npt.NDArray[np.float32], pixel_representation: int) -> npt.NDArray[np.integer]:
    """Stored values for RescaleIntercept -1024, slope 1; unsigned 12-bit clamps at -1024 HU."""
    stored = np.rint(hu - np.float32(RESCALE_INTERCEPT))
    if pixel_representation:
        return np.clip(stored, -32768, 32767).astype(np.int16)
    return np.clip(stored, 0, 4095).astype(np.uint16)


def build_case(
    name_or_spec: str | CaseSpec,
    *,
    full_size: bool = False,
    settings: TruthSettings | None = None,
) -> SampleCase:
    """Build the datasets, labels and ground truth of one case (deterministic)."""
    spec = resolve_spec(name_or_spec)
    scan = spec.scan(full_size)
    model = build_patient_model(spec.region, spec.position, spec.contrast)
    grid = scan_grid(spec, scan, model)
    primitives = with_lesion(model, spec.lesion)
    ids = rasterize(primitives, grid)
    labels = label_lut()[ids]
    hu = form_image(spec, scan, grid, primitives, ids)
    stored = quantise(hu, spec.pixel_representation)
    del hu
    ident = SeriesIdentity(
        case_name=spec.name,
        seed=spec.seed,
        size_tag="full" if full_size else "small",
        position=spec.position.value,
        body_part="CHEST" if spec.region is BodyRegion.THORAX else "PELVIS",
        contrast=spec.contrast,
        description=spec.description,
    )
    datasets = build_datasets(stored, grid, ident, instances_reversed=spec.instances_reversed)
    hu_stored = (stored.astype(np.int32) + int(RESCALE_INTERCEPT)).astype(np.int16)
    truth = compute_truth(spec, grid, labels, settings or TruthSettings())
    return SampleCase(spec, datasets, labels, hu_stored, grid, truth, full_size)


def write_case(case: SampleCase, out_dir: Path) -> Path:
    """Write ``<out_dir>/<name>/dicom/*.dcm``, ``truth.json`` and ``labels.npz``; return the
    case folder."""
    folder = Path(out_dir) / case.name
    dicom_dir = folder / "dicom"
    dicom_dir.mkdir(parents=True, exist_ok=True)
    for old in dicom_dir.glob("*.dcm"):
        old.unlink()
    for ds in case.datasets:
        ds.save_as(dicom_dir / f"IM{int(ds.InstanceNumber):04d}.dcm", enforce_file_format=True)
    (folder / "truth.json").write_text(case.truth.dumps() + "\n")
    g = case.geometry
    np.savez_compressed(
        folder / "labels.npz",
        labels=case.labels,
        affine=g.affine,
        origin_lps_mm=np.asarray(g.origin_lps_mm),
        spacing_mm=np.asarray(g.spacing_mm),
        direction=np.asarray(g.direction),
        shape=np.asarray(g.shape),
    )
    return folder


def load_truth(folder: Path) -> GroundTruth:
    """Ground truth written by :func:`write_case` (``folder`` is the case folder)."""
    return GroundTruth.from_json(json.loads((Path(folder) / "truth.json").read_text()))


def load_labels(folder: Path) -> tuple[npt.NDArray[np.uint8], GridGeometry]:
    """Label volume ``[k, j, i]`` and its grid written by :func:`write_case`."""
    with np.load(Path(folder) / "labels.npz") as z:
        d = z["direction"]
        geometry = GridGeometry(
            origin_lps_mm=tuple(float(v) for v in z["origin_lps_mm"]),  # type: ignore[arg-type]
            spacing_mm=tuple(float(v) for v in z["spacing_mm"]),  # type: ignore[arg-type]
            direction=tuple(tuple(float(v) for v in row) for row in d),  # type: ignore[arg-type]
            shape=tuple(int(v) for v in z["shape"]),  # type: ignore[arg-type]
        )
        return z["labels"], geometry

"""Overlay Secondary Captures for axial and oblique views."""

from __future__ import annotations

import subprocess
from io import BytesIO

import numpy as np
import pydicom
from tools import make_ct_series, require_tool

from dicom_node.derived import PlanIdentity, build_overlay_sc
from planner.overlay import OverlayView

S = 2**-0.5


def test_oblique_view_gets_combined_orientation_codes_and_validates(tmp_path):
    source = make_ct_series(slices=4, size=16)
    rgb = np.zeros((64, 96, 3), dtype=np.uint8)
    rgb[10:20, 10:50] = (230, 159, 0)
    views = [
        OverlayView(rgb, 1, "needle 1, axial view", (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
        OverlayView(rgb, 1, "needle 1, oblique view", (-S, -S, 0.0), (0.0, -S, -S)),
    ]
    scs = build_overlay_sc(source, views, PlanIdentity("plan1", "0.1"))
    assert [list(sc.PatientOrientation) for sc in scs] == [["L", "P"], ["RA", "AF"]]
    for n, sc in enumerate(scs):
        buffer = BytesIO()
        sc.save_as(buffer, enforce_file_format=True)
        back = pydicom.dcmread(BytesIO(buffer.getvalue()))
        assert np.array_equal(back.pixel_array, rgb)
        assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == source[1].SOPInstanceUID
        path = tmp_path / f"sc{n}.dcm"
        path.write_bytes(buffer.getvalue())
    dciodvfy = require_tool("dciodvfy")
    for path in tmp_path.glob("sc*.dcm"):
        out = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if "Error" in line]
        assert errors == [], errors

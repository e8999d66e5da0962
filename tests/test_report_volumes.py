"""The HTML report of a run on medical volumes: a, b and the fused volume each get one thumbnail of their three
mid-planes side by side (not "missing"), linked to the real volume files; a DICOM series folder gets one too."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nibabel")

from conftest import write_tiny_checkpoint  # noqa: E402
from PIL import Image  # noqa: E402
from volume_helpers import blob, grid_affine, head, save_nifti  # noqa: E402

from mmfuse_cli.report.planes import volume_planes  # noqa: E402
from mmfuse_cli.report.thumbs import make_thumb  # noqa: E402

B_SHAPE, B_AFFINE = (32, 30, 12), grid_affine((1.5, 1.5, 2.0), (-24.0, -22.0, -11.0))
A_SHAPE, A_AFFINE = (20, 20, 8), grid_affine((2.5, 2.5, 3.0), (-24.0, -24.0, -11.0))


def _page_data(index: Path) -> dict:
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', index.read_text(), re.S
    )
    assert match, "no report data in the page"
    return json.loads(match.group(1))


def test_run_html_report_shows_volume_mid_planes(tmp_path):
    save_nifti(tmp_path / "PET" / "p1.nii.gz", blob(A_SHAPE, A_AFFINE, (0.0, 0.0, 0.0), 8.0), A_AFFINE)
    save_nifti(tmp_path / "MRI" / "p1.nii.gz", head(B_SHAPE, B_AFFINE, radius=18.0), B_AFFINE)
    model = write_tiny_checkpoint(tmp_path, task="mif")
    cmd = [sys.executable, "-m", "mmfuse_cli", "run", "PET", "MRI", "-o", "OUT", "--task", "mif"]
    done = subprocess.run(
        [*cmd, "--html-report", "--model", str(model)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "missing" not in done.stderr
    report = tmp_path / "OUT" / "report"
    rows = _page_data(report / "index.html")["rows"]
    assert len(rows) == 1
    images = rows[0]["images"]
    assert set(images) >= {"a", "b", "fused"}
    expected = {"a": tmp_path / "PET" / "p1.nii.gz", "b": tmp_path / "MRI" / "p1.nii.gz"}
    expected["fused"] = tmp_path / "OUT" / "p1.nii.gz"
    manifest = json.loads((report / ".mmfuse-report.json").read_text())
    for role, source in expected.items():
        img = images[role]
        assert img is not None and img["thumb"], f"{role}: no thumbnail"
        assert (report / img["full"]).resolve() == source.resolve()  # the link is the volume itself
        assert "mid-planes" in img["planes"]
        assert Path(img["thumb"]).name in manifest["thumbs"]
        with Image.open(report / img["thumb"]) as thumb:
            width, height = thumb.size
        assert width > height * 2, f"{role}: {width}x{height} is not three planes wide"
    assert "a's own grid" in images["a"]["planes"] and "b's grid" in images["fused"]["planes"]
    assert len(set(manifest["thumbs"])) == 3


def test_dicom_series_folder_gets_a_planes_thumbnail(tmp_path):
    pytest.importorskip("pydicom")
    from volume_helpers import dicom_volume_slices, save_dicom_series

    data = head(B_SHAPE, grid_affine((1.0, 1.0, 1.0), (-16.0, -15.0, -6.0)), radius=12.0)
    series = tmp_path / "series"
    save_dicom_series(series, dicom_volume_slices(np.round(data)))
    name = make_thumb(series, tmp_path / "thumbs", size=64)
    assert name is not None
    with Image.open(tmp_path / "thumbs" / name) as thumb:
        assert thumb.size == (192, 64)
    planes = volume_planes(series, 64)
    assert planes.shape == (64, 192) and 0.0 <= planes.min() and planes.max() <= 1.0 and planes.max() > 0.5

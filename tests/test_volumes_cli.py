"""``mmfuse run`` on medical volumes end to end: two NIfTI files, two folders of DICOM series, one row per volume
pair in run.csv, b's geometry on the fused NIfTI, one-line errors."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pytest.importorskip("pydicom")

from typer.testing import CliRunner  # noqa: E402
from volume_helpers import (  # noqa: E402
    blob,
    dicom_volume_slices,
    grid_affine,
    head,
    save_dicom_series,
    save_nifti,
    tiny_mif_checkpoint,
)

from mmfuse_cli.cli import app  # noqa: E402
from mmfuse_cli.volume_io.intensity import INTENSITY_RULE  # noqa: E402

CLI = [sys.executable, "-m", "mmfuse_cli", "run"]
SHAPE = (64, 64, 12)
B_AFFINE = grid_affine((1.0, 1.0, 1.2), (-31.5, -31.5, -6.6))
A_AFFINE = grid_affine((2.0, 2.0, 3.0), (-31.0, -31.0, -6.0))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_mif_checkpoint(tmp_path_factory.mktemp("ckpt"))


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run(args, **kw):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=600, **kw)


def test_two_nifti_files(tmp_path, checkpoint):
    b = save_nifti(
        tmp_path / "mri.nii.gz", head(SHAPE, B_AFFINE), B_AFFINE, np.int16, qform_code=1, sform_code=2
    )
    a = save_nifti(tmp_path / "pet.nii.gz", blob((32, 32, 5), A_AFFINE, (3.0, -2.0, 0.0)), A_AFFINE)
    out = tmp_path / "out"
    proc = _run([a, b, "-o", out, "--model", checkpoint, "--a-noise", "0", "--b-noise", "0.01"])
    assert proc.returncode == 0, proc.stderr
    assert "fused 1 pair(s), skipped 0, failed 0" in proc.stderr
    fused = nib.load(str(out / "pet.nii.gz"))  # keyed by a's stem, as a --pairs line is
    assert fused.shape == SHAPE and fused.get_data_dtype() == np.float32
    assert np.allclose(fused.affine, B_AFFINE)
    assert [int(c) for c in (fused.header["qform_code"], fused.header["sform_code"])] == [1, 2]
    data = np.asarray(fused.dataobj)
    assert 0.0 <= data.min() and data.max() <= 1.0 and data.max() > 0.1
    (row,) = _rows(out / "run.csv")
    assert row["status"] == "ok" and row["intensity_rule"] == INTENSITY_RULE
    assert float(row["b_intensity_high"]) > float(row["b_intensity_low"]) > 0
    assert float(row["a_intensity_high"]) > float(row["a_intensity_low"])
    assert row["a_blur_from"] == "geometry" and float(row["a_blur"]) > 0.5
    assert (row["a_noise"], row["a_noise_from"], row["b_noise"]) == ("0.0", "flag", "0.01")
    assert row["a_resampled"] == "True" and "2x2x3 mm" in row["a_geometry"]
    assert row["slices"] == "12" and row["EN"]
    again = _run([a, b, "-o", out, "--model", checkpoint, "--skip-existing"])
    assert again.returncode == 0 and "skipped 1" in again.stderr


def test_two_folders_of_dicom_series(tmp_path, checkpoint):
    ras = grid_affine((1.0, 1.0, 1.2), (31.5, 31.5, -6.6), np.diag([-1.0, -1.0, 1.0]))  # an axial LPS series
    for side, data, slope, intercept in (
        ("mri", head(SHAPE, ras), 1.0, 0.0),
        ("ct", blob(SHAPE, ras, (0.0, 4.0, 0.0), 10.0) - 1000.0, 2.0, -1000.0),  # air: -1000 HU
    ):
        stored = np.round((data - intercept) / slope) if side == "ct" else data
        save_dicom_series(
            tmp_path / side / "patient1", dicom_volume_slices(stored).astype(np.int16), (-31.5, -31.5, -6.6),
            pixel_spacing=(1.0, 1.0), slice_step=1.2, slope=slope, intercept=intercept,
        )  # fmt: skip
    out = tmp_path / "out"
    proc = _run([tmp_path / "ct", tmp_path / "mri", "-o", out, "--model", checkpoint, "--batch", "4"])
    assert proc.returncode == 0, proc.stderr
    fused = nib.load(str(out / "patient1.nii.gz"))
    assert fused.shape == SHAPE and np.allclose(fused.affine, ras, atol=1e-4)  # b's grid, in RAS
    assert nib.aff2axcodes(fused.affine) == ("L", "P", "S")
    (row,) = _rows(out / "run.csv")
    assert row["status"] == "ok" and row["a_resampled"] == "False"
    assert row["a"].endswith("ct/patient1") and row["b"].endswith("mri/patient1")
    assert float(row["a_intensity_low"]) < -900  # in Hounsfield units: the rescale was applied
    # two series folders given directly are one pair
    direct = _run(
        [
            tmp_path / "ct" / "patient1",
            tmp_path / "mri" / "patient1",
            "-o",
            tmp_path / "o2",
            "--model",
            checkpoint,
        ]
    )
    assert direct.returncode == 0, direct.stderr
    assert (tmp_path / "o2" / "patient1.nii.gz").exists()


def test_volume_errors_are_one_line_and_the_pair_fails(tmp_path, checkpoint):
    save_nifti(tmp_path / "a" / "far.nii.gz", head(SHAPE, B_AFFINE), grid_affine(origin=(400.0, 0.0, 0.0)))
    save_nifti(tmp_path / "b" / "far.nii.gz", head(SHAPE, B_AFFINE), B_AFFINE)
    save_nifti(tmp_path / "a" / "ok.nii.gz", head(SHAPE, B_AFFINE), B_AFFINE)
    save_nifti(tmp_path / "b" / "ok.nii.gz", head(SHAPE, B_AFFINE), B_AFFINE)
    save_nifti(tmp_path / "a" / "t.nii.gz", np.ones((8, 8, 4, 2)), np.eye(4))
    save_nifti(tmp_path / "b" / "t.nii.gz", np.ones((8, 8, 4)), np.eye(4))
    proc = _run([tmp_path / "a", tmp_path / "b", "-o", tmp_path / "out", "--model", checkpoint])
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, proc.stderr
    far = next(e for e in errors if "far" in e)
    assert "do not overlap" in far and str(tmp_path / "b" / "far.nii.gz") in far
    assert any("4-D volume" in e and "t.nii.gz" in e for e in errors)
    rows = {r["item"]: r for r in _rows(tmp_path / "out" / "run.csv")}
    assert rows["ok"]["status"] == "ok" and rows["far"]["status"] == rows["t"]["status"] == "failed"


def test_without_the_medical_extra_the_run_stops_with_the_pip_command(tmp_path, checkpoint, monkeypatch):
    a = save_nifti(tmp_path / "a.nii.gz", head(SHAPE, B_AFFINE), B_AFFINE)
    b = save_nifti(tmp_path / "b.nii.gz", head(SHAPE, B_AFFINE), B_AFFINE)
    monkeypatch.setitem(sys.modules, "nibabel", None)
    result = CliRunner().invoke(
        app, ["run", str(a), str(b), "-o", str(tmp_path / "out"), "--model", str(checkpoint)]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'mmfuse[medical]'" in lines[0] and str(a) in lines[0]


def test_volume_dtype_b_stores_bs_dtype_in_bs_units(tmp_path, checkpoint):
    b = save_nifti(tmp_path / "b" / "p.nii", head(SHAPE, B_AFFINE), B_AFFINE, np.int16)
    save_nifti(tmp_path / "a" / "p.nii", head(SHAPE, B_AFFINE) * 0.5, B_AFFINE)
    out = tmp_path / "out"
    proc = _run([tmp_path / "a", tmp_path / "b", "-o", out, "--model", checkpoint, "--volume-dtype", "b"])
    assert proc.returncode == 0, proc.stderr
    fused = nib.load(str(out / "p.nii"))  # b is a .nii: so is the output
    (row,) = _rows(out / "run.csv")
    assert fused.get_data_dtype() == np.int16 and row["volume_dtype"] == "int16"
    values = fused.get_fdata()
    low, high = float(row["b_intensity_low"]), float(row["b_intensity_high"])
    assert values.min() >= low - 1 and values.max() <= high + 1 and values.max() > low
    assert nib.load(str(b)).get_data_dtype() == np.int16
    bad = _run([tmp_path / "a", tmp_path / "b", "-o", out, "--model", checkpoint, "--volume-dtype", "int8"])
    assert bad.returncode == 2 and "--volume-dtype" in bad.stderr

"""A DICOM series (one folder, one series, one slice per file) as a :class:`~mmfuse_cli.volume_io.volume.Volume`.

Slices are ordered by their position along the slice normal ``n = row x column`` (the cross product of the
ImageOrientationPatient's two direction cosines): ``ImagePositionPatient . n``, whatever the files' names or
InstanceNumbers say. Voxel ``(i, j, k)`` is column ``i``, row ``j`` of slice ``k``, so the LPS affine's columns
are the row direction times the column spacing (PixelSpacing[1]), the column direction times the row spacing
(PixelSpacing[0]) and the step between consecutive slice positions (which carries a gantry tilt: the grid is then
sheared, and refused by the geometry check); its origin is the first slice's position. It is turned to RAS+ (the
first two world axes negated), as NIfTI stores it. Each slice's RescaleSlope / RescaleIntercept is applied.

Refused, with one line naming the folder or file: several series in one folder, a slice without position,
orientation or spacing, slices of different sizes or orientations, two slices at one position (a 4-D series:
several time points or echoes), uneven spacing (a missing slice), multi-frame (enhanced) files, colour samples,
pixel data pydicom cannot decode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmfuse_cli.volume_io.volume import (
    Volume,
    VolumeError,
    check_shape,
    dicom_files,
    finite,
    one_line,
    require,
    voxel_limit,
)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SPACING_TOLERANCE = 0.01
"""Consecutive slice steps may differ from their median by this fraction (plus 1 micrometre) of it."""
ORIENTATION_TOLERANCE = 1e-4


def read_dicom_series(folder: Path, max_voxels: int | None = None) -> Volume:
    """The DICOM series in ``folder`` (a single DICOM file: one slice, refused as such); ``max_voxels``: see
    :func:`~mmfuse_cli.volume_io.volume.voxel_limit`, checked before any pixel data is decoded.

    Raises:
        MedicalDependencyError: pydicom missing; VolumeError: see the module docstring.
    """
    pydicom = require("pydicom", folder)
    limit = voxel_limit(max_voxels)
    folder = Path(folder)
    files = dicom_files(folder) if folder.is_dir() else [folder]
    if not files:
        raise VolumeError(f"{folder}: no DICOM files")
    headers = [_header(pydicom, path) for path in files]  # pixel data is decoded later, slice by slice
    series = {str(getattr(h, "SeriesInstanceUID", "")) for h in headers}
    if len(series) > 1:
        raise VolumeError(f"{folder}: holds {len(series)} series: give one folder per series")
    row, col, normal = _orientation(headers, folder)
    positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
    order = np.argsort(positions @ normal, kind="stable")
    headers, positions = [headers[i] for i in order], positions[order]
    shape = check_shape((int(headers[0].Columns), int(headers[0].Rows), len(headers)), folder, limit)
    step = _slice_step(positions, normal, folder)
    spacing = [float(v) for v in headers[0].PixelSpacing]  # row spacing, column spacing
    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]
    affine[:3, 1] = col * spacing[0]
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    affine = LPS_TO_RAS @ affine
    data, stored, quantum = _voxels(headers, shape)
    return Volume(
        data=finite(data),
        affine=affine,
        path=folder,
        kind="dicom",
        stored_dtype=stored,
        step=quantum,
        header=None,
        qform=affine.copy(),
        qform_code=1,
        sform=affine.copy(),
        sform_code=1,
    )


def _header(pydicom, path: Path):
    """One slice file, read whole; the attributes a volume slice must have checked."""
    try:
        ds = pydicom.dcmread(str(path), defer_size="1 KB")  # the pixel data is read when decoded
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for a bad file
        raise VolumeError(f"{path}: not a readable DICOM file ({one_line(exc)})") from None
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise VolumeError(
            f"{path}: a multi-frame (enhanced) DICOM file: convert the series to NIfTI first (dcm2niix)"
        )
    for name in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
        if getattr(ds, name, None) in (None, ""):
            raise VolumeError(
                f"{path}: no {name}: not a slice of a volume (a localizer, a secondary capture?)"
            )
    if int(getattr(ds, "SamplesPerPixel", 1) or 1) != 1:
        raise VolumeError(f"{path}: colour samples: mmfuse reads scalar volumes only")
    return ds


def _orientation(headers, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row and column directions all slices share, and the slice normal."""
    first = np.array([float(v) for v in headers[0].ImageOrientationPatient])
    if first.size != 6:
        raise VolumeError(f"{folder}: ImageOrientationPatient must hold 6 numbers, got {first.size}")
    for h in headers[1:]:
        other = np.array([float(v) for v in h.ImageOrientationPatient])
        if other.size != 6 or not np.allclose(other, first, atol=ORIENTATION_TOLERANCE):
            raise VolumeError(f"{folder}: slices of different orientations: not one volume")
        if (int(h.Rows), int(h.Columns)) != (int(headers[0].Rows), int(headers[0].Columns)):
            raise VolumeError(f"{folder}: slices of different sizes: not one volume")
        if not np.allclose([float(v) for v in h.PixelSpacing], [float(v) for v in headers[0].PixelSpacing]):
            raise VolumeError(f"{folder}: slices of different pixel spacings: not one volume")
    row, col = first[:3], first[3:]
    normal = np.cross(row, col)
    if not np.isfinite(normal).all() or np.linalg.norm(normal) < 1e-6:
        raise VolumeError(
            f"{folder}: degenerate ImageOrientationPatient {first.tolist()} (parallel directions)"
        )
    return row, col, normal / np.linalg.norm(normal)


def _slice_step(positions: np.ndarray, normal: np.ndarray, folder: Path) -> np.ndarray:
    """The vector from one slice's position to the next (checked even and non-zero along the normal)."""
    along = positions @ normal
    gaps = np.diff(along)
    if gaps.size == 0:
        return normal.copy()
    if gaps.min() < 1e-3:
        raise VolumeError(
            f"{folder}: two slices at one position ({along[int(np.argmin(gaps))]:.3f} mm along the normal): "
            "a 4-D series (time points or echoes)? give one 3-D volume per folder"
        )
    median = float(np.median(gaps))
    if np.abs(gaps - median).max() > SPACING_TOLERANCE * median + 1e-3:
        raise VolumeError(
            f"{folder}: uneven slice spacing ({gaps.min():.3f} to {gaps.max():.3f} mm): a missing slice?"
        )
    return (positions[-1] - positions[0]) / (len(positions) - 1)


def _voxels(headers, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.dtype, float]:
    """The rescaled voxels ``(X, Y, Z)``, the stored dtype and the rounding step (the smallest slope)."""
    data = np.empty(shape, dtype=np.float32)
    stored = None
    slopes = []
    for k, ds in enumerate(headers):
        try:
            pixels = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - a missing decoder, a truncated file
            raise VolumeError(f"{ds.filename}: cannot decode the pixel data ({one_line(exc)})") from None
        if pixels.shape != (shape[1], shape[0]):
            raise VolumeError(f"{ds.filename}: pixel data of shape {pixels.shape}, not Rows x Columns")
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        data[:, :, k] = (pixels.astype(np.float64) * slope + intercept).T
        stored = pixels.dtype
        slopes.append(abs(slope))
    assert stored is not None
    return data, np.dtype(stored), (min(slopes) if stored.kind in "iu" else 0.0)


__all__ = ["read_dicom_series"]

"""NIfTI-1 / NIfTI-2 files (``.nii``, ``.nii.gz``) in and out through nibabel, keeping a grid's geometry: an output
written on a reference volume's grid gets its affine, its qform and sform with their codes, and its header."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from mmfuse_cli.files import atomic_write_bytes
from mmfuse_cli.volume_io.volume import (
    Volume,
    VolumeError,
    check_shape,
    finite,
    one_line,
    require,
    voxel_limit,
)


def read_nifti(path: Path, max_voxels: int | None = None) -> Volume:
    """A NIfTI-1 / NIfTI-2 file as a :class:`Volume` (the affine: nibabel's best, the sform where coded, else the
    qform). ``max_voxels``: see :func:`~mmfuse_cli.volume_io.volume.voxel_limit`, checked on the header."""
    nib = require("nibabel", path)
    limit = voxel_limit(max_voxels)
    try:
        image = nib.load(str(path))
    except FileNotFoundError:
        raise VolumeError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds for a bad file
        raise VolumeError(f"{path}: not a readable NIfTI file ({one_line(exc)})") from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeError(f"{path}: not a NIfTI image ({type(image).__name__})")
    header = image.header
    dims = check_shape(image.shape, path, limit)
    stored = header.get_data_dtype()
    if stored.kind not in "iuf" or stored.fields is not None:
        raise VolumeError(f"{path}: {stored} samples (complex or RGB): mmfuse reads scalar volumes only")
    try:
        data = finite(np.asarray(image.dataobj, dtype=np.float32).reshape(dims))
    except (OSError, ValueError, EOFError) as exc:
        raise VolumeError(f"{path}: cannot read the voxels ({one_line(exc)})") from None
    slope = header["scl_slope"]
    step = abs(float(slope)) if np.isfinite(slope) and slope != 0 else 1.0
    qform, qform_code = header.get_qform(coded=True)
    sform, sform_code = header.get_sform(coded=True)
    return Volume(
        data=data,
        affine=np.asarray(image.affine, dtype=np.float64),
        path=path,
        kind="nifti",
        stored_dtype=np.dtype(stored),
        step=step if stored.kind in "iu" else 0.0,
        header=header,
        qform=qform,
        qform_code=int(qform_code),
        sform=sform,
        sform_code=int(sform_code),
    )


def write_nifti(path: Path, data: np.ndarray, reference: Volume, dtype: np.dtype | str = "float32") -> Path:
    """Write ``data`` ``(X, Y, Z)`` on ``reference``'s grid: its affine, qform / sform and their codes, its header
    (units, description) otherwise; samples as ``dtype`` (an integer dtype gets nibabel's scale and offset).
    ``.nii.gz`` is gzipped; the write is atomic.

    Raises:
        MedicalDependencyError: nibabel missing; OSError: the write failed.
    """
    nib = require("nibabel", path)
    dtype = np.dtype(dtype)
    header = reference.header.copy() if reference.header is not None else None
    kind = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    image = kind(np.asarray(data, dtype=np.float32), reference.affine, header)
    image.set_data_dtype(dtype)
    if dtype.kind == "f":
        image.header.set_slope_inter(None, None)
    image.header["cal_min"], image.header["cal_max"] = 0.0, 0.0
    image.set_qform(reference.qform, code=reference.qform_code if reference.qform is not None else 0)
    image.set_sform(reference.sform, code=reference.sform_code if reference.sform is not None else 0)
    if reference.header is None:
        image.header.set_xyzt_units("mm")
    payload = image.to_bytes()
    if Path(path).name.lower().endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    return atomic_write_bytes(Path(path), payload)


__all__ = ["read_nifti", "write_nifti"]

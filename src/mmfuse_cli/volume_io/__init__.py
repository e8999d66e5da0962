"""Medical volumes in and out: NIfTI files (``.nii``, ``.nii.gz``) and DICOM series (a folder per series).

A :class:`Volume` holds the voxels as float32 ``(X, Y, Z)`` in the file's own voxel order (the DICOM rescale
slope / intercept and the NIfTI ``scl_slope`` / ``scl_inter`` applied), the 4 x 4 voxel-to-world affine in
millimetres, RAS+ as NIfTI has it (a DICOM series' LPS patient coordinates are turned to RAS), and what writing
an output on the same grid needs (the NIfTI header, the qform / sform and their codes).

nibabel and pydicom are optional (``pip install 'mmfuse[medical]'``) and imported only when a volume is read or
written; :func:`is_volume_path` needs neither. Modules: ``volume`` (the :class:`Volume`, its errors, detection,
shape checks), ``nifti`` (read, and write on a reference grid), ``dicom`` (a series folder).
"""

from __future__ import annotations

from pathlib import Path

from mmfuse_cli.volume_io.dicom import read_dicom_series
from mmfuse_cli.volume_io.nifti import read_nifti, write_nifti
from mmfuse_cli.volume_io.volume import (
    MEDICAL_INSTALL,
    MedicalDependencyError,
    Volume,
    VolumeError,
    is_dicom_series,
    is_nifti_path,
    is_volume_path,
    require_medical,
    volume_stem,
)


def read_volume(path: Path, max_voxels: int | None = None) -> Volume:
    """Read a NIfTI file or a DICOM series folder (a single DICOM file: a series of one slice, refused); a volume
    of more than ``max_voxels`` voxels is refused from its header (``None``: the input pixel limit,
    :mod:`mmfuse_cli.limits`; 0: none).

    Raises:
        MedicalDependencyError: nibabel / pydicom missing; VolumeError: unreadable, 4-D, a single slice, a
        broken series (each one line naming the file).
    """
    path = Path(path)
    if is_nifti_path(path):
        return read_nifti(path, max_voxels)
    return read_dicom_series(path, max_voxels)


__all__ = [
    "MEDICAL_INSTALL",
    "MedicalDependencyError",
    "Volume",
    "VolumeError",
    "is_dicom_series",
    "is_nifti_path",
    "is_volume_path",
    "read_dicom_series",
    "read_nifti",
    "read_volume",
    "require_medical",
    "volume_stem",
    "write_nifti",
]

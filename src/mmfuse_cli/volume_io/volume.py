"""What every volume reader shares: the :class:`Volume`, its errors, telling a volume input from an image by its
name (or a folder's DICOM files), and the checks of a volume's shape and values. nibabel and pydicom are imported
only by the readers and the writer (:func:`require` names the extra to install when one is missing)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.limits import current_pixel_limit, pixel_limit

NIFTI_SUFFIXES = (".nii.gz", ".nii")
DICOM_SUFFIX = ".dcm"
DICOM_MAGIC = b"DICM"
"""A DICOM Part 10 file holds these four bytes at offset 128, after its preamble."""
DICOM_PROBE_FILES = 8
"""Files without the ``.dcm`` suffix read for the DICOM magic before a folder is taken as no series."""
MEDICAL_INSTALL = "pip install 'mmfuse[medical]'"


class VolumeError(ValueError):
    """A volume cannot be read or written (a 4-D file, a single slice, a broken series); one line naming it."""


class MedicalDependencyError(VolumeError):
    """nibabel or pydicom is not installed; the message names the extra to install."""


@dataclass(frozen=True)
class Volume:
    """One 3-D volume.

    Attributes:
        data: float32 ``(X, Y, Z)``, the stored values with the file's scaling applied (NaN replaced by the
            smallest finite value).
        affine: 4 x 4 float64, voxel index -> world millimetres (RAS+).
        path: the file or series folder it came from.
        kind: ``nifti`` or ``dicom``.
        stored_dtype: the dtype of the stored samples (``int16``, ``float32``...).
        step: the rounding step of the stored samples in the units of ``data`` (the slope of an integer file;
            0 for a float file: exact values).
        header: the NIfTI header (``None`` for a DICOM series), copied into an output on the same grid.
        qform, sform: the file's qform / sform (``None`` where unset) and their codes (a DICOM series: its
            affine, code 1, scanner).
    """

    data: np.ndarray
    affine: np.ndarray
    path: Path
    kind: str
    stored_dtype: np.dtype
    step: float
    header: Any = None
    qform: np.ndarray | None = None
    qform_code: int = 1
    sform: np.ndarray | None = None
    sform_code: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        x, y, z = self.data.shape
        return int(x), int(y), int(z)

    @property
    def zooms(self) -> np.ndarray:
        """Voxel sizes in millimetres (the lengths of the affine's columns)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)


def require(module: str, path: Path) -> Any:
    """``module`` imported, or :class:`MedicalDependencyError` naming ``path`` and the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MedicalDependencyError(
            f"{path}: reading volumes needs {module} (the medical extra): {MEDICAL_INSTALL}"
        ) from None


def require_medical(paths: list[Path]) -> None:
    """Check before any work that what reading ``paths`` (and writing NIfTI outputs) needs is installed.

    Raises:
        MedicalDependencyError: nibabel (or, for a DICOM series, pydicom) is missing; one line.
    """
    for path in paths:
        require("nibabel", path)
        if not is_nifti_path(path):
            require("pydicom", path)


def is_nifti_path(path: Path) -> bool:
    """``path`` is named as a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def has_dicom_magic(path: Path) -> bool:
    """``path`` is a DICOM Part 10 file: ``DICM`` at offset 128 (False when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == DICOM_MAGIC
    except OSError:
        return False


def dicom_files(folder: Path) -> list[Path]:
    """The DICOM files directly in ``folder`` (``.dcm`` files and files with the magic; hidden ones skipped),
    sorted by name."""
    found = []
    for path in sorted(Path(folder).iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() == DICOM_SUFFIX or has_dicom_magic(path):
            found.append(path)
    return found


def is_dicom_series(folder: Path) -> bool:
    """``folder`` directly holds DICOM files: a ``.dcm`` file, or one of its first :data:`DICOM_PROBE_FILES` other
    files (not named NIfTI) carries the DICOM magic."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    probed = 0
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return False
    for path in entries:
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() == DICOM_SUFFIX:
            return True
        if is_nifti_path(path) or probed >= DICOM_PROBE_FILES:
            continue
        probed += 1
        if has_dicom_magic(path):
            return True
    return False


def is_volume_path(path: Path) -> bool:
    """``path`` is a volume input: a NIfTI file, a DICOM series folder, or a single DICOM file."""
    path = Path(path)
    if is_nifti_path(path):
        return True
    if path.is_dir():
        return is_dicom_series(path)
    return path.suffix.lower() == DICOM_SUFFIX or (path.is_file() and has_dicom_magic(path))


def volume_stem(path: Path) -> str:
    """The name a volume pairs by: without ``.nii.gz`` / ``.nii``; a series folder's whole name; else the stem."""
    path = Path(path)
    lower = path.name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name if path.is_dir() else path.stem


def voxel_limit(max_voxels: int | None = None) -> int:
    """The most voxels a volume may have: the input pixel limit (:mod:`mmfuse_cli.limits`; a volume is a stack of
    slices), ``max_voxels`` when given (0 = none)."""
    try:
        return current_pixel_limit() if max_voxels is None else pixel_limit(max_voxels)
    except InvalidValueError as exc:
        raise VolumeError(f"cannot check the volume size ({exc})") from None


def check_shape(shape: tuple[int, ...], path: Path, limit: int = 0) -> tuple[int, int, int]:
    """A 3-D shape of at least 2 voxels per axis (a trailing axis of 1 dropped) and at most ``limit`` voxels
    (0: any), else :class:`VolumeError`."""
    dims = tuple(int(n) for n in shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims = dims[:-1]
    text = "x".join(str(n) for n in dims)
    if len(dims) > 3:
        raise VolumeError(f"{path}: a {len(dims)}-D volume ({text}): give one 3-D volume (one time point)")
    if len(dims) < 3 or min(dims) < 2:
        raise VolumeError(
            f"{path}: a single slice ({text}), not a volume: fuse it as an image, or give at least 2 slices"
        )
    if limit and int(np.prod(dims)) > limit:
        raise VolumeError(
            f"{path}: {text} voxels, more than the input limit of {limit} (--max-pixels, MMFUSE_MAX_PIXELS)"
        )
    return dims[0], dims[1], dims[2]


def finite(data: np.ndarray) -> np.ndarray:
    """``data`` with NaN / inf replaced by its smallest finite value (a PET's NaN outside the body is
    background); float32."""
    data = np.asarray(data, dtype=np.float32)
    bad = ~np.isfinite(data)
    if bad.any():
        good = data[~bad]
        data = data.copy()
        data[bad] = good.min() if good.size else 0.0
    return data


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


__all__ = [
    "MEDICAL_INSTALL",
    "MedicalDependencyError",
    "Volume",
    "VolumeError",
    "check_shape",
    "dicom_files",
    "finite",
    "has_dicom_magic",
    "is_dicom_series",
    "is_nifti_path",
    "is_volume_path",
    "one_line",
    "require",
    "require_medical",
    "volume_stem",
    "voxel_limit",
]

"""Report thumbnails of medical volumes: the three orthogonal mid-planes of a NIfTI file or DICOM series, tiled
side by side (axial, coronal, sagittal of the file's own voxel axes: the middle index of each axis), each plane
normalised by the run's intensity rule (:data:`mmfuse_cli.volume_io.intensity.INTENSITY_RULE`) and drawn at its
physical aspect (voxel sizes in millimetres) inside a square tile.

Source a is shown from its own file, on its own grid (the run resampled it onto b's grid, but writes no resampled
copy); b and the fused volume share b's grid. :func:`planes_label` says which on the page.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from mmfuse_cli.volume_io import VolumeError, is_dicom_series, is_nifti_path, read_volume
from mmfuse_cli.volume_io.intensity import intensity_window
from mmfuse_cli.volume_io.volume import dicom_files

PLANES = ("axial", "coronal", "sagittal")


def is_volume_source(path: Path) -> bool:
    """``path`` is a volume the report can show: a NIfTI file or a DICOM series folder (never raises)."""
    try:
        path = Path(path)
        return (is_nifti_path(path) and path.is_file()) or is_dicom_series(path)
    except OSError:
        return False


def source_key(path: Path) -> str:
    """What a volume's thumbnail name hashes besides its path: the file's size and modification time, or for a
    series folder those of every DICOM file in it (so an added or changed slice gives a new thumbnail).

    Raises:
        OSError: the file or folder cannot be read.
    """
    path = Path(path)
    if not path.is_dir():
        st = path.stat()
        return f"{st.st_size}\0{st.st_mtime_ns}"
    parts = []
    for file in dicom_files(path):
        st = file.stat()
        parts.append(f"{os.fsencode(file.name)!r}\0{st.st_size}\0{st.st_mtime_ns}")
    return "\0".join(parts)


def planes_label(role: str) -> str:
    """The page's note on a volume thumbnail of ``role`` (``a``, ``b``, ``fused``, ...)."""
    own = role in ("a", "restored_a")
    grid = "a's own grid (from its file, not resampled)" if own else "b's grid"
    return f"{' | '.join(PLANES)} mid-planes, {grid}"


def _tile(plane: np.ndarray, zooms: tuple[float, float], size: int) -> np.ndarray:
    """One ``(first axis, second axis)`` plane in [0, 1] as a ``size`` x ``size`` tile: the second axis upwards,
    scaled to its millimetre aspect, centred on black."""
    image = np.flipud(plane.T)  # rows: the second axis, its high end at the top; columns: the first axis
    width_mm, height_mm = plane.shape[0] * zooms[0], plane.shape[1] * zooms[1]
    scale = size / max(width_mm, height_mm)
    target = (max(1, min(size, round(width_mm * scale))), max(1, min(size, round(height_mm * scale))))
    img = Image.fromarray(np.round(image * 255).astype(np.uint8))
    scaled = np.asarray(img.resize(target, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    tile = np.zeros((size, size), dtype=np.float32)
    top, left = (size - target[1]) // 2, (size - target[0]) // 2
    tile[top : top + target[1], left : left + target[0]] = scaled
    return tile


def volume_planes(path: Path, size: int) -> np.ndarray:
    """Gray float [0, 1] image ``size`` high and ``3 * size`` wide: the axial, coronal and sagittal mid-planes
    of the volume at ``path`` (a volume over the input pixel limit, in voxels, is refused from its header).

    Raises:
        VolumeError: unreadable, too large, nibabel / pydicom missing; OSError.
    """
    volume = read_volume(Path(path))
    data = volume.data
    try:
        window = intensity_window(data, volume.path)
        unit = window.normalise(data)
    except VolumeError:  # a constant volume: all black
        unit = np.zeros_like(data)
    x, y, z = (n // 2 for n in volume.shape)
    dx, dy, dz = (float(v) for v in volume.zooms)
    tiles = [
        _tile(unit[:, :, z], (dx, dy), size),  # axial: x across, y up
        _tile(unit[:, y, :], (dx, dz), size),  # coronal: x across, z up
        _tile(unit[x, :, :], (dy, dz), size),  # sagittal: y across, z up
    ]
    return np.concatenate(tiles, axis=1)


__all__ = ["PLANES", "is_volume_source", "planes_label", "source_key", "volume_planes"]

"""Real medical volumes for the tests: NIfTI files written with nibabel, DICOM series written with pydicom, and
phantoms defined in world coordinates (so the same object can be sampled on any grid)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from mmfuse_cli.model.checkpoint import save_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig


def tiny_mif_checkpoint(folder: Path) -> Path:
    """A tiny MIF model (fast on a CPU), saved as a checkpoint."""
    torch.manual_seed(1)
    model = FusionModel(ModelConfig(base_channels=8, levels=3, task="mif"))
    torch.nn.init.normal_(model.net.head.weight, std=1e-3)
    return save_checkpoint(model, Path(folder) / "tiny-mif.safetensors")


def grid_affine(zooms=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), rotation=None) -> np.ndarray:
    """Voxel -> world: ``rotation @ diag(zooms)``, then ``origin``."""
    affine = np.eye(4)
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    affine[:3, :3] = r @ np.diag(zooms)
    affine[:3, 3] = origin
    return affine


def rotation(z_degrees: float = 0.0, x_degrees: float = 0.0) -> np.ndarray:
    """A rotation about z, then about x."""
    cz, sz = np.cos(np.radians(z_degrees)), np.sin(np.radians(z_degrees))
    cx, sx = np.cos(np.radians(x_degrees)), np.sin(np.radians(x_degrees))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rx @ rz


def world_points(shape, affine) -> np.ndarray:
    """``(3, X, Y, Z)``: the world coordinates of every voxel centre."""
    index = np.array(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), dtype=np.float64)
    return np.tensordot(affine[:3, :3], index, axes=1) + affine[:3, 3][:, None, None, None]


def blob(shape, affine, centre, sigma_mm=6.0, peak=1000.0) -> np.ndarray:
    """A Gaussian blob of ``sigma_mm`` at world ``centre``, sampled on the grid (float32)."""
    world = world_points(shape, affine)
    d2 = sum((world[i] - centre[i]) ** 2 for i in range(3))
    return (peak * np.exp(-d2 / (2 * sigma_mm**2))).astype(np.float32)


def head(shape, affine, centre=(0.0, 0.0, 0.0), radius=24.0, seed=0) -> np.ndarray:
    """An MRI-like head phantom: an ellipsoid of tissue with a brighter core and a dark ventricle, mild noise,
    background 0 (float32, values up to about 600)."""
    world = world_points(shape, affine)
    x, y, z = (world[i] - centre[i] for i in range(3))
    r = np.sqrt((x / radius) ** 2 + (y / (radius * 0.8)) ** 2 + (z / (radius * 0.9)) ** 2)
    image = np.where(r < 1.0, 300.0 + 100.0 * np.cos(x / 5.0), 0.0)
    image += np.where(r < 0.5, 200.0, 0.0) - np.where((x - 4) ** 2 + y**2 + z**2 < 25, 250.0, 0.0)
    rng = np.random.default_rng(seed)
    image = np.where(r < 1.0, image + rng.normal(0.0, 6.0, image.shape), 0.0)
    return np.clip(image, 0.0, None).astype(np.float32)


def save_nifti(path: Path, data, affine, dtype=None, qform_code=1, sform_code=1) -> Path:
    """Write a NIfTI-1 file with the given affine as qform and sform (with their codes)."""
    import nibabel as nib

    data = np.asarray(data)
    image = nib.Nifti1Image(data if dtype is None else data.astype(dtype), affine)
    image.set_qform(affine, code=qform_code)
    image.set_sform(affine, code=sform_code)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return Path(path)


def save_dicom_series(
    folder: Path,
    slices: np.ndarray,
    origin=(0.0, 0.0, 0.0),
    row_dir=(1.0, 0.0, 0.0),
    col_dir=(0.0, 1.0, 0.0),
    pixel_spacing=(1.0, 1.0),
    slice_step: float = 1.0,
    slope: float = 1.0,
    intercept: float = 0.0,
    shuffle_seed: int | None = 0,
    series_uid: str | None = None,
    positions=None,
    prefix: str = "IM",
) -> list[Path]:
    """A minimal valid MR series: ``slices`` ``(Z, Rows, Columns)`` stored values (int16), slice ``k`` at
    ``origin + k * slice_step * normal`` (LPS, or ``positions[k]``), files named in a shuffled order (and
    InstanceNumbers shuffled too) so that only the positions give the order."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    row_dir, col_dir = np.asarray(row_dir, float), np.asarray(col_dir, float)
    normal = np.cross(row_dir, col_dir)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    order = list(range(len(slices)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    paths = []
    for name_index, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{prefix}{name_index:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality, ds.PatientName, ds.PatientID = "MR", "Phantom^Test", "0001"
        ds.InstanceNumber = len(slices) - name_index
        position = np.asarray(origin, float) + k * slice_step * normal if positions is None else positions[k]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
        ds.SliceThickness = f"{abs(slice_step):g}"
        ds.Rows, ds.Columns = slices.shape[1], slices.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        ds.PixelData = np.ascontiguousarray(slices[k].astype("<i2")).tobytes()
        try:
            ds.save_as(str(path), enforce_file_format=True)  # pydicom 3
        except TypeError:
            ds.is_little_endian, ds.is_implicit_VR = True, False  # pydicom 2
            ds.save_as(str(path), write_like_original=False)
        paths.append(path)
    return paths


def dicom_volume_slices(data_xyz: np.ndarray) -> np.ndarray:
    """``(X, Y, Z)`` voxels as the ``(Z, Rows, Columns)`` pixel arrays of a series (column i, row j)."""
    return np.transpose(data_xyz, (2, 1, 0))

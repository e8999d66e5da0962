"""The geometry of a volume pair: source a (PET, SPECT, CT) brought onto source b's (MRI) voxel grid through the two
affines, and the blur its coarser voxels imply.

An affine ``A`` maps a voxel index ``(i, j, k, 1)`` (voxel centres) to world millimetres. A voxel ``v_b`` of b is
the world point ``A_b v_b``, which is a's voxel ``A_a^-1 A_b v_b``: :func:`voxel_map` is that 4 x 4 matrix, and
:func:`resample` reads a there by trilinear interpolation (:func:`scipy.ndimage.affine_transform`, which maps each
output index ``o`` to the input index ``M o + t``), in chunks of b's slices; outside a's field of view it reads
a's background (its minimum).

The blur told to the model (:func:`implied_blur`): a voxel of a is a box of its voxel sizes; projected on an
in-plane axis ``u`` of b (a unit vector, b's voxel size ``s_u`` along it) its variance is
``sum_j (u . d_j)^2 z_j^2 / 12`` (``d_j``, ``z_j``: a's axis directions and voxel sizes), and trilinear
interpolation from a's grid adds, on average over the offsets, twice that (a triangle of half-width ``z_j``:
variance ``z_j^2 / 6``). b's own voxel box, ``s_u^2 / 12``, is what the model takes for sharp and is removed. The
std, in b's voxels, is the root of the mean of the two in-plane axes' variances: 0.96 voxels for a 2 mm a on a 1
mm b, 0.41 for the same voxel size at another orientation, none when b's voxel centres fall on a's
(:func:`lattice_aligned`: a permutation or flip of axes and a whole-voxel shift need no interpolation). Blur across
b's slices (a's thicker slices) is not a 2-D degradation and is not told.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mmfuse_cli.degradation.spec import MAX_BLUR_STD

ORTHOGONALITY_TOLERANCE = 1e-3
"""Largest |cos| between two voxel axes of an orthogonal grid (0.06 degrees)."""
IDENTITY_TOLERANCE = 1e-4
"""Voxels: a voxel map this close to the identity means a already lies on b's grid (no resampling)."""
COVERAGE_POINTS = 24
"""Points per axis of b's grid sampled to measure how much of it a covers."""
INTERPOLATION_VARIANCE = 1.0 / 6.0
ACQUISITION_VARIANCE = 1.0 / 12.0


class GeometryError(ValueError):
    """A volume's geometry cannot be used (degenerate, sheared) or a pair's volumes do not overlap; one line
    naming the files and their geometries."""


def check_affine(affine: np.ndarray, name: object) -> None:
    """Refuse an affine that is not an orthogonal grid of positive voxel sizes.

    Raises:
        GeometryError: (naming ``name``) non-finite, degenerate (a voxel size of 0, collinear axes) or
            non-orthogonal (sheared: a gantry-tilted CT).
    """
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise GeometryError(f"{name}: degenerate affine (not a finite 4 x 4 matrix)")
    zooms = np.linalg.norm(matrix[:3, :3], axis=0)
    sizes = ", ".join(f"{z:g}" for z in zooms)
    if zooms.min() < 1e-6 or abs(np.linalg.det(matrix[:3, :3])) < 1e-9 * float(np.prod(zooms)):
        raise GeometryError(f"{name}: degenerate affine (voxel sizes {sizes} mm, or collinear voxel axes)")
    unit = matrix[:3, :3] / zooms
    for i, j in ((0, 1), (0, 2), (1, 2)):
        cosine = float(unit[:, i] @ unit[:, j])
        if abs(cosine) > ORTHOGONALITY_TOLERANCE:
            angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
            raise GeometryError(
                f"{name}: non-orthogonal affine (voxel axes {i + 1} and {j + 1} at {angle:.2f} degrees: a sheared "
                "grid, e.g. a gantry-tilted CT): resample it onto an orthogonal grid first"
            )


def axis_codes(affine: np.ndarray) -> str:
    """Where each voxel axis points, RAS+ letters (``RAS``, ``LPS``, ``LIP``...): the world axis nearest it."""
    letters = (("L", "R"), ("P", "A"), ("I", "S"))
    codes = []
    for column in np.asarray(affine)[:3, :3].T:
        axis = int(np.argmax(np.abs(column)))
        codes.append(letters[axis][int(column[axis] > 0)])
    return "".join(codes)


def world_extent(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """``(3, 2)``: the world box (millimetres, min and max per axis) of the grid's voxel edges."""
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in shape[:3]], indexing="ij")).reshape(3, -1)
    world = np.asarray(affine)[:3, :3] @ corners + np.asarray(affine)[:3, 3:4]
    return np.stack([world.min(axis=1), world.max(axis=1)], axis=1)


def describe(shape: tuple[int, ...], affine: np.ndarray) -> str:
    """One line: ``64x64x12 voxels of 2x2x3 mm, RAS, x [-64, 64] y [...] z [...] mm``."""
    zooms = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    box = world_extent(shape, affine)
    extent = " ".join(f"{axis} [{lo:.1f}, {hi:.1f}]" for axis, (lo, hi) in zip("xyz", box))
    return (
        f"{'x'.join(str(n) for n in shape[:3])} voxels of {'x'.join(f'{z:.3g}' for z in zooms)} mm, "
        f"{axis_codes(affine)}, {extent} mm"
    )


def voxel_map(affine_a: np.ndarray, affine_b: np.ndarray) -> np.ndarray:
    """``A_a^-1 A_b``: b's voxel index -> a's voxel index (4 x 4, homogeneous)."""
    return np.linalg.inv(np.asarray(affine_a, dtype=np.float64)) @ np.asarray(affine_b, dtype=np.float64)


def on_same_grid(mapping: np.ndarray, shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> bool:
    """a lies on b's grid: equal shapes and a voxel map within :data:`IDENTITY_TOLERANCE` of the identity."""
    return tuple(shape_a) == tuple(shape_b) and np.allclose(mapping, np.eye(4), atol=IDENTITY_TOLERANCE)


def coverage(mapping: np.ndarray, shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> float:
    """The fraction of b's grid (sampled at up to :data:`COVERAGE_POINTS` voxels per axis) inside a's voxels."""
    axes = [np.linspace(0, n - 1, min(n, COVERAGE_POINTS)) for n in shape_b[:3]]
    points = np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1)
    inside_a = mapping[:3, :3] @ points + mapping[:3, 3:4]
    limits = np.array(shape_a[:3], dtype=np.float64)[:, None]
    inside = ((inside_a >= -0.5) & (inside_a <= limits - 0.5)).all(axis=0)
    return float(inside.mean())


def resample(
    data_a: np.ndarray,
    mapping: np.ndarray,
    shape_b: tuple[int, ...],
    first: int,
    stop: int,
    background: float,
) -> np.ndarray:
    """a read on b's slices ``first:stop`` (trilinear), ``(X_b, Y_b, stop - first)`` float32; ``background``
    outside a."""
    linear, shift = mapping[:3, :3], mapping[:3, 3]
    offset = shift + linear @ np.array([0.0, 0.0, float(first)])
    return ndimage.affine_transform(
        data_a,
        linear,
        offset=offset,
        output_shape=(int(shape_b[0]), int(shape_b[1]), stop - first),
        output=np.float32,
        order=1,
        mode="constant",
        cval=float(background),
        prefilter=False,
    )


def lattice_aligned(mapping: np.ndarray) -> bool:
    """b's voxel centres fall on a's (an axis permutation or flip and a whole-voxel shift): reading a there needs
    no interpolation."""
    linear, shift = mapping[:3, :3], mapping[:3, 3]
    whole = np.round(linear)
    return bool(
        np.allclose(linear, whole, atol=IDENTITY_TOLERANCE)
        and (np.abs(whole).sum(axis=0) == 1).all()
        and (np.abs(whole).sum(axis=1) == 1).all()
        and np.allclose(shift, np.round(shift), atol=IDENTITY_TOLERANCE)
    )


def implied_blur(affine_a: np.ndarray, affine_b: np.ndarray, interpolated: bool = True) -> float:
    """The Gaussian std (b's voxels) of a's coarser voxels and, when ``interpolated``, its resampling on b's slices
    (module docstring), at most :data:`~mmfuse_cli.degradation.spec.MAX_BLUR_STD`; 3 decimals."""
    a = np.asarray(affine_a, dtype=np.float64)[:3, :3]
    b = np.asarray(affine_b, dtype=np.float64)[:3, :3]
    zooms_a, zooms_b = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    directions = a / zooms_a
    factor = ACQUISITION_VARIANCE + (INTERPOLATION_VARIANCE if interpolated else 0.0)
    variances = []
    for u in (0, 1):
        axis = b[:, u] / zooms_b[u]
        spread = float(np.sum((axis @ directions) ** 2 * zooms_a**2))
        total = spread * factor - ACQUISITION_VARIANCE * zooms_b[u] ** 2
        variances.append(max(total, 0.0) / zooms_b[u] ** 2)
    return round(min(float(np.sqrt(np.mean(variances))), MAX_BLUR_STD), 3)


__all__ = [
    "GeometryError",
    "axis_codes",
    "check_affine",
    "coverage",
    "describe",
    "implied_blur",
    "lattice_aligned",
    "on_same_grid",
    "resample",
    "voxel_map",
    "world_extent",
]

"""Pixel grids: images stored enlarged by pixel replication, recognised (numpy) and imposed (torch).

The Harvard atlas stores its 128 x 128 PET and SPECT scans as 256 x 256 files, each value repeated in a 2 x 2
block. ``mmfuse run --a-grid 2`` keeps a restored source on such blocks (``Degradation.grid``):
:func:`project_to_grid` puts an estimate on them; the numpy functions tell whether files as stored have them,
so that ``mmfuse degrade`` can point it out and ``run`` can refuse a grid a clean file visibly lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

GRID_CANDIDATES = (8, 4, 2)


def detect_pixel_grid(pixels: np.ndarray) -> int:
    """The largest g in :data:`GRID_CANDIDATES` such that every g x g block of ``pixels`` from the top-left pixel
    holds a single value, or 1.

    ``pixels``: ``(H, W)`` or ``(H, W, C)``, any dtype. The comparison is exact, as meant for files as stored (a
    blurred, noisy or re-compressed copy has no exact blocks). Blocks cut by the bottom or right border are
    ignored; a constant image, or one smaller than 2 x 2 blocks, gives 1.
    """
    if pixels.size == 0 or np.all(pixels == pixels.flat[0]):
        return 1
    for g in GRID_CANDIDATES:
        if min(pixels.shape[:2]) >= 2 * g and block_spread(pixels, g) == 0.0:
            return g
    return 1


def block_spread(pixels: np.ndarray, grid: int, offset: int = 0) -> float:
    """RMS deviation of ``pixels`` ``(H, W[, C])`` from the means of its ``grid x grid`` blocks, the blocks starting
    ``offset`` pixels in from the top and the left (whole blocks only)."""
    x = (pixels if pixels.ndim == 3 else pixels[..., None])[offset:, offset:].astype(np.float64)
    h, w = x.shape[0] // grid * grid, x.shape[1] // grid * grid
    if h == 0 or w == 0:
        return 0.0
    blocks = x[:h, :w].reshape(h // grid, grid, w // grid, grid, x.shape[2])
    return float(np.sqrt(((blocks - blocks.mean(axis=(1, 3), keepdims=True)) ** 2).mean()))


def grid_claim_holds(pixels: np.ndarray, grid: int) -> bool:
    """Whether an undegraded image ``pixels`` looks stored as ``grid x grid`` blocks from the top-left pixel.

    Tolerant of lossy storage (JPEG): the spread inside the claimed blocks must be at most half the spread inside
    blocks shifted by half a block, which for an ordinary image is about the same. An image too flat to tell
    (both spreads below 1e-6) passes. Meant for clean files only: noise fills both spreads alike.
    """
    if grid == 1:
        return True
    claimed, shifted = block_spread(pixels, grid), block_spread(pixels, grid, grid // 2)
    return max(claimed, shifted) < 1e-6 or claimed <= 0.5 * shifted


DETECTED_GRIDS = (4, 3, 2)
"""Grids :func:`detect_grid` looks for, largest first (a 4x4-block file is also made of 2x2 blocks)."""


def detect_grid(pixels: np.ndarray) -> int:
    """The pixel grid a file is visibly stored on: ``g`` when every ``g x g`` block from the top-left pixel holds
    one value (exactly, to 1e-6) while blocks shifted by half a block do not, else 1. Only an undegraded file shows
    it (blur and noise erase the blocks), and an ordinary image never has exactly constant blocks, so a detected
    grid is safe to use (the Harvard atlas' PET and SPECT: 128 x 128 scans stored as 256 x 256 files)."""
    if min(pixels.shape[:2]) < 8:
        return 1
    for grid in DETECTED_GRIDS:
        if block_spread(pixels, grid) < 1e-6 and block_spread(pixels, grid, grid // 2) > 1e-4:
            return grid
    return 1


def project_to_grid(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Every ``grid x grid`` block of ``x`` ``(N, C, H, W)`` set to its mean, blocks from the top-left pixel.

    The orthogonal projection onto pixel-replicated images: idempotent, and an image that already consists of
    such blocks is returned unchanged. Blocks cut by the bottom or right border average the pixels they have, so
    any H and W work. ``grid=1`` returns ``x`` itself.
    """
    if grid == 1:
        return x
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    means = F.avg_pool2d(x, grid, ceil_mode=True)
    return means.repeat_interleave(grid, dim=-2).repeat_interleave(grid, dim=-1)[..., :h, :w]

"""Synthesizing degraded observations: blur -> r x r downsample -> additive Gaussian noise -> clip.

:func:`degrade_tensor` on torch batches (training draws, benchmarks), :func:`degrade_array` on one image as
``mmfuse degrade`` writes it (per channel for colour images). The noise of each file is seeded from the run seed
and the file's relative path (:func:`file_seed`), so outputs are byte-identical for a seed whatever the order or
subset processed.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from mmfuse_cli.degradation.operators import build_operator
from mmfuse_cli.degradation.spec import Degradation


def file_seed(seed: int, relative_key: str) -> int:
    """Per-file noise seed: a stable mix of the run seed and the file's relative path (no Python hash())."""
    return (int(seed) * 1_000_003 + zlib.crc32(relative_key.encode("utf-8"))) % (2**63 - 1)


def degrade_tensor(
    x: torch.Tensor, degradation: Degradation, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Synthesize an observation: blur -> downsample -> additive Gaussian noise -> clip to [0, 1].

    Args:
        x: clean images ``(N, C, H, W)`` in [0, 1].
        generator: source of the noise (for reproducibility); noise is drawn on the CPU then moved.
    """
    y = build_operator(degradation).apply(x)
    if degradation.noise > 0:
        noise = torch.randn(y.shape, generator=generator, dtype=torch.float32).to(y.device, y.dtype)
        y = y + degradation.noise * noise
    return y.clamp(0.0, 1.0)


def degrade_array(pixels: np.ndarray, degradation: Degradation, seed: int) -> np.ndarray:
    """Degrade one image.

    Args:
        pixels: float32 [0, 1], ``(H, W)`` or ``(H, W, 3)``; H and W divisible by ``degradation.scale``.
        seed: noise seed.

    Returns:
        float32 [0, 1], ``(H / r, W / r[, 3])``.

    Raises:
        ValueError: the size is not divisible by the scale.
    """
    x = torch.from_numpy(np.ascontiguousarray(pixels))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    gen = torch.Generator().manual_seed(seed)
    y = degrade_tensor(x, degradation, generator=gen)[0]
    return (y[0] if pixels.ndim == 2 else y.permute(1, 2, 0)).numpy()

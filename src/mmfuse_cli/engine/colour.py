"""Colour handling of a pair: fuse luminance only, carry the colour source's chroma to the output grid.

Images are float32 in [0, 1], ``(h, w)`` or ``(h, w, 3)``. The luminance (BT.601 Y) of a colour source is fused;
the chroma (Cb, Cr) of the colour source goes to the output grid through that source's pseudo-inverse ``A+`` and
is recombined with the fused Y. If both sources are colour, ``b``'s chroma is used for IVIF (visible) and
``a``'s for MIF (PET/SPECT). A 3-channel image whose channels are equal (e.g. LLVIP infrared JPEGs) counts as
gray. A source with a pixel grid (``Degradation.grid``) keeps it in the chroma carried over.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from mmfuse_cli.degradation.scaling import LUMA_NOISE_GAIN
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.io import rgb_to_ycbcr, ycbcr_to_rgb
from mmfuse_cli.sampling.observation import Observation


def is_effectively_gray(pixels: np.ndarray, tolerance: float = 1.5 / 255) -> bool:
    """True for gray images and for RGB images whose three channels are equal within ``tolerance``."""
    if pixels.ndim == 2:
        return True
    return bool(np.abs(pixels[..., 0] - pixels[..., 1]).max() <= tolerance) and bool(
        np.abs(pixels[..., 0] - pixels[..., 2]).max() <= tolerance
    )


def luma(pixels: np.ndarray) -> np.ndarray:
    """The BT.601 luminance of an RGB image, or a gray image itself: float32 ``(h, w)``, C-contiguous."""
    if pixels.ndim == 2:
        return np.ascontiguousarray(pixels, dtype=np.float32)
    return np.ascontiguousarray(rgb_to_ycbcr(pixels)[..., 0])


def luma_noise(pixels: np.ndarray, degradation: Degradation) -> Degradation:
    """The degradation of ``pixels``' luminance: noise is stated per channel of the file as stored (as
    ``mmfuse degrade`` adds it), and the luminance of a colour image averages three independent channels, so its
    noise std is ``0.668`` times that; a gray image (or one whose channels are equal) keeps it."""
    if is_effectively_gray(pixels) or degradation.noise == 0:
        return degradation
    return replace(degradation, noise=degradation.noise * LUMA_NOISE_GAIN)


def recolor(
    fused_y: np.ndarray, a: np.ndarray, b: np.ndarray, deg_a: Degradation, deg_b: Degradation, task: str
) -> np.ndarray:
    """The fused image: ``fused_y`` ``(H, W)`` itself when both sources are gray, else RGB ``(H, W, 3)`` with the
    chroma of the colour source (see the module docstring) carried to the output grid, clipped to [0, 1]."""
    color_a, color_b = not is_effectively_gray(a), not is_effectively_gray(b)
    if not (color_a or color_b):
        return fused_y
    use_a = task == "mif" if (color_a and color_b) else color_a
    source, deg = (a, deg_a) if use_a else (b, deg_b)
    chroma = rgb_to_ycbcr(source)[..., 1:]
    t = torch.from_numpy(np.ascontiguousarray(chroma.transpose(2, 0, 1)))[None]
    with torch.inference_mode():
        up = Observation(t, deg).pinv_on_grid()[0].numpy().transpose(1, 2, 0)
    ycc = np.concatenate([fused_y[..., None], up], axis=-1)
    return np.clip(ycbcr_to_rgb(ycc), 0.0, 1.0)


__all__ = ["LUMA_NOISE_GAIN", "is_effectively_gray", "luma", "luma_noise", "recolor"]

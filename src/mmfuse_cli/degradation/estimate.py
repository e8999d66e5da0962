"""Blind estimates of a source's degradation from its pixels alone: noise std, Gaussian blur std, integer scale.

Images are float32 in [0, 1], ``(H, W)`` or ``(H, W, 3)``, on their own (sensor) grid. Units are those of
:class:`~mmfuse_cli.degradation.spec.Degradation`: noise std per channel of the file as stored (what ``mmfuse
degrade --noise`` adds), blur std in pixels of the output grid, the scale an integer.

* **Noise** (:func:`estimate_noise`): the finest diagonal Haar detail ``(a - b - c + d) / 2`` of each 2 x 2 block
  has the std of white noise and almost none of a smooth image. Its robust std (1.4826 MAD) is taken per tile of
  8 x 8 details, over tiles that are neither clipped (a black medical background, a saturated sky: clipping
  removes noise there) nor in the image's texture (a low percentile of the tiles' values, rescaled so that pure
  noise reads true). Rounding noise of the file's bit depth is removed in quadrature. Colour: per channel, median.
* **Blur** (:func:`estimate_blur`): the re-blur ratio at the strongest edges. A step blurred by a Gaussian of
  total width ``s_t`` has peak gradient ``A / (sqrt(2 pi) s_t)``; blurred again by a known ``s_r`` the peak falls to
  ``A / (sqrt(2 pi) sqrt(s_t^2 + s_r^2))``, so the ratio ``R`` gives ``s_t = s_r / sqrt(R^2 - 1)``. Both are measured on
  a copy pre-smoothed by ``s_p`` (taming the noise; ``s_p^2`` is subtracted back). The result is the *total* edge
  width, the camera's own included; what the model must be told is the blur beyond what it takes for sharp, so a
  typical sharp image's width (:data:`SHARP_WIDTH_SQ`, calibrated on the training splits, per scale) is removed
  in quadrature, and the estimate is shrunk towards 0 (:data:`BLUR_SHRINK`): telling the model too much blur costs
  far more than too little.
* **Scale** (:func:`infer_scales`): from the two sources' sizes; the same integer in both axes, tolerating the
  1-pixel remainder of odd sizes.

Each estimate comes with a spread (how much the per-tile / per-edge readings disagree) and ``None`` for the value
where it cannot be made (no valid tile; no edge): the caller falls back to none and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mmfuse_cli.degradation.scaling import quantisation_std
from mmfuse_cli.degradation.spec import MAX_BLUR_STD, MAX_NOISE, MAX_SCALE

TILE = 8
"""Tile side, in Haar details (16 x 16 pixels), of the per-tile noise readings."""
NOISE_PERCENTILE = 30.0
"""Which of the tiles' readings is taken: low, so that texture (which only raises a tile's reading) is ignored."""
NOISE_PERCENTILE_GAIN = 1.081
"""``1 / (percentile 30 of the 1.4826-MAD of 64 unit Gaussians)``: pure noise reads true (see tests)."""
MIN_NOISE_TILES = 4
PRE_SMOOTH = 0.8
"""``s_p``: pre-smoothing of the blur estimate's copies, pixels."""
REBLUR = 1.6
"""``s_r``: the known extra blur, pixels."""
EDGE_FRACTION = 0.01
"""Share of the valid pixels, by gradient magnitude, read as the strongest edges."""
SHARP_WIDTH_SQ = {1: 0.30, 2: 0.90, 4: 1.5}
"""Squared total edge width of clean images observed at each scale, in output-grid pixels^2 (the camera's own
blur plus the pooling's), calibrated on 20 clean training images (TNO, LLVIP, Harvard MRI/CT train splits):
``r^2 w_measured^2 = blur^2 + SHARP_WIDTH_SQ[r]`` held within 0.1 px^2 for blur 1 to 2.5 at scales 1 and 2."""
NOISE_WIDTH_SQ = {1: 0.45, 2: 0.2, 4: 0.0}
"""What the noise-adapted pre-smoothing takes off the squared width at noise std 0.05 (observation-grid px^2,
scaled by ``min(1, noise / 0.05)``), calibrated on the same images."""
BLUR_SHRINK = {1: 0.95, 2: 0.95, 4: 0.7}
"""Estimates are multiplied by this, per scale: erring low costs little, erring high costs much (issue 24's
measurements); at x4 the observation's own pooling hides most of the blur and the reading is least sure."""
MIN_EDGES = 20
EDGE_PERCENTILE = 40.0
"""Which of the per-edge widths is read: a little below the median, as wide readings (texture, thin lines, noise)
are the ones that would make the estimate too high."""


@dataclass(frozen=True)
class Estimate:
    """One estimated parameter: ``value`` (``None`` when it could not be made), ``spread`` (the interquartile range
    of the readings it came from, same unit), and ``note`` (why it is missing, or empty)."""

    value: float | None
    spread: float = 0.0
    note: str = ""


def _channels(pixels: np.ndarray) -> list[np.ndarray]:
    """The planes to estimate on: a gray image, or each channel of a colour one (one when they are equal)."""
    if pixels.ndim == 2:
        return [pixels.astype(np.float32, copy=False)]
    planes = [pixels[..., c].astype(np.float32, copy=False) for c in range(pixels.shape[-1])]
    if all(np.array_equal(planes[0], p) for p in planes[1:]):
        return planes[:1]
    return planes


def _haar_diagonal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finest diagonal Haar detail of ``x`` (H, W) and each 2 x 2 block's mean, both (H/2, W/2)."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    a, b, c, d = x[0:h:2, 0:w:2], x[0:h:2, 1:w:2], x[1:h:2, 0:w:2], x[1:h:2, 1:w:2]
    return (a - b - c + d) / 2.0, (a + b + c + d) / 4.0


def _noise_tiles(x: np.ndarray, floor: float) -> np.ndarray:
    """Robust std of the diagonal detail per TILE x TILE tile, over tiles whose neighbourhood is not clipped
    (local mean at least ``floor`` from 0 and from 1)."""
    detail, mean = _haar_diagonal(x)
    local = ndimage.uniform_filter(mean, size=TILE, mode="nearest")
    nh, nw = detail.shape[0] // TILE, detail.shape[1] // TILE
    if nh == 0 or nw == 0:
        return np.empty(0)
    crop = (slice(0, nh * TILE), slice(0, nw * TILE))
    tiles = np.abs(detail[crop]).reshape(nh, TILE, nw, TILE).transpose(0, 2, 1, 3).reshape(nh, nw, -1)
    sigma = 1.4826 * np.median(tiles, axis=-1)
    lo = local[crop].reshape(nh, TILE, nw, TILE).min(axis=(1, 3))
    hi = local[crop].reshape(nh, TILE, nw, TILE).max(axis=(1, 3))
    valid = (lo > floor) & (hi < 1.0 - floor)
    return sigma[valid]


def _noise_plane(x: np.ndarray) -> tuple[float, float] | None:
    """(sigma, spread) of one plane, or None when too few tiles are valid. Two passes: the clipping margin of the
    second is set from the first reading (2.5 sigma from 0 and 1)."""
    floor = 1.0 / 255.0
    readings = np.empty(0)
    for _ in range(2):
        readings = _noise_tiles(x, floor)
        if readings.size < MIN_NOISE_TILES:
            return None
        sigma = float(np.percentile(readings, NOISE_PERCENTILE)) * NOISE_PERCENTILE_GAIN
        floor = max(1.0 / 255.0, 2.5 * sigma)
    q1, q3 = np.percentile(readings, [25, 75])
    return sigma, float(q3 - q1) * NOISE_PERCENTILE_GAIN


def estimate_noise(pixels: np.ndarray, bits: int = 8) -> Estimate:
    """Noise std of an image ``(H, W)`` or ``(H, W, 3)`` in [0, 1], per channel of the file as stored, with the
    rounding noise of ``bits``-bit samples removed (0 = exact values). ``None`` for an image too small or too
    clipped to read (fewer than 4 valid 16 x 16 tiles)."""
    readings = [r for r in (_noise_plane(p) for p in _channels(pixels)) if r is not None]
    if not readings:
        return Estimate(None, note="too small or too clipped to estimate noise")
    sigma = float(np.median([r[0] for r in readings]))
    spread = float(np.median([r[1] for r in readings]))
    sensor = math.sqrt(max(0.0, sigma**2 - quantisation_std(bits) ** 2))
    return Estimate(round(min(sensor, MAX_NOISE), 4), round(spread, 4))


def _gradient(x: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(x)
    return np.hypot(gx, gy)


def total_edge_width(gray: np.ndarray, noise: float = 0.0) -> Estimate:
    """Total Gaussian width (pixels of ``gray``'s grid) of the strongest edges of ``gray`` ``(H, W)`` in [0, 1], by
    the re-blur ratio (module docstring); ``None`` without enough edges above the noise."""
    x = gray.astype(np.float64)
    if min(x.shape) < 16:
        return Estimate(None, note="too small to estimate blur")
    pre = math.sqrt(PRE_SMOOTH**2 + min(1.2, 1.5 * noise / 0.05) ** 2) if noise > 0 else PRE_SMOOTH
    g0 = _gradient(ndimage.gaussian_filter(x, pre, mode="reflect"))
    g1 = _gradient(ndimage.gaussian_filter(x, math.sqrt(pre**2 + REBLUR**2), mode="reflect"))
    margin = int(math.ceil(3 * math.sqrt(pre**2 + REBLUR**2))) + 1
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    g0, g1 = g0[inner], g1[inner]
    if g0.size == 0:
        return Estimate(None, note="too small to estimate blur")
    threshold = max(
        float(np.quantile(g0, 1.0 - EDGE_FRACTION)), 2.0 * max(noise, 1.0 / 255.0) / max(pre, 1.0)
    )
    edges = g0 >= threshold
    if int(edges.sum()) < MIN_EDGES:
        return Estimate(None, note="no edges to estimate blur from (a flat image)")
    ratio = g0[edges] / np.maximum(g1[edges], 1e-12)
    widths = REBLUR / np.sqrt(np.maximum(ratio**2 - 1.0, 1e-6))
    total = np.sqrt(np.maximum(widths**2 - pre**2, 0.0))
    q1, median, q3 = np.percentile(total, [25, EDGE_PERCENTILE, 75])
    return Estimate(float(median), float(q3 - q1))


def estimate_blur(pixels: np.ndarray, noise: float = 0.0, scale: int = 1) -> Estimate:
    """Gaussian blur std beyond a sharp image's (pixels of the output grid) of an image ``(H, W)`` or
    ``(H, W, 3)`` in [0, 1] observed at ``scale``; ``noise``: its noise std (per channel). ``None`` (with a note)
    where it cannot be made: a flat or tiny image."""
    gray = pixels if pixels.ndim == 2 else pixels[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    luma_noise = noise if pixels.ndim == 2 else noise * 0.668
    width = total_edge_width(gray, luma_noise)
    if width.value is None:
        return width
    key = min(SHARP_WIDTH_SQ, key=lambda r: abs(r - scale))
    observed_sq = width.value**2 + NOISE_WIDTH_SQ[key] * min(1.0, luma_noise / 0.05)
    beyond = math.sqrt(max(0.0, scale**2 * observed_sq - SHARP_WIDTH_SQ[key])) * BLUR_SHRINK[key]
    return Estimate(round(min(beyond, MAX_BLUR_STD), 3), round(width.spread * scale, 3))


def infer_scales(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> tuple[int, int] | None:
    """``(scale_a, scale_b)`` explaining two sources' sizes ``(h, w[, c])``: ``(1, 1)`` for equal sizes, ``(r, 1)``
    when ``b`` is ``r`` times ``a`` in both axes (``r`` an integer up to 8, each axis of ``b`` within ``r - 1``
    pixels of ``r`` times ``a``'s: the remainder of an odd size), ``(1, r)`` the other way round; ``None`` when no
    integer explains them (different aspect ratios, a non-integer ratio)."""
    (ha, wa), (hb, wb) = shape_a[:2], shape_b[:2]
    if (ha, wa) == (hb, wb):
        return 1, 1
    small, large, a_is_small = (
        ((ha, wa), (hb, wb), True) if ha * wa < hb * wb else ((hb, wb), (ha, wa), False)
    )
    for r in range(2, MAX_SCALE + 1):
        if all(0 <= big - r * s < r for s, big in zip(small, large)):
            return (r, 1) if a_is_small else (1, r)
    return None


__all__ = ["Estimate", "estimate_blur", "estimate_noise", "infer_scales", "total_edge_width"]

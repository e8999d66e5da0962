"""Blind estimates of a source's degradation from its pixels alone: noise std, Gaussian blur std, integer scale.

Images are float32 in [0, 1], ``(H, W)`` or ``(H, W, 3)``, on their own (sensor) grid. Units are those of
:class:`~mmfuse_cli.degradation.spec.Degradation`: noise std per channel of the file as stored (what ``mmfuse
degrade --noise`` adds), blur std in pixels of the output grid, the scale an integer.

* **Noise** (:func:`estimate_noise`): the finest diagonal Haar detail ``(a - b - c + d) / 2`` of each 2 x 2 block
  has the std of white noise and almost none of a smooth image. Its robust std (1.4826 MAD) is taken per tile of
  8 x 8 details, over tiles that are neither clipped (a black medical background, a saturated sky: clipping
  removes noise there) nor in the image's texture (a low percentile of the tiles' values, rescaled so that pure
  noise reads true). Rounding noise of the file's bit depth is removed in quadrature, and readings up to
  :data:`NOISE_DEAD_ZONE` are taken as none (a clean file's own grain). Colour: per channel, median.
* **Blur** (:func:`estimate_blur`): the re-blur ratio at the strongest edges. A step blurred by a Gaussian of
  total width ``s_t`` has peak gradient ``A / (sqrt(2 pi) s_t)``; blurred again by a known ``s_r`` the peak falls to
  ``A / (sqrt(2 pi) sqrt(s_t^2 + s_r^2))``, so the ratio ``R`` gives ``s_t = s_r / sqrt(R^2 - 1)``. Both are measured on
  a copy pre-smoothed by ``s_p`` (taming the noise; ``s_p^2`` is subtracted back), and the noise's own share of
  each squared gradient is removed first. The result is the *total* edge width, the camera's own included; what
  the model must be told is the blur beyond what it takes for sharp. :data:`BLUR_CALIBRATION` maps the width to
  that blur per scale and noise level (fitted on clean training images: a sharp image's width, and how much of an
  added blur the noise hides), and readings under :data:`BLUR_DEAD_ZONE` are taken as none: telling the model too
  much blur costs far more than too little. Cameras differ in their own sharpness (a sharp LLVIP visible image
  reads 0.1 px, a TNO infrared one 1.1-1.6 px), so a soft camera's clean images can read as blurred.
* **Scale** (:func:`infer_scales`): from the two sources' sizes; the same integer in both axes, tolerating the
  1-pixel remainder of odd sizes.

Each estimate comes with a spread (how much the per-tile / per-edge readings disagree) and ``None`` for the value
where it cannot be made (no valid tile; no edge): the caller falls back to none and says so.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mmfuse_cli.degradation.scaling import quantisation_std
from mmfuse_cli.degradation.spec import MAX_BLUR_STD, MAX_NOISE, MAX_SCALE
from mmfuse_cli.tasks import DEFAULT_TASK, Task

TILE = 8
"""Tile side, in Haar details (16 x 16 pixels), of the per-tile noise readings."""
NOISE_PERCENTILE = 30.0
"""Which of the tiles' readings is taken: low, so that texture (which only raises a tile's reading) is ignored."""
NOISE_PERCENTILE_GAIN = 1.081
"""``1 / (percentile 30 of the 1.4826-MAD of 64 unit Gaussians)``: pure noise reads true (see tests)."""
MIN_NOISE_TILES = 4
NOISE_DEAD_ZONE = 0.01
"""Readings at or below this (2.5 levels of 255) are read as no noise: clean 8-bit files read 0.003-0.012 from
their own grain and rounding (TNO, Harvard CT training images), and a model told any noise restores the whole
image generatively, where told none it keeps the observation exactly; leaving 0.01 of noise costs little."""
PRE_SMOOTH = 0.8
"""``s_p``: pre-smoothing of the blur estimate's copies, pixels."""
REBLUR = 1.6
"""``s_r``: the known extra blur, pixels."""
EDGE_FRACTION = 0.01
"""Share of the valid pixels, by gradient magnitude, read as the strongest edges."""
NOISE_KNOTS = (0.0, 0.02, 0.05, 0.1)
"""Luminance noise std at which :data:`BLUR_CALIBRATION` was measured (linear in between, clamped outside)."""
BLUR_CALIBRATION = {
    "ivif": {
        1: ((0.957, 1.948), (0.659, 1.945), (0.628, 2.126), (0.443, 1.514)),
        2: ((1.044, 3.198), (1.09, 3.007), (0.938, 2.574), (0.916, 2.339)),
        4: ((1.026, 5.86), (0.925, 5.149), (0.613, 3.432), (0.36, 1.187)),
    },
    "mif": {
        1: ((0.905, 0.274), (0.829, 0.279), (0.807, 0.305), (0.589, 0.226)),
        2: ((0.98, 0.98), (0.95, 0.929), (0.731, 0.67), (0.651, 0.486)),
        4: ((0.479, 0.352), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)),
    },
}
"""Per task (whose model's idea of sharp), scale ``r`` and noise knot, ``(alpha, beta)`` of
``r^2 w^2 = alpha blur^2 + beta``: how the measured total edge width ``w`` (observation-grid pixels) of a clean
image blurred by ``blur`` (output-grid pixels) and observed at ``r`` reads. ``alpha`` (below 1: how much of an
added blur the noise hides) is the least-squares slope over blur 0 to 2.5 of the median readings; ``beta`` is
the 75th percentile of the clean readings, so that three in four of the model's own sharp training images read
as sharp. Fitted on 4 clean training images per folder, IVIF: TNO and LLVIP IR / VIS (TNO's cameras are soft:
1.1-1.6 px, LLVIP's visible 0.1 px, hence the large ``beta``); MIF: Harvard CT and MRI (PET and SPECT are
stored as 2x2 blocks, which the pixel grid handles). ``python bench/estimation.py --parts calibrate`` refits it.
A 256 x 256 scan at x4 is 64 pixels wide: too few edges, ``alpha`` 0 (no blur is read there)."""
MIN_ALPHA = 0.5
"""Below this ``alpha`` the noise (or the pooling) hides most of a blur: the reading says too little, and inverting
a small ``alpha`` would turn its scatter into large blurs, so no blur is estimated (``None``, with a note)."""
BLUR_DEAD_ZONE = 0.6
"""Estimates below this (output-grid pixels) are read as no blur: a clean image's reading scatters around 0, and
telling the model a trace of blur that is not there costs far more (issue 24: blind on clean inputs) than
leaving a trace unrestored."""
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


def _noise_reading(tiles: np.ndarray) -> float:
    """The noise std read from per-tile readings (their :data:`NOISE_PERCENTILE`, calibrated)."""
    return float(np.percentile(tiles, NOISE_PERCENTILE)) * NOISE_PERCENTILE_GAIN


MAX_CLIP_MARGIN = 0.25
"""The second pass's clipping margin is capped here, so that heavy noise (sigma 0.2 and more, or pure noise)
still leaves the tiles of mid-gray content to read: their clipped share is small, and the reading errs low."""


def _noise_plane(x: np.ndarray) -> tuple[float, float] | None:
    """(sigma, spread) of one plane, or None when too few tiles are valid. Two passes: the clipping margin of the
    second is set from the first reading (2.5 sigma from 0 and 1, at most :data:`MAX_CLIP_MARGIN`); when that
    leaves too few tiles, the first reading stands."""
    first = _noise_tiles(x, 1.0 / 255.0)
    if first.size < MIN_NOISE_TILES:
        return None
    margin = min(MAX_CLIP_MARGIN, max(1.0 / 255.0, 2.5 * _noise_reading(first)))
    second = _noise_tiles(x, margin)
    readings = second if second.size >= MIN_NOISE_TILES else first
    sigma = _noise_reading(readings)
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
    if sensor <= NOISE_DEAD_ZONE:
        sensor = 0.0
    return Estimate(round(min(sensor, MAX_NOISE), 4), round(spread, 4))


def _gradient(x: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(x)
    return np.hypot(gx, gy)


@functools.lru_cache(maxsize=16)
def _noise_gradient_gain(sigma: float) -> float:
    """``E |grad(G_sigma * n)|^2`` for white noise ``n`` of unit std, with :func:`_gradient`'s central differences:
    the squared gradient noise adds at every pixel after a Gaussian pre-smoothing of ``sigma`` pixels."""
    size = 2 * int(math.ceil(4 * sigma)) + 3
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    gy, gx = np.gradient(ndimage.gaussian_filter(impulse, sigma, mode="constant"))
    return float((gx**2 + gy**2).sum())


def total_edge_width(gray: np.ndarray, noise: float = 0.0) -> Estimate:
    """Total Gaussian width (pixels of ``gray``'s grid) of the strongest edges of ``gray`` ``(H, W)`` in [0, 1], by
    the re-blur ratio (module docstring); ``None`` without enough edges above the noise."""
    x = gray.astype(np.float64)
    if min(x.shape) < 16:
        return Estimate(None, note="too small to estimate blur")
    pre = math.sqrt(PRE_SMOOTH**2 + min(1.2, 1.5 * noise / 0.05) ** 2) if noise > 0 else PRE_SMOOTH
    wide = math.sqrt(pre**2 + REBLUR**2)
    g0 = _gradient(ndimage.gaussian_filter(x, pre, mode="reflect"))
    g1 = _gradient(ndimage.gaussian_filter(x, wide, mode="reflect"))
    margin = int(math.ceil(3 * wide)) + 1
    inner = (slice(margin, -margin or None), slice(margin, -margin or None))
    g0, g1 = g0[inner], g1[inner]
    if g0.size == 0:
        return Estimate(None, note="too small to estimate blur")
    # the noise's own share of the squared gradients, removed in quadrature (white noise of std ``noise``)
    v0, v1 = noise**2 * _noise_gradient_gain(pre), noise**2 * _noise_gradient_gain(wide)
    threshold = max(float(np.quantile(g0, 1.0 - EDGE_FRACTION)), 3.0 * math.sqrt(v0), 2.0 / 255.0)
    edges = g0 >= threshold
    if int(edges.sum()) < MIN_EDGES:
        return Estimate(None, note="no edges to estimate blur from (a flat image)")
    c0 = np.sqrt(np.maximum(g0[edges] ** 2 - v0, 1e-12))
    c1 = np.sqrt(np.maximum(g1[edges] ** 2 - v1, 1e-12))
    ratio = c0 / c1
    widths = REBLUR / np.sqrt(np.maximum(ratio**2 - 1.0, 1e-6))
    total = np.sqrt(np.maximum(widths**2 - pre**2, 0.0))
    q1, median, q3 = np.percentile(total, [25, EDGE_PERCENTILE, 75])
    return Estimate(float(median), float(q3 - q1))


def estimate_blur(
    pixels: np.ndarray, noise: float = 0.0, scale: int = 1, task: Task = DEFAULT_TASK
) -> Estimate:
    """Gaussian blur std beyond a sharp image's (pixels of the output grid) of an image ``(H, W)`` or
    ``(H, W, 3)`` in [0, 1] observed at ``scale``; ``noise``: its noise std (per channel); ``task``: whose model's
    idea of sharp applies (``ivif`` or ``mif``, :data:`BLUR_CALIBRATION`). ``None`` (with a note) where it cannot
    be made: a flat or tiny image."""
    gray = pixels if pixels.ndim == 2 else pixels[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    luma_noise = noise if pixels.ndim == 2 else noise * 0.668
    width = total_edge_width(gray, luma_noise)
    if width.value is None:
        return width
    alpha, beta = _calibration(task, scale, luma_noise)
    if alpha < MIN_ALPHA:
        return Estimate(None, note=f"too little of a blur shows at x{scale} with noise {luma_noise:.3g}")
    blur_sq = (scale**2 * width.value**2 - beta) / alpha
    blur = math.sqrt(max(0.0, blur_sq))
    if blur < BLUR_DEAD_ZONE:
        blur = 0.0
    return Estimate(round(min(blur, MAX_BLUR_STD), 3), round(width.spread * scale, 3))


def _calibration(task: str, scale: int, noise: float) -> tuple[float, float]:
    """``(alpha, beta)`` of :data:`BLUR_CALIBRATION` for ``task`` and ``scale`` (the nearest calibrated one) at
    luminance noise ``noise``, linear between the knots and clamped outside them."""
    scales = BLUR_CALIBRATION[task]
    table = scales[min(scales, key=lambda r: abs(r - scale))]
    knots = np.asarray(NOISE_KNOTS)
    alpha = float(np.interp(noise, knots, [a for a, _ in table]))
    beta = float(np.interp(noise, knots, [b for _, b in table]))
    return alpha, beta


def estimate_parameter(
    name: str,
    pixels: np.ndarray,
    bits: int = 8,
    noise: float = 0.0,
    scale: int = 1,
    task: Task = DEFAULT_TASK,
    grid: int = 1,
) -> Estimate:
    """``noise`` (:func:`estimate_noise`) or ``blur`` (:func:`estimate_blur`, told ``noise``) of one source, as
    ``mmfuse run`` and ``mmfuse estimate`` both read it: a file visibly stored on a pixel grid (``grid`` > 1, from
    :func:`~mmfuse_cli.degradation.grid.detect_grid`) is undegraded, 0 for both."""
    if grid > 1:
        return Estimate(0.0)
    if name == "noise":
        return estimate_noise(pixels, bits)
    return estimate_blur(pixels, noise, scale, task)


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


__all__ = [
    "Estimate",
    "estimate_blur",
    "estimate_noise",
    "estimate_parameter",
    "infer_scales",
    "total_edge_width",
]

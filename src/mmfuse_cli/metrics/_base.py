"""Shared building blocks of the fusion metrics: input checks, the 0..255 scale, MATLAB-style filters.

Every metric takes gray float arrays in ``[0, 1]`` (the mmfuse convention) and converts them here to the
0..255 scale that the reference toolboxes work on. The filters reproduce MATLAB's ``filter2`` / ``conv2`` /
``imfilter`` semantics exactly (window sizes, zero / replicate padding, ``'same'`` / ``'valid'`` output) with
separable 1-D passes, so no metric needs a per-pixel Python loop.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

Convention = Literal["cdd", "tang", "vifb", "liu"]
"""Which reference toolbox a metric reproduces (see docs/METRICS.md):

* ``cdd``  - the Python ``Evaluator.py`` of CDDFuse (the most copied evaluator of recent MMIF papers);
* ``tang`` - Linfeng Tang's MATLAB toolbox (SeAFusion / PIAFusion lineage);
* ``vifb`` - the VIFB benchmark (Zhang et al.);
* ``liu``  - the toolbox of Liu et al., TPAMI 2012 (the ``Q_*`` metrics).
"""

CONVENTIONS: tuple[str, ...] = ("cdd", "tang", "vifb", "liu")

PadMode = Literal["zero", "replicate", "valid"]


def check_convention(convention: str, supported: tuple[str, ...], metric: str) -> str:
    """Return ``convention`` lower-cased, or raise ValueError when it is unknown.

    A convention the metric has no specific variant for falls back to the metric's single definition, so
    only unknown names are errors; ``supported`` lists the variants for the message.
    """
    conv = convention.lower()
    if conv not in CONVENTIONS:
        raise ValueError(
            f"{metric}: unknown convention {convention!r} (expected one of {', '.join(CONVENTIONS)}; "
            f"variants exist for {', '.join(supported)})"
        )
    return conv


def check_images(*images: np.ndarray) -> None:
    """Raise ValueError unless every image is a finite 2-D array of one common shape (at least 2 x 2)."""
    shape = None
    for img in images:
        if not isinstance(img, np.ndarray):
            raise ValueError(f"expected a numpy array, got {type(img).__name__}")
        if img.ndim != 2:
            raise ValueError(f"expected a gray (H, W) image, got shape {img.shape}")
        if img.shape[0] < 2 or img.shape[1] < 2:
            raise ValueError(f"image too small: {img.shape}")
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            raise ValueError(f"image sizes differ: {shape} vs {img.shape}")
        if not np.isfinite(img).all():
            raise ValueError("image contains NaN or inf")


def too_small(img: np.ndarray, size: int) -> bool:
    """True when a side of ``img`` is shorter than ``size`` px (the metric's window cannot fit: it returns NaN)."""
    return min(img.shape) < size


def to255(img: np.ndarray) -> np.ndarray:
    """float64 copy of a [0, 1] image on the 0..255 scale (no rounding)."""
    return np.asarray(img, dtype=np.float64) * 255.0


def gray_levels(img: np.ndarray) -> np.ndarray:
    """Integer gray levels 0..255 of a [0, 1] image: ``clip(round(255 x))`` (numpy round, half to even).

    This is what the toolboxes see when they read an 8-bit file (CDD: ``np.round`` of the OpenCV gray value;
    MATLAB: ``uint8``), and the bins of every histogram metric.
    """
    return np.clip(np.rint(np.asarray(img, dtype=np.float64) * 255.0), 0, 255).astype(np.intp)


def quantize8(img: np.ndarray) -> np.ndarray:
    """Snap a [0, 1] image to the 8-bit grid (``round(255 x) / 255``, float64), as if saved and re-read as 8-bit."""
    return gray_levels(img) / 255.0


def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: half away from zero (numpy's ``rint`` rounds half to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def normalize1(img255: np.ndarray) -> np.ndarray:
    """LIU's ``normalize1``: ``round(255 (x - min) / (max - min))`` (MATLAB rounding); all-zero stays unchanged.

    LIU would produce NaN for a constant non-zero image (0/0); here it maps to all zeros (documented deviation).
    """
    hi, lo = float(img255.max()), float(img255.min())
    if hi == lo:
        return np.zeros_like(img255, dtype=np.float64)
    return matlab_round((img255 - lo) / (hi - lo) * 255.0)


# --- windows and filters ------------------------------------------------------------------------------------


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)``, normalised to sum 1.

    ``fspecial`` is the outer product of this vector with itself (its ``eps * max`` cut-off never triggers
    for the windows used here: the smallest corner value is ~1e-5 of the peak).
    """
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def box_1d(size: int) -> np.ndarray:
    """1-D factor of a ``size x size`` uniform mean window."""
    return np.full(size, 1.0 / size)


def filter_sep(
    img: np.ndarray, k_rows: np.ndarray, k_cols: np.ndarray | None = None, mode: PadMode = "zero"
) -> np.ndarray:
    """2-D correlation (kernel not flipped) with the separable kernel ``outer(k_rows, k_cols)``.

    Args:
        img: 2-D float array.
        k_rows: odd-length 1-D kernel applied along axis 0.
        k_cols: kernel along axis 1 (default: ``k_rows``).
        mode: ``"zero"`` = MATLAB ``filter2(..., 'same')`` / ``conv2 'same'`` (zero padding);
            ``"replicate"`` = ``imfilter(..., 'replicate')``; ``"valid"`` = ``filter2(..., 'valid')`` (output
            shrinks by ``len(k) - 1`` on each axis).

    Returns:
        float64 array, same shape as ``img`` except for ``"valid"``.
    """
    k_cols = k_rows if k_cols is None else k_cols
    pad = {"zero": "constant", "replicate": "nearest", "valid": "constant"}[mode]
    out = ndimage.correlate1d(np.asarray(img, dtype=np.float64), k_rows, axis=0, mode=pad, cval=0.0)
    out = ndimage.correlate1d(out, k_cols, axis=1, mode=pad, cval=0.0)
    if mode == "valid":
        hr, hc = len(k_rows) // 2, len(k_cols) // 2
        out = out[hr : out.shape[0] - hr, hc : out.shape[1] - hc]
    return out


def local_moments(
    x: np.ndarray,
    y: np.ndarray,
    k: np.ndarray,
    mode: PadMode = "valid",
    mu_x: np.ndarray | None = None,
    var_x: np.ndarray | None = None,
):
    """Weighted local statistics of two images under the separable window ``outer(k, k)``.

    Returns ``(mu_x, mu_y, var_x, var_y, cov_xy)`` computed as ``E[x^2] - E[x]^2`` etc. (the reference codes'
    formula, no clamping). ``mu_x`` / ``var_x`` may be passed in to reuse them.
    """
    if mu_x is None:
        mu_x = filter_sep(x, k, mode=mode)
    if var_x is None:
        var_x = filter_sep(x * x, k, mode=mode) - mu_x * mu_x
    mu_y = filter_sep(y, k, mode=mode)
    var_y = filter_sep(y * y, k, mode=mode) - mu_y * mu_y
    cov = filter_sep(x * y, k, mode=mode) - mu_x * mu_y
    return mu_x, mu_y, var_x, var_y, cov


def flatten_tiny(var: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Set local variances that are pure round-off of ``E[x^2] - E[x]^2`` to exactly 0.

    On the 0..255 scale a genuinely non-flat 3x3..11x11 window of 8-bit data has a variance above 1e-4, while
    the round-off of a flat window is about ``1e-16 * mean^2``; the cut is ``1e-10 * (1 + mean^2)``. Metrics
    whose reference code divides by tiny constants (Q_Y, MEF-SSIM) need this to be well defined on flat areas.
    """
    out = var.copy()
    out[np.abs(out) <= 1e-10 * (1.0 + mean * mean)] = 0.0
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation over all pixels (NaN when either image is constant)."""
    xd = x - x.mean()
    yd = y - y.mean()
    den = np.sqrt(np.sum(xd * xd) * np.sum(yd * yd))
    if den == 0.0:
        return float("nan")
    return float(np.sum(xd * yd) / den)

"""No-reference metrics of the fused image alone: EN, SD, SF, AG (all: higher is better).

Caveat (docs/METRICS.md, "Degraded inputs"): noise raises all four, so on degraded data report them next to a
source-referenced metric.
"""

from __future__ import annotations

import numpy as np

from mmfuse_cli.metrics._base import check_convention, check_images, gray_levels, to255

STRIP_ROWS = 256
"""SF and AG run over bands of this many rows, so that a 12 Mpx image needs tens of MB of float64 temporaries,
not hundreds (the same differences; only the order of the final sums changes, by about 1e-15)."""


def en(fused: np.ndarray) -> float:
    """EN, Shannon entropy of the gray-level histogram, in bits. Range [0, 8]; higher is better.

    256 bins on the integer levels ``round(255 F)`` (CDD; TANG's MATLAB ``entropy`` and VIFB's floor give the
    same value on 8-bit images). Equals ``skimage.measure.shannon_entropy(levels, base=2)``.

    Args:
        fused: gray float image in [0, 1], (H, W).
    """
    check_images(fused)
    counts = np.bincount(gray_levels(fused).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def sd(fused: np.ndarray) -> float:
    """SD, population standard deviation on the 0..255 scale. Range [0, 127.5]; higher is better.

    All toolboxes (CDD, TANG's current code, VIFB "Variance") agree.
    """
    check_images(fused)
    return float(np.std(to255(fused)))


def sf(fused: np.ndarray, convention: str = "cdd") -> float:
    """SF, spatial frequency ``sqrt(RF^2 + CF^2)`` on the 0..255 scale. Range [0, 255 sqrt 2]; higher is better.

    ``cdd`` / ``tang``: RF^2 = mean of the M x (N-1) squared horizontal neighbour differences, CF^2 = mean of
    the (M-1) x N vertical ones. ``vifb``: both sums divided by M N instead (slightly smaller).
    """
    check_images(fused)
    conv = check_convention(convention, ("cdd", "tang", "vifb"), "SF")
    m, n = fused.shape
    rh = rv = 0.0  # sums of the squared horizontal / vertical neighbour differences, a band of rows at a time
    for start in range(0, m, STRIP_ROWS):
        band = to255(fused[start : start + STRIP_ROWS + 1])  # one row more: the vertical differences across
        dh = np.diff(band[:STRIP_ROWS], axis=1)
        dv = np.diff(band, axis=0)
        rh += float(np.sum(dh * dh))
        rv += float(np.sum(dv * dv))
    if conv == "vifb":
        rf2, cf2 = rh / (m * n), rv / (m * n)
    else:
        rf2 = rh / (m * (n - 1)) if n > 1 else float("nan")
        cf2 = rv / ((m - 1) * n) if m > 1 else float("nan")
    return float(np.sqrt(rf2 + cf2))


def ag(fused: np.ndarray, convention: str = "cdd") -> float:
    """AG, average gradient on the 0..255 scale. Range [0, 255] (in practice below 127.5); higher is better.

    Gradient as ``numpy.gradient`` / MATLAB ``gradient`` (central differences inside, one-sided at the
    borders); per pixel ``sqrt((gx^2 + gy^2) / 2)``. ``cdd``: summed and divided by M N; ``tang`` / ``vifb``:
    divided by (M-1)(N-1) (about 0.3 % larger on 576 x 768).
    """
    check_images(fused)
    conv = check_convention(convention, ("cdd", "tang", "vifb"), "AG")
    m, n = fused.shape
    total = 0.0
    for start in range(0, m, STRIP_ROWS):  # a band of rows at a time, with one row of context on each side
        lo, hi = max(0, start - 1), min(m, start + STRIP_ROWS + 1)
        gy, gx = np.gradient(to255(fused[lo:hi]))
        keep = slice(start - lo, start - lo + min(STRIP_ROWS, m - start))
        total += float(np.sqrt((gx[keep] ** 2 + gy[keep] ** 2) / 2.0).sum())
    if conv in ("tang", "vifb"):
        return total / ((m - 1) * (n - 1))
    return total / (m * n)

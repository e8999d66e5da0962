"""No-reference metrics of the fused image alone: EN, SD, SF, AG (all: higher is better).

Caveat (metrics-spec.md, section 1): noise raises all four, so on degraded data report them next to a
source-referenced metric.
"""

from __future__ import annotations

import numpy as np

from mmfuse_cli.metrics._base import check_convention, check_images, gray_levels, to255


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
    f = to255(fused)
    dh = np.diff(f, axis=1)
    dv = np.diff(f, axis=0)
    if conv == "vifb":
        rf2 = np.sum(dh * dh) / f.size
        cf2 = np.sum(dv * dv) / f.size
    else:
        rf2 = np.mean(dh * dh)
        cf2 = np.mean(dv * dv)
    return float(np.sqrt(rf2 + cf2))


def ag(fused: np.ndarray, convention: str = "cdd") -> float:
    """AG, average gradient on the 0..255 scale. Range [0, 255] (in practice below 127.5); higher is better.

    Gradient as ``numpy.gradient`` / MATLAB ``gradient`` (central differences inside, one-sided at the
    borders); per pixel ``sqrt((gx^2 + gy^2) / 2)``. ``cdd``: summed and divided by M N; ``tang`` / ``vifb``:
    divided by (M-1)(N-1) (about 0.3 % larger on 576 x 768).
    """
    check_images(fused)
    conv = check_convention(convention, ("cdd", "tang", "vifb"), "AG")
    gy, gx = np.gradient(to255(fused))
    s = np.sqrt((gx * gx + gy * gy) / 2.0)
    m, n = s.shape
    if conv in ("tang", "vifb"):
        return float(s.sum() / ((m - 1) * (n - 1)))
    return float(s.sum() / (m * n))

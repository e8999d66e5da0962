"""VIF: the pixel-domain multi-scale visual information fidelity of Sheikh & Bovik ("vifp_mscale").

CDD calls it "VIFF" but it is not Han et al.'s VIFF; TANG uses the same vifp_mscale. ``sewar.full_ref.vifp``
computes the same per-source value.
"""

from __future__ import annotations

import numpy as np

from mmfuse_cli.metrics._base import check_images, filter_sep, gaussian_1d, to255, too_small

_SIGMA_N2 = 2.0  # visual noise variance
_EPS = 1e-10
_MIN_SIDE = 41  # the 3-tap window of the 4th scale still fits


def _scale_window(scale: int) -> np.ndarray:
    size = 2 ** (5 - scale) + 1  # 17, 9, 5, 3
    return gaussian_1d(size, size / 5.0)


def _pyramid(img: np.ndarray) -> list[np.ndarray]:
    """The four inputs of the scales: scale s > 1 filters with its own window ('valid') and keeps every 2nd px."""
    levels = [img]
    for scale in range(2, 5):
        levels.append(filter_sep(levels[-1], _scale_window(scale), mode="valid")[::2, ::2])
    return levels


def _terms(
    ref: np.ndarray, mu2: np.ndarray, s2: np.ndarray, dist: np.ndarray, win: np.ndarray
) -> tuple[float, float]:
    """``(num, den)`` of one scale, with the reference code's fix-ups applied in its order."""
    mu1 = filter_sep(ref, win, mode="valid")
    s1 = np.maximum(filter_sep(ref * ref, win, mode="valid") - mu1 * mu1, 0.0)
    s12 = filter_sep(ref * dist, win, mode="valid") - mu1 * mu2
    g = s12 / (s1 + _EPS)
    sv = s2 - g * s12
    flat_ref = s1 < _EPS
    g[flat_ref] = 0.0
    sv[flat_ref] = s2[flat_ref]
    s1 = np.where(flat_ref, 0.0, s1)
    flat_dist = s2 < _EPS
    g[flat_dist] = 0.0
    sv[flat_dist] = 0.0
    neg = g < 0
    sv[neg] = s2[neg]
    g[neg] = 0.0
    sv = np.maximum(sv, _EPS)
    num = float(np.sum(np.log10(1.0 + g * g * s1 / (sv + _SIGMA_N2))))
    den = float(np.sum(np.log10(1.0 + s1 / _SIGMA_N2)))
    return num, den


def vif_single(fused: np.ndarray, reference: np.ndarray) -> float:
    """vifp_mscale(ref = ``reference``, dist = ``fused``) for one source: ratio of totals over the 4 scales.

    Typically 0.2-0.6 for a fused image against one source; can exceed 1 when F has more contrast than the
    source. 1.0 (CDD's NaN replacement) when the reference is flat everywhere; NaN under 41 px a side.
    """
    check_images(fused, reference)
    if too_small(fused, _MIN_SIDE):
        return float("nan")
    return _vif_many(to255(fused), [to255(reference)])[0]


def _vif_many(dist: np.ndarray, refs: list[np.ndarray]) -> list[float]:
    dist_levels = _pyramid(dist)
    ref_levels = [_pyramid(r) for r in refs]
    nums = [0.0] * len(refs)
    dens = [0.0] * len(refs)
    for s in range(4):
        win = _scale_window(s + 1)
        d = dist_levels[s]
        mu2 = filter_sep(d, win, mode="valid")
        s2 = np.maximum(filter_sep(d * d, win, mode="valid") - mu2 * mu2, 0.0)
        for i, levels in enumerate(ref_levels):
            num, den = _terms(levels[s], mu2, s2, d, win)
            nums[i] += num
            dens[i] += den
    out = []
    for num, den in zip(nums, dens, strict=True):
        value = num / den if den != 0 else float("nan")
        out.append(1.0 if np.isnan(value) else value)
    return out


def vif(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """VIF = vifp(A, F) + vifp(B, F) on the 0..255 scale, sigma_n^2 = 2 (CDD "VIFF", TANG VIF). Higher is better.

    Four scales with Gaussian windows of 17, 9, 5, 3 taps (std N/5, MATLAB ``fspecial``), 'valid' filtering and
    decimation by 2 between scales; per source the ratio of the summed information terms over all scales.
    Range [0, ~2+] (sum of two terms; 2 when F == A == B); typical IR/VIS 0.6-1.05. Images must be at least
    41 px on each side (the coarsest scale needs room for its window), else the result is NaN.
    """
    check_images(fused, a, b)
    if too_small(fused, _MIN_SIDE):
        return float("nan")
    va, vb = _vif_many(to255(fused), [to255(a), to255(b)])
    return va + vb

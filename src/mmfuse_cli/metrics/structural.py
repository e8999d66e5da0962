"""Structural-similarity metrics: SSIM (three toolbox conventions), TANG's "MS-SSIM" (really Ma et al.'s
MEF-MS-SSIM), LIU's Q_S (Piella) and Q_Y (Yang), and Wang SSIM against a clean reference.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from mmfuse_cli.metrics._base import (
    box_1d,
    check_convention,
    check_images,
    filter_sep,
    flatten_tiny,
    gaussian_1d,
    local_moments,
    to255,
    too_small,
)

_G11 = gaussian_1d(11, 1.5)  # fspecial('gaussian', 11, 1.5)
_G7 = gaussian_1d(7, 1.5)  # fspecial('gaussian', 7, 1.5)


def _wang_ssim(x255: np.ndarray, y255: np.ndarray) -> float:
    """Wang et al.'s SSIM: Gaussian 11x11 sigma 1.5, 'valid', L = 255, K = (0.01, 0.03), mean of the map."""
    return float(
        structural_similarity(
            x255, y255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0
        )
    )


def _matlab_ssim(x255: np.ndarray, y255: np.ndarray) -> float:
    """MATLAB ``ssim(x, y)`` on double 0..255: Gaussian sigma 1.5 (11x11), replicate padding, 'same' map,
    DynamicRange 1 (C1 = 1e-4, C2 = 9e-4), mean of the whole map."""
    mx, my, vx, vy, cxy = local_moments(x255, y255, _G11, mode="replicate")
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(np.mean(ssim_map))


def ssim(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "cdd") -> float:
    """SSIM of F with the two sources. Higher is better.

    * ``cdd``: ``s(F, A) + s(F, B)`` with ``skimage.metrics.structural_similarity`` as CDD ran it (scikit-image
      0.19 defaults on float arrays in 0..255): 7x7 uniform window, sample covariance, and data_range
      inferred as 2 (so C1 = 4e-4, C2 = 3.6e-3: nearly no stabilising constant). Range [-2, 2]; IR/VIS about 1.
    * ``tang``: ``(s(F, A) + s(F, B)) / 2`` with MATLAB ``ssim`` on double 0..255 (Gaussian sigma 1.5,
      replicate padding, C1 = 1e-4, C2 = 9e-4). Range [-1, 1].
    * ``vifb``: ``s(A, F) + s(B, F)`` with Wang's original (Gaussian 11x11 sigma 1.5, 'valid', L = 255).
      Range [-2, 2]; IR/VIS about 1.1-1.5.

    NaN when the window does not fit (under 7 px a side for cdd, 11 for vifb).
    """
    check_images(fused, a, b)
    conv = check_convention(convention, ("cdd", "tang", "vifb"), "SSIM")
    f, x, y = to255(fused), to255(a), to255(b)
    if conv == "tang":
        return (_matlab_ssim(f, x) + _matlab_ssim(f, y)) / 2.0
    if too_small(f, 11 if conv == "vifb" else 7):
        return float("nan")
    if conv == "vifb":
        return _wang_ssim(x, f) + _wang_ssim(y, f)
    return float(structural_similarity(f, x, data_range=2.0) + structural_similarity(f, y, data_range=2.0))


def ssim_reference(image: np.ndarray, reference: np.ndarray) -> float:
    """Wang SSIM of one image against a clean reference (Gaussian 11x11 sigma 1.5, L = 255 on 0..255, i.e.
    data_range 1 on [0, 1]). Range [-1, 1]; higher is better; 1 when identical; NaN under 11 px a side."""
    check_images(image, reference)
    if too_small(image, 11):
        return float("nan")
    return _wang_ssim(to255(reference), to255(image))


def ssim_fused_reference(fused: np.ndarray, a_ref: np.ndarray, b_ref: np.ndarray) -> float:
    """Mean Wang SSIM of F against two clean sources, ``(s(A_ref, F) + s(B_ref, F)) / 2``. Range [-1, 1]."""
    check_images(fused, a_ref, b_ref)
    if too_small(fused, 11):
        return float("nan")
    f = to255(fused)
    return (_wang_ssim(to255(a_ref), f) + _wang_ssim(to255(b_ref), f)) / 2.0


# --- Q_S (Piella, LIU metricPeilla sw = 1) ------------------------------------------------------------------


def _ssim_map_valid(x, y, k, c1, c2, stats=None):
    mx, my, vx, vy, cxy = stats if stats is not None else local_moments(x, y, k, mode="valid")
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def q_s(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Q_S, Piella's fusion quality index as implemented by LIU (``metricPeilla(., 1)``). Range [-1, 1]; higher
    is better.

    Wang's ``ssim_index`` (Gaussian 11x11 sigma 1.5, 'valid', L = 255, K = 0.01 / 0.03) on raw 0..255 images;
    ``lambda = s_A^2 / (s_A^2 + s_B^2)`` from the local variances of A and B (0.5 where both are flat, as LIU);
    ``Q_S = mean(lambda SSIM(F, A) + (1 - lambda) SSIM(F, B))``. Flat windows are detected with a round-off
    tolerance (LIU's exact ``== 0`` test depends on MATLAB's filter round-off). NaN under 11 px a side.
    """
    check_images(fused, a, b)
    if too_small(fused, 11):
        return float("nan")
    f, x, y = to255(fused), to255(a), to255(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my, vx, vy, _ = local_moments(x, y, _G11, mode="valid")
    vx, vy = flatten_tiny(vx, mx), flatten_tiny(vy, my)
    both_flat = (vx + vy) == 0
    lam = np.where(both_flat, 0.5, vx / np.where(both_flat, 1.0, vx + vy))
    mf = filter_sep(f, _G11, mode="valid")
    vf = filter_sep(f * f, _G11, mode="valid") - mf * mf
    s_fa = _ssim_map_valid(f, x, _G11, c1, c2, local_moments(f, x, _G11, "valid", mu_x=mf, var_x=vf))
    s_fb = _ssim_map_valid(f, y, _G11, c1, c2, local_moments(f, y, _G11, "valid", mu_x=mf, var_x=vf))
    return float(np.mean(lam * s_fa + (1.0 - lam) * s_fb))


# --- Q_Y (Yang, LIU metricYang) -----------------------------------------------------------------------------


def _yang_stats(x: np.ndarray, y: np.ndarray):
    mx, my, vx, vy, cxy = local_moments(x, y, _G7, mode="valid")
    vx, vy = flatten_tiny(vx, mx), flatten_tiny(vy, my)
    cxy = np.where((vx == 0) | (vy == 0), 0.0, cxy)
    return mx, my, vx, vy, cxy


def q_y(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Q_Y, Yang et al.'s similarity-based metric (LIU ``metricYang``). Range [-1, 1]; higher is better.

    SSIM maps with a 7x7 Gaussian (sigma 1.5), 'valid', C1 = C2 = 2e-16 on raw 0..255 images:
    where SSIM(A, B) >= 0.75, ``lambda SSIM(A,F) + (1 - lambda) SSIM(B,F)`` with
    ``lambda = s_A^2 / (s_A^2 + s_B^2)``; elsewhere ``max(SSIM(A,F), SSIM(B,F))``; Q_Y = mean.
    With such tiny constants the reference result on flat windows is decided by filter round-off; here local
    variances below round-off level count as exactly 0 and lambda = 0.5 where both sources are flat.
    NaN under 7 px a side.
    """
    check_images(fused, a, b)
    if too_small(fused, 7):
        return float("nan")
    f, x, y = to255(fused), to255(a), to255(b)
    c = 2e-16
    s_ab_stats = _yang_stats(x, y)
    s_ab = _ssim_map_valid(x, y, _G7, c, c, s_ab_stats)
    s_af = _ssim_map_valid(x, f, _G7, c, c, _yang_stats(x, f))
    s_bf = _ssim_map_valid(y, f, _G7, c, c, _yang_stats(y, f))
    vx, vy = s_ab_stats[2], s_ab_stats[3]
    both_flat = (vx + vy) == 0
    lam = np.where(both_flat, 0.5, vx / np.where(both_flat, 1.0, vx + vy))
    q = np.where(s_ab >= 0.75, lam * s_af + (1.0 - lam) * s_bf, np.maximum(s_af, s_bf))
    return float(np.mean(q))


# --- MS_SSIM (TANG analysis_ms_ssim = MEF-MS-SSIM of Ma, Zeng & Wang 2015) -----------------------------------

_MEF_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
_DBL_EPS = np.finfo(np.float64).eps


def _mef_downsample(img: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then every second pixel from the first."""
    p = np.pad(img, ((0, 1), (0, 1)), mode="symmetric")
    mean2 = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4.0
    return mean2[::2, ::2]


def _mef_ssim(x: np.ndarray, y: np.ndarray, f: np.ndarray) -> float:
    """One scale of MEF-SSIM for the two-image sequence (x, y) and the fused f, vectorised.

    The reference builds, per 11x11 window, a desired patch ``r = c sum_k w_k (x_k - mu_k) / ed_k`` (unit-norm
    direction rescaled to the largest source contrast) and compares its structure with F's; because r is
    linear in the source patches, its Gaussian-weighted variance and covariance with F follow from local
    (co)variances of the sources, so no per-window loop is needed.
    """
    n = 11
    k_box, k_g = box_1d(n), _G11
    mx, my, vx, vy, cxy = local_moments(x, y, k_box, mode="valid")
    vx, vy = flatten_tiny(vx, mx), flatten_tiny(vy, my)
    cxy = np.where((vx == 0) | (vy == 0), 0.0, cxy)
    ed_x = np.sqrt(np.maximum(n * n * vx, 0.0)) + 0.001
    ed_y = np.sqrt(np.maximum(n * n * vy, 0.0)) + 0.001
    # consistency ratio R -> exponent p of the contrast weights
    num = np.sqrt(np.maximum(n * n * (vx + vy + 2 * cxy), 0.0))
    den = np.sqrt(n * n * vx) + np.sqrt(n * n * vy)
    ratio = (num + _DBL_EPS) / (den + _DBL_EPS)
    ratio = np.where(ratio > 1, 1 - _DBL_EPS, ratio)
    ratio = np.where(ratio < 0, _DBL_EPS, ratio)
    p = np.minimum(np.tan(np.pi / 2 * ratio), 10.0)
    w_x = (ed_x / n) ** p + _DBL_EPS
    w_y = (ed_y / n) ** p + _DBL_EPS
    total = w_x + w_y
    a_x, a_y = w_x / total / ed_x, w_y / total / ed_y
    norm2 = n * n * (a_x * a_x * vx + a_y * a_y * vy + 2 * a_x * a_y * cxy)
    scale = np.where(norm2 > 0, np.maximum(ed_x, ed_y) / np.sqrt(np.where(norm2 > 0, norm2, 1.0)), 1.0)
    # Gaussian-weighted statistics of the sources and F
    gmx, gmf, gvx, gvf, gcxf = local_moments(x, f, k_g, mode="valid")
    gmy, _, gvy, _, gcyf = local_moments(y, f, k_g, mode="valid", mu_x=None, var_x=None)
    gcxy = filter_sep(x * y, k_g, mode="valid") - gmx * gmy
    gvx, gvy = flatten_tiny(gvx, gmx), flatten_tiny(gvy, gmy)
    gvf = flatten_tiny(gvf, gmf)
    gcxy = np.where((gvx == 0) | (gvy == 0), 0.0, gcxy)
    sigma_r2 = scale * scale * (a_x * a_x * gvx + a_y * a_y * gvy + 2 * a_x * a_y * gcxy)
    sigma_rf = scale * (a_x * gcxf + a_y * gcyf)
    c = (0.03 * 255) ** 2
    q_map = (2 * sigma_rf + c) / (sigma_r2 + gvf + c)
    return float(np.mean(q_map))


def ms_ssim(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """MS_SSIM as TANG reports it: ``analysis_ms_ssim``, i.e. Ma, Zeng & Wang's MEF-MS-SSIM (TIP 2015), not
    Wang's MS-SSIM. Range about [-1, 1]; higher is better.

    The sources (A, B) form the "exposure sequence"; at each of 3 scales a desired patch is synthesised per
    11x11 window (structure of the sources weighted by their contrast with exponent ``tan(pi R / 2)`` capped
    at 10, R = consistency ratio) and compared with F by an SSIM-like term with C = (0.03 * 255)^2 and a
    Gaussian 11x11 sigma 1.5 window; scales come from a 2x2 mean (symmetric padding) and decimation;
    ``MS_SSIM = prod Q_l^w_l`` with w = [0.0448, 0.2856, 0.3001] normalised. NaN for images under 44 px a side.
    """
    check_images(fused, a, b)
    f, x, y = to255(fused), to255(a), to255(b)
    if min(f.shape) / 4 < 11:
        return float("nan")
    scores = []
    for level in range(3):
        scores.append(_mef_ssim(x, y, f))
        if level < 2:
            x, y, f = _mef_downsample(x), _mef_downsample(y), _mef_downsample(f)
    with np.errstate(invalid="ignore"):
        return float(np.prod(np.power(np.array(scores), _MEF_WEIGHTS)))

"""Q_CB, Chen & Blum's human-perception-inspired metric (LIU ``metricChenBlum``, VIFB ``metricsQcb``)."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from mmfuse_cli.metrics._base import check_images, filter_sep, normalize1, to255


def _freqspace(n: int) -> np.ndarray:
    """MATLAB ``freqspace(n)``: ``((0:n-1) - floor(n/2)) * 2/n`` (centred, DC at index floor(n/2))."""
    return (np.arange(n) - n // 2) * (2.0 / n)


def _csf_filter(shape: tuple[int, int]) -> np.ndarray:
    """Chen-Blum's DoG contrast-sensitivity filter, moved so DC is at [0, 0] (ifftshift of the centred grid).

    ``S(r) = exp(-(r/f0)^2) - a exp(-(r/f1)^2)``, f0 = 15.3870, f1 = 1.3456, a = 0.7622, with r on the
    freqspace grid scaled by N/30 (columns) and M/30 (rows).
    """
    rows, cols = shape
    u = _freqspace(cols) * (cols / 30.0)
    v = _freqspace(rows) * (rows / 30.0)
    r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    s = np.exp(-((r / 15.3870) ** 2)) - 0.7622 * np.exp(-((r / 1.3456) ** 2))
    return np.fft.ifftshift(s)


def _gauss_unnormalised(sigma: float) -> np.ndarray:
    """1-D factor of the 31x31 ``exp(-(x^2+y^2)/(2 s^2)) / (2 pi s^2)`` on -15..15 (not renormalised)."""
    x = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(x * x) / (2 * sigma * sigma)) / np.sqrt(2 * np.pi * sigma * sigma)


_G2 = _gauss_unnormalised(2.0)
_G4 = _gauss_unnormalised(4.0)


def _masked_contrast(img: np.ndarray, csf: np.ndarray) -> np.ndarray:
    """``C' = C^3 / (C^2 + 1e-4)`` of the CSF-filtered image, ``C = |G_2 * I / G_4 * I - 1|`` (zero padding)."""
    filtered = np.real(sfft.ifft2(sfft.fft2(img, workers=1) * csf, workers=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        contrast = np.abs(filter_sep(filtered, _G2) / filter_sep(filtered, _G4) - 1.0)
        return contrast**3 / (contrast**2 + 1e-4)


def q_cb(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Q_CB, Chen-Blum metric. Range [0, 1]; higher is better (VIFB pairs 0.41-0.65).

    LIU-normalised images (min-max to 0..255, rounded) are filtered with the DoG CSF in the frequency domain
    (the real part is kept; the imaginary round-off is ~1e-13); local contrast from two unnormalised 31x31
    Gaussians (sigma 2 and 4) by zero-padded correlation; preservation ``Q_XF = min(C'_X, C'_F) /
    max(C'_X, C'_F)``; saliency ``lambda_A = C'_A^2 / (C'_A^2 + C'_B^2)``; ``Q_CB = mean(lambda_A Q_AF +
    lambda_B Q_BF)``. Pixels where the reference arithmetic gives 0/0 (no contrast anywhere) are left out of
    the mean instead of turning the result into NaN.
    """
    check_images(fused, a, b)
    csf = _csf_filter(fused.shape)
    ca, cb, cf = (_masked_contrast(normalize1(to255(x)), csf) for x in (a, b, fused))
    with np.errstate(divide="ignore", invalid="ignore"):
        q_af = np.where(ca < cf, ca / cf, cf / ca)
        q_bf = np.where(cb < cf, cb / cf, cf / cb)
        sal = ca * ca + cb * cb
        q = (ca * ca) / sal * q_af + (cb * cb) / sal * q_bf
    finite = np.isfinite(q)
    return float(np.mean(q[finite])) if finite.any() else float("nan")

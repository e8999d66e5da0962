"""Pixel-statistics metrics of F against the sources A, B: CC, SCD, MSE, PSNR; and textbook PSNR for clean
references."""

from __future__ import annotations

import numpy as np

from mmfuse_cli.metrics._base import check_convention, check_images, pearson, to255


def cc(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """CC, mean Pearson correlation ``(r(A, F) + r(B, F)) / 2``. Range [-1, 1]; higher is better.

    CDD and TANG agree. NaN when an image is constant.
    """
    check_images(fused, a, b)
    f = to255(fused)
    return (pearson(to255(a), f) + pearson(to255(b), f)) / 2.0


def scd(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SCD, sum of the correlations of differences (Aslantas & Bendes 2015): ``r(F - B, A) + r(F - A, B)``.

    Range [-2, 2]; higher is better (good IR/VIS methods 1.6-1.9). CDD and TANG agree. NaN when a difference
    image is constant (e.g. F == A).
    """
    check_images(fused, a, b)
    f, x, y = to255(fused), to255(a), to255(b)
    return pearson(f - y, x) + pearson(f - x, y)


def _mse255(x: np.ndarray, y: np.ndarray) -> float:
    d = x - y
    return float(np.mean(d * d))


def mse(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "cdd") -> float:
    """MSE of F to the two sources, averaged. Lower is better.

    * ``cdd``: ``(mean((A-F)^2) + mean((B-F)^2)) / 2`` on 0..255, range [0, 65025].
    * ``tang``: the same on images divided by 255 (= cdd / 65025), range [0, 1].
    * ``vifb``: VIFB's "RMSE", ``(sqrt(sum((A-F)^2)) + sqrt(sum((B-F)^2))) / (2 M N)`` on 0..255 (root of the
      sum divided by M N; not a true RMSE).
    """
    check_images(fused, a, b)
    conv = check_convention(convention, ("cdd", "tang", "vifb"), "MSE")
    f, x, y = to255(fused), to255(a), to255(b)
    if conv == "vifb":
        return _vifb_rmse(f, x, y)
    value = (_mse255(x, f) + _mse255(y, f)) / 2.0
    return value / 65025.0 if conv == "tang" else value


def _vifb_rmse(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    n = f.size
    return float((np.sqrt(np.sum((x - f) ** 2)) / n + np.sqrt(np.sum((y - f) ** 2)) / n) / 2.0)


def psnr(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "cdd") -> float:
    """PSNR of F to the two sources, in dB. Higher is better (inf when F == A == B).

    * ``cdd``: ``10 log10(max(F)^2 / MSE_cdd)``: the peak is the maximum of the fused image, not 255.
    * ``tang``: ``20 log10(255 / sqrt(MSE_tang))`` = textbook + 48.13 dB (typically 60-65 dB).
    * ``vifb``: ``20 log10(255 / sqrt(RMSE_vifb))`` (typically 55-60 dB).
    """
    check_images(fused, a, b)
    conv = check_convention(convention, ("cdd", "tang", "vifb"), "PSNR")
    f, x, y = to255(fused), to255(a), to255(b)
    if conv == "vifb":
        err = _vifb_rmse(f, x, y)
        return float("inf") if err == 0 else float(20.0 * np.log10(255.0 / np.sqrt(err)))
    err = (_mse255(x, f) + _mse255(y, f)) / 2.0
    if err == 0:
        return float("inf")
    if conv == "tang":
        return float(20.0 * np.log10(255.0 / np.sqrt(err / 65025.0)))
    return float(10.0 * np.log10(float(f.max()) ** 2 / err))


def psnr_reference(image: np.ndarray, reference: np.ndarray) -> float:
    """Textbook PSNR of one image against a clean reference: ``10 log10(255^2 / mean((X - R)^2))`` on 0..255.

    Equals ``skimage.metrics.peak_signal_noise_ratio(R, X, data_range=1)`` on [0, 1] data. Higher is better;
    inf when identical.
    """
    check_images(image, reference)
    err = _mse255(to255(image), to255(reference))
    return float("inf") if err == 0 else float(10.0 * np.log10(255.0**2 / err))


def psnr_fused_reference(fused: np.ndarray, a_ref: np.ndarray, b_ref: np.ndarray) -> float:
    """Textbook fusion PSNR of F against two clean sources: ``10 log10(255^2 / ((MSE(A,F) + MSE(B,F)) / 2))``."""
    check_images(fused, a_ref, b_ref)
    f = to255(fused)
    err = (_mse255(to255(a_ref), f) + _mse255(to255(b_ref), f)) / 2.0
    return float("inf") if err == 0 else float(10.0 * np.log10(255.0**2 / err))

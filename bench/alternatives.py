"""Classical alternatives to mmfuse, for the quality benchmark (benchmark code, not part of the package).

Every function takes gray float32 images in [0, 1] of identical shape ``(H, W)`` and returns float32 ``(H, W)``
in [0, 1] (the cascade returns three such images).

Fusion rules (applied to already restored, or pseudo-inverse, sources ``a`` and ``b``):

==================================  ===================================================================
:func:`fuse_average`                pixel mean
:func:`fuse_max_abs`                per pixel, the source whose deviation from its own global mean is larger
:func:`fuse_laplacian_pyramid`      Burt-Adelson Laplacian pyramid; details by max-abs, base averaged
:func:`fuse_gff`                    Guided Filtering Fusion (Li, Kang, Hu, IEEE TIP 2013)
==================================  ===================================================================

"Restore then fuse" cascade with KNOWN degradation parameters (:func:`cascade`): per source
:func:`denoise` (BM3D, PyPI ``bm3d``; scikit-image non-local means when it is missing) on the sensor grid ->
:func:`upsample_bicubic` (cubic spline, half-pixel aligned with ``r x r`` average pooling) ->
:func:`deblur` (Richardson-Lucy with the known Gaussian PSF) -> :func:`fuse_gff`. Note: the ``bm3d`` package
(and its ``bm4d`` dependency) is licensed "free for non-commercial use" only, unlike mmfuse (MIT); it is an
optional benchmark dependency (``pip install mmfuse[bench]``).

Run ``OMP_NUM_THREADS=1 python bench/alternatives.py`` for a self-check (timings + PSNR on camera crops).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

try:  # BM3D (Makinen, Azzari, Foi 2020 implementation); free for non-commercial use only
    import bm3d as _bm3d
except ImportError:  # pragma: no cover - depends on the environment
    _bm3d = None

DENOISER = "bm3d" if _bm3d is not None else "nl_means"


def _out(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two gray images of identical shape (H, W), got {a.shape} and {b.shape}")
    return a, b


# --------------------------------------------------------------------------------------------------------------
# Fusion rules
# --------------------------------------------------------------------------------------------------------------


def fuse_average(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixel-wise mean ``(a + b) / 2``."""
    a, b = _check_pair(a, b)
    return _out(0.5 * (a + b))


def fuse_max_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spatial-domain "choose max absolute": per pixel, keep the value of the source with the larger
    ``|x - mean(x)|`` (deviation from that source's global mean); ties go to ``a``.

    The classical rule works on transform coefficients (see :func:`fuse_laplacian_pyramid` for that use); in the
    pixel domain, taking the raw max of intensities would just favour the brighter modality, so the activity is
    measured as the deviation from each image's mean, and the original (not mean-subtracted) value is kept.
    """
    a, b = _check_pair(a, b)
    take_a = np.abs(a - a.mean()) >= np.abs(b - b.mean())
    return _out(np.where(take_a, a, b))


_BURT_ADELSON = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # a = 0.375 generating kernel


def _reduce(x: np.ndarray) -> np.ndarray:
    """Blur with the separable 5-tap kernel (half-sample reflect borders), keep even rows/columns."""
    y = ndimage.correlate1d(x, _BURT_ADELSON, axis=0, mode="reflect")
    y = ndimage.correlate1d(y, _BURT_ADELSON, axis=1, mode="reflect")
    return y[::2, ::2]


def _expand1d(z: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Burt-Adelson EXPAND along ``axis`` to length ``n``, in polyphase form (zero insertion + 2 * kernel):
    even output ``2i = (z[i-1] + 6 z[i] + z[i+1]) / 8``, odd output ``2i+1 = (z[i] + z[i+1]) / 2``.
    The coarse signal is mirror-padded (whole-sample), so a constant expands to the same constant."""
    z = np.moveaxis(z, axis, 0)
    m = z.shape[0]
    zp = np.pad(z, [(1, 1)] + [(0, 0)] * (z.ndim - 1), mode="reflect" if m > 1 else "edge")
    out = np.empty((2 * m,) + z.shape[1:], dtype=z.dtype)
    out[0::2] = (zp[:-2] + 6.0 * zp[1:-1] + zp[2:]) / 8.0
    out[1::2] = 0.5 * (zp[1:-1] + zp[2:])
    return np.moveaxis(out[:n], 0, axis)


def _expand(z: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return _expand1d(_expand1d(z, shape[0], 0), shape[1], 1)


def laplacian_pyramid(x: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` band-pass images (finest first) followed by the low-pass residual; exact reconstruction by
    :func:`reconstruct_laplacian_pyramid`."""
    pyr = []
    g = np.asarray(x, dtype=np.float64)
    for _ in range(levels):
        coarse = _reduce(g)
        pyr.append(g - _expand(coarse, g.shape))
        g = coarse
    pyr.append(g)
    return pyr


def reconstruct_laplacian_pyramid(pyr: list[np.ndarray]) -> np.ndarray:
    g = pyr[-1]
    for band in reversed(pyr[:-1]):
        g = band + _expand(g, band.shape)
    return g


def fuse_laplacian_pyramid(a: np.ndarray, b: np.ndarray, levels: int = 4) -> np.ndarray:
    """Laplacian-pyramid fusion (Burt & Adelson, IEEE Trans. Commun. 1983; fusion rule as in Burt & Kolczynski,
    ICCV 1993, without the match measure).

    Gaussian 5-tap generating kernel ``[1, 4, 6, 4, 1] / 16``, reflect borders; ``levels`` band-pass levels
    (reduced so that the coarsest image keeps at least 8 pixels a side). Band-pass coefficients: choose max
    absolute (ties to ``a``); low-pass residual: average. Reconstruct by EXPAND + add.
    """
    a, b = _check_pair(a, b)
    levels = max(0, min(int(levels), int(math.floor(math.log2(max(min(a.shape) / 8.0, 1.0))))))
    pa, pb = laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)
    fused = [np.where(np.abs(la) >= np.abs(lb), la, lb) for la, lb in zip(pa[:-1], pb[:-1])]
    fused.append(0.5 * (pa[-1] + pb[-1]))
    return _out(reconstruct_laplacian_pyramid(fused))


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the ``(2r+1) x (2r+1)`` window clipped to the image (He et al.'s normalised box filter)."""
    size = 2 * r + 1
    s = ndimage.uniform_filter(x, size=size, mode="constant")
    n = np.outer(
        ndimage.uniform_filter1d(np.ones(x.shape[0]), size, mode="constant"),
        ndimage.uniform_filter1d(np.ones(x.shape[1]), size, mode="constant"),
    )
    return s / n


def guided_filter(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Gray-guide guided filter (He, Sun, Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013).

    ``q = mean_a * I + mean_b`` with ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a mean(I)``, all means
    over ``(2r+1)^2`` windows clipped at the borders (:func:`box_mean`). Float64 throughout (``eps`` can be 1e-6).
    """
    i = np.asarray(guide, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    mean_i, mean_p = box_mean(i, r), box_mean(p, r)
    cov_ip = box_mean(i * p, r) - mean_i * mean_p
    var_i = box_mean(i * i, r) - mean_i * mean_i
    coef_a = cov_ip / (var_i + eps)
    coef_b = mean_p - coef_a * mean_i
    return box_mean(coef_a, r) * i + box_mean(coef_b, r)


_LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])  # MATLAB fspecial('laplacian', 0)


def fuse_gff(
    a: np.ndarray,
    b: np.ndarray,
    avg_size: int = 31,
    r_g: int = 5,
    sigma_g: float = 5.0,
    r1: int = 45,
    eps1: float = 0.3,
    r2: int = 7,
    eps2: float = 1e-6,
) -> np.ndarray:
    """Guided Filtering Fusion: S. Li, X. Kang, J. Hu, "Image Fusion with Guided Filtering", IEEE TIP 22(7),
    2864-2875, 2013.

    1. Two-scale decomposition: base ``B_n = I_n * Z`` (``avg_size x avg_size`` average filter, 31), detail
       ``D_n = I_n - B_n``.
    2. Saliency ``S_n = |I_n * L| * g`` (3x3 Laplacian, Gaussian low-pass of size ``2 r_g + 1`` = 11, std
       ``sigma_g`` = 5); binary weight maps ``P_n = [S_n == max_k S_k]`` (ties to the first source).
    3. Weight refinement by guided filtering with the source as guide: ``W_n^B = G_{r1, eps1}(P_n, I_n)``
       (45, 0.3), ``W_n^D = G_{r2, eps2}(P_n, I_n)`` (7, 1e-6), each clipped to [0, 1] and normalised to sum
       to one over ``n`` (as in the authors' code).
    4. ``F = sum_n W_n^B B_n + sum_n W_n^D D_n``.

    Borders: replicate for the average/Laplacian/Gaussian filters (as the authors' code), clipped windows in
    the guided filter (as He et al.'s ``boxfilter``).
    """
    a, b = _check_pair(a, b)
    sources = (a, b)
    bases = [ndimage.uniform_filter(x, size=avg_size, mode="nearest") for x in sources]
    details = [x - base for x, base in zip(sources, bases)]
    saliency = [
        ndimage.gaussian_filter(
            np.abs(ndimage.correlate(x, _LAPLACIAN, mode="nearest")), sigma_g, mode="nearest", radius=r_g
        )
        for x in sources
    ]
    p_a = (saliency[0] >= saliency[1]).astype(np.float64)
    masks = (p_a, 1.0 - p_a)

    def weights(r: int, eps: float) -> list[np.ndarray]:
        # as the authors' MATLAB code: clip to [0, 1] (it does so via uint8, which also quantises to 1/255 --
        # not reproduced), add 1e-12, normalise
        w = [np.clip(guided_filter(x, p, r, eps), 0.0, 1.0) + 1e-12 for x, p in zip(sources, masks)]
        total = w[0] + w[1]
        return [wi / total for wi in w]

    wb = weights(r1, eps1)
    wd = weights(r2, eps2)
    fused = wb[0] * bases[0] + wb[1] * bases[1] + wd[0] * details[0] + wd[1] * details[1]
    return _out(fused)


FUSION_RULES = {
    "average": fuse_average,
    "max_abs": fuse_max_abs,
    "laplacian_pyramid": fuse_laplacian_pyramid,
    "gff": fuse_gff,
}


# --------------------------------------------------------------------------------------------------------------
# Restoration with known degradation parameters
# --------------------------------------------------------------------------------------------------------------


def denoise(y: np.ndarray, sigma: float) -> np.ndarray:
    """Denoise white Gaussian noise of known std ``sigma`` ([0, 1] units); ``y`` unchanged when ``sigma == 0``.

    BM3D (Dabov, Foi, Katkovnik, Egiazarian, IEEE TIP 2007) through PyPI ``bm3d`` (Makinen, Azzari, Foi 2020,
    default ``"np"`` profile, both stages) when it is importable; otherwise scikit-image non-local means
    (Buades, Coll, Morel 2005) with ``h = 0.8 sigma``, ``sigma`` given, fast mode, 5x5 patches, 13x13 search
    (distance 6). Module constant :data:`DENOISER` says which one is in use.
    """
    y = np.asarray(y, dtype=np.float32)
    if sigma <= 0:
        return y.copy()
    if _bm3d is not None:
        return _out(_bm3d.bm3d(y.astype(np.float64), sigma_psd=float(sigma)))
    from skimage.restoration import denoise_nl_means

    return _out(
        denoise_nl_means(
            y.astype(np.float64), h=0.8 * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6
        )
    )


def upsample_bicubic(y: np.ndarray, r: int) -> np.ndarray:
    """Cubic-spline interpolation to ``(H r, W r)``, aligned with ``r x r`` average pooling.

    Low-res pixel ``i`` covers high-res pixels ``[i r, (i+1) r)``, so its sample sits at high-res coordinate
    ``i r + (r - 1) / 2``; equivalently high-res pixel ``j`` reads low-res coordinate ``(j + 0.5) / r - 0.5``.
    That is ``scipy.ndimage.zoom(..., grid_mode=True)`` (pixel-area convention, the same as
    ``skimage.transform.resize``), with half-sample symmetric borders. ``order=3`` is the interpolating cubic
    B-spline (spline prefilter on), the usual "bicubic" of scientific Python.
    """
    y = np.asarray(y, dtype=np.float64)
    r = int(r)
    if r == 1:
        return _out(y)
    return _out(ndimage.zoom(y, r, order=3, mode="grid-mirror", grid_mode=True))


def gaussian_psf(std: float) -> np.ndarray:
    """2-D Gaussian PSF with the taps of :func:`mmfuse_cli.operators.gaussian_kernel1d` (radius ``ceil(3 std)``)."""
    radius = max(1, math.ceil(3.0 * std))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / std) ** 2)
    k /= k.sum()
    return np.outer(k, k)


def _box_taps(r: int) -> np.ndarray:
    """Centred discrete box of width ``r`` (odd ``r``: ``r`` equal taps; even: ``r + 1`` taps, half-weight ends)."""
    if r % 2:
        return np.full(r, 1.0 / r)
    k = np.ones(r + 1)
    k[0] = k[-1] = 0.5
    return k / r


def deblur(x: np.ndarray, blur_std: float, iterations: int = 15, pool: int = 1) -> np.ndarray:
    """Richardson-Lucy deconvolution (Richardson 1972; Lucy 1974) with the known Gaussian PSF, through
    ``skimage.restoration.richardson_lucy`` (``clip=True``, flat 0.5 start, ``iterations`` steps).

    ``pool > 1`` also folds a centred ``pool``-wide box into the PSF: an image that was ``pool x pool``
    average-pooled and then interpolated back (:func:`upsample_bicubic`) carries that box blur too. Returns ``x``
    unchanged when there is nothing to deconvolve (``blur_std == 0`` and ``pool == 1``). The image is
    reflect-padded by the PSF size before deconvolution (skimage convolves with zero borders) and cropped back.
    """
    x = np.asarray(x, dtype=np.float64)
    pool = int(pool)
    if blur_std <= 0 and pool <= 1:
        return _out(x)
    from skimage.restoration import richardson_lucy

    psf = gaussian_psf(blur_std) if blur_std > 0 else np.ones((1, 1))
    if pool > 1:
        psf = ndimage.convolve(
            np.pad(psf, pool // 2 + 1), np.outer(_box_taps(pool), _box_taps(pool)), mode="constant"
        )
        psf = psf[np.any(psf > 0, axis=1)][:, np.any(psf > 0, axis=0)]
        psf /= psf.sum()
    pad = 2 * max(psf.shape)
    mode = "reflect" if min(x.shape) > pad else "symmetric"
    xp = np.pad(np.clip(x, 0.0, 1.0), pad, mode=mode)
    out = richardson_lucy(xp, psf, num_iter=int(iterations), clip=True)
    return _out(out[pad:-pad, pad:-pad])


def _degradation_fields(deg: Any) -> tuple[float, int, float]:
    if isinstance(deg, Mapping):
        return float(deg.get("blur", 0.0)), int(deg.get("scale", 1)), float(deg.get("noise", 0.0))
    return float(deg.blur), int(deg.scale), float(deg.noise)


def restore(y: np.ndarray, deg: Any, iterations: int = 15, deblur_pool: bool = True) -> np.ndarray:
    """Classical restoration of one observation with known ``deg`` (``blur``, ``scale``, ``noise``; mapping or
    object such as :class:`mmfuse_cli.operators.Degradation`): :func:`denoise` on the sensor grid ->
    :func:`upsample_bicubic` (``scale > 1``) -> :func:`deblur` (Richardson-Lucy, ``blur`` std on the high-res
    grid; with ``deblur_pool`` the pooling box is part of the PSF, see :func:`deblur`)."""
    blur, scale, noise = _degradation_fields(deg)
    x = denoise(y, noise)
    if scale > 1:
        x = upsample_bicubic(x, scale)
    return deblur(x, blur, iterations=iterations, pool=scale if deblur_pool else 1)


def cascade(
    y_a: np.ndarray, deg_a: Any, y_b: np.ndarray, deg_b: Any, iterations: int = 15, deblur_pool: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ "Restore then fuse": :func:`restore` each observation with its known degradation, then :func:`fuse_gff`.

    ``y_a``/``y_b`` are on their sensor grids (``(H / scale, W / scale)``); both must restore to the same
    ``(H, W)``. Returns ``(fused, restored_a, restored_b)``.
    """
    ra = restore(y_a, deg_a, iterations, deblur_pool)
    rb = restore(y_b, deg_b, iterations, deblur_pool)
    if ra.shape != rb.shape:
        raise ValueError(f"restored sources differ in shape: {ra.shape} vs {rb.shape}")
    return fuse_gff(ra, rb), ra, rb


# --------------------------------------------------------------------------------------------------------------
# Self-check
# --------------------------------------------------------------------------------------------------------------


def _psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(ref, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _timed(fn, *args, repeat: int = 1, **kwargs):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t)
    return out, best


def _self_check() -> None:  # pragma: no cover - manual benchmark
    import torch
    from skimage import data

    from mmfuse_cli.degradation.spec import Degradation
    from mmfuse_cli.degradation.synth import degrade_tensor

    cam = data.camera().astype(np.float32) / 255.0  # 512 x 512
    big = np.pad(cam, ((0, 0), (64, 64)), mode="reflect")[16:496]  # 480 x 640 for timings
    other = np.ascontiguousarray(big[::-1, ::-1])  # a second, differently structured source
    gen = torch.Generator().manual_seed(0)

    def degrade(x: np.ndarray, deg: Degradation) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x))[None, None]
        return degrade_tensor(t, deg, generator=gen)[0, 0].numpy()

    print(f"denoiser: {DENOISER}")
    print("\nfusion rules on a 480x640 pair (camera, camera rotated 180 deg), best of 3:")
    for name, fn in FUSION_RULES.items():
        f, dt = _timed(fn, big, other, repeat=3)
        print(f"  {name:18s} {dt * 1e3:7.1f} ms  range [{f.min():.3f}, {f.max():.3f}]  dtype {f.dtype}")

    # The two-focus test: blur complementary halves; a good rule recovers the sharp image.
    crop = cam[128:384, 128:384]
    soft = ndimage.gaussian_filter(crop, 2.0, mode="reflect")
    left = np.zeros_like(crop, dtype=bool)
    left[:, :128] = True
    fa, fb = np.where(left, crop, soft), np.where(left, soft, crop)
    print("\nmulti-focus sanity (256x256 camera crop, halves blurred with std 2): PSNR of fused vs sharp")
    print(f"  {'input a':18s} {_psnr(fa, crop):6.2f} dB")
    for name, fn in FUSION_RULES.items():
        print(f"  {name:18s} {_psnr(fn(fa, fb), crop):6.2f} dB")

    print(
        "\nbicubic alignment (camera 512x512, average-pool r, upsample): PSNR vs original for sub-pixel shifts"
    )
    smooth = ndimage.gaussian_filter(cam.astype(np.float64), 1.0)
    for r in (2, 3, 4):
        n = 512 // r * r
        s = smooth[:n, :n]
        low = s.reshape(n // r, r, n // r, r).mean(axis=(1, 3))
        up = upsample_bicubic(low.astype(np.float32), r).astype(np.float64)
        inner = (slice(8, -8), slice(8, -8))
        row = []
        for shift in (-0.5, -0.25, 0.0, 0.25, 0.5):
            ref = ndimage.shift(s, (shift, shift), order=3, mode="reflect")
            row.append(f"{shift:+.2f}: {_psnr(up[inner], ref[inner]):5.2f}")
        # least-squares sub-pixel shift d with up ~ s(. - d) ~ s - d grad(s), per axis
        gy, gx = (g[inner] for g in np.gradient(s))
        err = (s - up)[inner]
        dy, dx = float(np.sum(err * gy) / np.sum(gy * gy)), float(np.sum(err * gx) / np.sum(gx * gx))
        print(f"  r={r}  " + "  ".join(row) + f"   fitted shift (y, x) = ({dy:+.3f}, {dx:+.3f}) px")

    print(
        "\ncascade restoration on 256x256 camera crops (PSNR vs clean; 'input' = degraded, replicate-upsampled)"
    )
    cases = {
        "noise 0.05": Degradation(noise=0.05),
        "blur 1.5": Degradation(blur=1.5),
        "blur 1.5 + x2 + noise 0.05": Degradation(blur=1.5, scale=2, noise=0.05),
        "x4": Degradation(scale=4),
    }
    for label, deg in cases.items():
        y = degrade(crop, deg)
        y_up = np.repeat(np.repeat(y, deg.scale, 0), deg.scale, 1)
        x, dt = _timed(restore, y, deg)
        extra = ""
        if deg.scale > 1:
            x_nobox = restore(y, deg, deblur_pool=False)
            extra = f"  (Gaussian-only RL PSF {_psnr(x_nobox, crop):5.2f})"
        print(
            f"  {label:28s} input {_psnr(y_up, crop):5.2f} dB -> restored {_psnr(x, crop):5.2f} dB{extra}  [{dt:.2f} s]"
        )

    print("\ncascade on a 480x640 pair (a: blur 1.5 + x2 + noise 0.05, b: noise 0.05):")
    deg_a, deg_b = Degradation(blur=1.5, scale=2, noise=0.05), Degradation(noise=0.05)
    ya, yb = degrade(big, deg_a), degrade(other, deg_b)
    (fused, ra, rb), dt = _timed(cascade, ya, deg_a, yb, deg_b)
    print(
        f"  time {dt:.1f} s per pair;  restored a {_psnr(ra, big):5.2f} dB, restored b {_psnr(rb, other):5.2f} dB;"
        f"  fused {fused.shape} {fused.dtype}"
    )


if __name__ == "__main__":
    _self_check()

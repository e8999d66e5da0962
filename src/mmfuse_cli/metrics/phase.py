"""Q_P, Zhao et al.'s phase-congruency metric, on LIU's ``myphasecong3`` (a modified Kovesi phasecong3).

``phasepack.phasecong`` is a port of Kovesi's newer code (5 scales, different angular spreading and outputs),
so the phase congruency is re-implemented here from LIU's version: log-Gabor filters built in the frequency
domain, all convolutions done with FFTs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from mmfuse_cli.metrics._base import check_images, filter_sep, gaussian_1d, to255

_EPSILON = 1e-4


@dataclass(frozen=True)
class PhaseCongruency:
    """Outputs of :func:`phase_congruency`, each (H, W) float64.

    Attributes:
        pc: total weighted energy / total amplitude (LIU's ``phaseCongruency``), in [0, 1].
        M: maximum moment of the orientation covariance (edge strength).
        m: minimum moment (corner strength).
    """

    pc: np.ndarray
    M: np.ndarray
    m: np.ndarray


def _centred_range(n: int) -> np.ndarray:
    if n % 2:
        return (np.arange(n) - (n - 1) / 2) / (n - 1)
    return (np.arange(n) - n / 2) / n


def _lowpass(rows: int, cols: int, cutoff: float = 0.45, order: int = 15) -> np.ndarray:
    """Kovesi's ``lowpassfilter``: Butterworth on a grid centred at ``fix(n/2)+1``, then ``fftshift`` (sic)."""
    x = (np.arange(1, cols + 1) - (cols // 2 + 1)) / cols
    y = (np.arange(1, rows + 1) - (rows // 2 + 1)) / rows
    radius = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2)
    return np.fft.fftshift(1.0 / (1.0 + (radius / cutoff) ** (2 * order)))


def _filters(
    shape: tuple[int, int],
    nscale: int,
    norient: int,
    min_wavelength: float,
    mult: float,
    sigma_onf: float,
    d_theta_on_sigma: float,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Radial (log-Gabor x low-pass) and angular filter components, DC at index [0, 0]."""
    rows, cols = shape
    x, y = np.meshgrid(_centred_range(cols), _centred_range(rows))
    radius = np.sqrt(x * x + y * y)
    radius[rows // 2, cols // 2] = 1.0  # avoid log(0) at the centre
    theta = np.arctan2(-y, x)
    radius = np.fft.ifftshift(radius)
    theta = np.fft.ifftshift(theta)
    sin_t, cos_t = np.sin(theta), np.cos(theta)
    lp = _lowpass(rows, cols)
    radial = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult**s)
        lg = np.exp(-(np.log(radius / fo) ** 2) / (2 * np.log(sigma_onf) ** 2)) * lp
        lg[0, 0] = 0.0
        radial.append(lg)
    theta_sigma = np.pi / norient / d_theta_on_sigma
    angular = []
    for o in range(norient):
        angl = o * np.pi / norient
        ds = sin_t * np.cos(angl) - cos_t * np.sin(angl)
        dc = cos_t * np.cos(angl) + sin_t * np.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        angular.append(np.exp(-(dtheta**2) / (2 * theta_sigma**2)))
    return radial, angular


@lru_cache(maxsize=8)
def _noise_sums(shape: tuple[int, int], params: tuple) -> tuple[tuple[float, float, float], ...]:
    """Per orientation: (EM_n, sum of squared spatial filters, sum of cross products) - image independent."""
    radial, angular = _filters(shape, *params)
    rows, cols = shape
    out = []
    for spread in angular:
        spatial = [np.real(sfft.ifft2(lg * spread, workers=1)) * np.sqrt(rows * cols) for lg in radial]
        em_n = float(np.sum((radial[0] * spread) ** 2))
        sum_an2 = float(sum(np.sum(f * f) for f in spatial))
        sum_aiaj = float(
            sum(
                np.sum(spatial[i] * spatial[j])
                for i in range(len(spatial))
                for j in range(i + 1, len(spatial))
            )
        )
        out.append((em_n, sum_an2, sum_aiaj))
    return tuple(out)


def phase_congruency(
    img: np.ndarray,
    nscale: int = 4,
    norient: int = 6,
    min_wavelength: float = 3.0,
    mult: float = 2.1,
    sigma_onf: float = 0.55,
    d_theta_on_sigma: float = 1.2,
    k: float = 2.0,
    cutoff: float = 0.5,
    g: float = 10.0,
) -> PhaseCongruency:
    """Phase congruency of a gray image as LIU's ``myphasecong3`` (defaults are its defaults).

    Differences from Kovesi's phasecong3 kept on purpose: frequency-spread width ``sumAn / maxAn / nscale``,
    noise threshold divided by 1.7, the noise estimate made per orientation with that orientation's filters,
    and PC = total energy / total amplitude. Where the summed amplitude is 0 (flat image) the per-orientation
    PC is taken as 0 (the reference divides 0 by 0).

    Args:
        img: 2-D float array (any scale; the result is scale invariant).
    """
    params = (nscale, norient, min_wavelength, mult, sigma_onf, d_theta_on_sigma)
    radial, angular = _filters(img.shape, *params)
    noise = _noise_sums(img.shape, params)
    image_fft = sfft.fft2(np.asarray(img, dtype=np.float64), workers=1)
    total_energy = np.zeros(img.shape)
    total_sum_an = np.zeros(img.shape)
    covx2 = np.zeros(img.shape)
    covy2 = np.zeros(img.shape)
    covxy = np.zeros(img.shape)
    for o, spread in enumerate(angular):
        angl = o * np.pi / norient
        eo = [sfft.ifft2(image_fft * (lg * spread), workers=1) for lg in radial]
        amps = [np.abs(e) for e in eo]
        sum_an = np.sum(amps, axis=0)
        max_an = np.max(amps, axis=0)
        sum_e = np.sum([e.real for e in eo], axis=0)
        sum_o = np.sum([e.imag for e in eo], axis=0)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + _EPSILON
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        energy = np.zeros(img.shape)
        for e in eo:
            energy += e.real * mean_e + e.imag * mean_o - np.abs(e.real * mean_o - e.imag * mean_e)
        em_n, sum_an2, sum_aiaj = noise[o]
        noise_power = -np.median(amps[0] ** 2) / np.log(0.5) / em_n
        tau = np.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj) / 2)
        threshold = (tau * np.sqrt(np.pi / 2) + k * np.sqrt((2 - np.pi / 2) * tau**2)) / 1.7
        energy = np.maximum(energy - threshold, 0.0)
        width = sum_an / (max_an + _EPSILON) / nscale
        weight = 1.0 / (1.0 + np.exp((cutoff - width) * g))
        total_sum_an += sum_an
        total_energy += weight * energy
        with np.errstate(divide="ignore", invalid="ignore"):
            pc_o = np.where(sum_an > 0, weight * energy / sum_an, 0.0)
        covx, covy = pc_o * np.cos(angl), pc_o * np.sin(angl)
        covx2 += covx * covx
        covy2 += covy * covy
        covxy += covx * covy
    covx2 /= norient / 2
    covy2 /= norient / 2
    covxy /= norient
    denom = np.sqrt(covxy**2 + (covx2 - covy2) ** 2) + _EPSILON
    return PhaseCongruency(
        pc=total_energy / (total_sum_an + _EPSILON),
        M=(covy2 + covx2 + denom) / 2,
        m=(covy2 + covx2 - denom) / 2,
    )


_G11 = gaussian_1d(11, 1.5)


def _feature_score(fa, fb, fmax, ff, mask_a, mask_b, mask_max) -> float:
    """Zhao's masked local correlation of one feature map (LIU ``correlation_coeffcient``)."""
    c = 1e-4
    maps = []
    mu_f = filter_sep(ff, _G11)
    var_f = filter_sep(ff * ff, _G11) - mu_f * mu_f
    for feat, mask in ((fa, mask_a), (fb, mask_b), (fmax, mask_max)):
        x = mask * feat
        mu = filter_sep(x, _G11)
        var = filter_sep(x * x, _G11) - mu * mu
        cov = filter_sep(x * ff, _G11) - mu * mu_f
        score = np.zeros_like(x)
        score[mask] = (cov[mask] + c) / (np.sqrt(np.abs(var[mask] * var_f[mask])) + c)
        maps.append(score)
    count = int(mask_max.sum())
    return float(np.max(maps, axis=0).sum() / count) if count else float("nan")


def q_p(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Q_P, Zhao et al.'s phase-congruency metric (LIU ``metricZhao``). Range about [0, 1]; higher is better.

    Phase congruency PC and its max / min moments M, m of A, B, F (LIU's myphasecong3 defaults: 4 scales,
    6 orientations); masks ``PC > 0.1``; the "max" maps take A's features where ``PC_A > PC_B``, else B's. For each
    feature, ``c_X = (sigma_XF + C) / (sqrt(|sigma_X^2 sigma_F^2|) + C)`` with an 11x11 Gaussian (sigma 1.5),
    zero-padded 'same' filtering, C = 1e-4, inside the mask; per-pixel max of (c_A, c_B, c_max) summed and
    divided by the size of the max mask. ``Q_P = P_pc * P_M * P_m``. Raw 0..255 images. About 1 s per
    640 x 480 pair (72 FFTs).
    """
    check_images(fused, a, b)
    pa, pb, pf = (phase_congruency(to255(x)) for x in (a, b, fused))
    take_a = pa.pc > pb.pc
    mask_a, mask_b = pa.pc > 0.1, pb.pc > 0.1
    pc_max = np.where(take_a, pa.pc, pb.pc)
    mask_max = pc_max > 0.1
    result = 1.0
    for feat in ("pc", "M", "m"):
        fa, fb, ff = getattr(pa, feat), getattr(pb, feat), getattr(pf, feat)
        result *= _feature_score(fa, fb, np.where(take_a, fa, fb), ff, mask_a, mask_b, mask_max)
    return float(result)

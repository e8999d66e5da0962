"""Edge-preservation metrics built on Sobel gradients: Qabf (Xydeas-Petrovic), Nabf (Kumar's artefacts),
Q_G (LIU's metricXydeas); and MATLAB's default ``edge`` detector (the feature of TANG's FMI).

The three toolboxes use three different Sobel set-ups (convolution vs correlation, zero vs mirror padding,
scaled kernels); each is reproduced exactly with separable 1-D passes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mmfuse_cli.metrics._base import check_convention, check_images, to255

_SMOOTH = np.array([1.0, 2.0, 1.0])
_DIFF = np.array([-1.0, 0.0, 1.0])  # correlation kernel: x[j+1] - x[j-1]


def _corr(img: np.ndarray, k_rows: np.ndarray, k_cols: np.ndarray, mode: str) -> np.ndarray:
    out = ndimage.correlate1d(img, k_rows, axis=0, mode=mode, cval=0.0)
    return ndimage.correlate1d(out, k_cols, axis=1, mode=mode, cval=0.0)


# --- Qabf ---------------------------------------------------------------------------------------------------


def _qabf_sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strength and orientation as ``Qabf.m``: true 2-D convolution, zero padding, 'same' size.

    ``conv2(img, [-1 0 1; -2 0 2; -1 0 1])`` (= correlation with the flipped kernel) and
    ``conv2(img, [1 2 1; 0 0 0; -1 -2 -1])``; orientation ``arctan(sy / sx)``, ``pi/2`` where ``sx == 0``.
    """
    sx = _corr(img, _SMOOTH, -_DIFF, "constant")
    sy = _corr(img, _DIFF, _SMOOTH, "constant")
    g = np.sqrt(sx * sx + sy * sy)
    a = np.full_like(img, np.pi / 2)
    nz = sx != 0
    a[nz] = np.arctan(sy[nz] / sx[nz])
    return g, a


def _qabf_preservation(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Per-pixel edge preservation Q_XF of ``Qabf.m`` including its equal-strength quirk (G = g_F there)."""
    ratio = g_f.copy()  # where g_X == g_F the reference keeps g_F itself
    hi = g_x > g_f
    lo = g_x < g_f
    ratio[hi] = g_f[hi] / g_x[hi]
    ratio[lo] = g_x[lo] / g_f[lo]
    orient = 1.0 - np.abs(a_x - a_f) / (np.pi / 2)
    q_g = 0.9994 / (1.0 + np.exp(-15.0 * (ratio - 0.5)))
    q_a = 0.9879 / (1.0 + np.exp(-22.0 * (orient - 0.8)))
    return q_g * q_a


def qabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Qabf, Xydeas-Petrovic gradient-information preservation as in ``Qabf.m``. Range [0, 1); higher is better.

    Identical in CDD, TANG and VIFB (all three ship the same ``Qabf.m`` logic), quirks included: zero-padded
    Sobel (the image border counts as an edge), no orientation wrap-around, and ``G_XF = g_F`` where
    ``g_X == g_F``. ``Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B)``. NaN when A and B are both flat.
    Not LIU's Q_G (see :func:`q_g`).
    """
    check_images(fused, a, b)
    g_f, a_f = _qabf_sobel(to255(fused))
    num = 0.0
    den = 0.0
    for src in (a, b):
        g_x, a_x = _qabf_sobel(to255(src))
        num += float(np.sum(_qabf_preservation(g_x, a_x, g_f, a_f) * g_x))
        den += float(np.sum(g_x))
    return num / den if den > 0 else float("nan")


# --- Nabf ---------------------------------------------------------------------------------------------------


def _kumar_sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strength and orientation as Kumar's ``sobel_fn``: kernels / 8, correlation, mirror padding.

    ``gv`` with ``[-1 0 1; -2 0 2; -1 0 1] / 8``, ``gh`` with its transpose; orientation ``arctan(gv / gh)``
    (+-pi/2 where only gh is 0, 0 where both are).
    """
    gv = _corr(img, _SMOOTH / 8.0, _DIFF, "mirror")
    gh = _corr(img, _DIFF / 8.0, _SMOOTH, "mirror")
    g = np.sqrt(gv * gv + gh * gh)
    with np.errstate(divide="ignore", invalid="ignore"):
        ang = np.arctan(gv / gh)
    ang[(gv == 0) & (gh == 0)] = 0.0
    return g, ang


def _kumar_preservation(g_x, a_x, g_f, a_f) -> np.ndarray:
    both = (g_x != 0) & (g_f != 0)
    ratio = np.zeros_like(g_x)
    ratio[both] = np.minimum(g_x[both], g_f[both]) / np.maximum(g_x[both], g_f[both])
    orient = np.abs(np.abs(a_x - a_f) - np.pi / 2) * 2.0 / np.pi
    q_g = 0.9999 / (1.0 + np.exp(-19.0 * (ratio - 0.5)))
    q_a = 0.9995 / (1.0 + np.exp(-22.0 * (orient - 0.5)))
    return np.sqrt(q_g * q_a)


def _nabf_core(f255: np.ndarray, x255: np.ndarray, y255: np.ndarray) -> float:
    g_f, a_f = _kumar_sobel(f255)
    g_a, a_a = _kumar_sobel(x255)
    g_b, a_b = _kumar_sobel(y255)
    w_a = np.where(g_a >= 2.0, g_a**1.5, 0.001)
    w_b = np.where(g_b >= 2.0, g_b**1.5, 0.001)
    artefact = (g_f > g_a) & (g_f > g_b)
    q_af = _kumar_preservation(g_a, a_a, g_f, a_f)
    q_bf = _kumar_preservation(g_b, a_b, g_f, a_f)
    num = np.sum(artefact * ((1.0 - q_af) * w_a + (1.0 - q_bf) * w_b))
    return float(num / np.sum(w_a + w_b))


def nabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "cdd") -> float:
    """Nabf, fusion artefacts (Kumar's modification of Petrovic's N_AB/F). Range [0, 1]; LOWER is better.

    Edge strength g and orientation from Kumar's scaled, mirror-padded Sobel; preservation
    ``Q = sqrt(Q_g Q_a)`` with sigmoids (0.9999, 19, 0.5) and (0.9995, 22, 0.5); weights ``g^1.5`` where
    ``g >= 2`` else 0.001; artefact pixels are those where F's gradient exceeds both sources'.
    ``Nabf = sum(n ((1 - Q_AF) w_A + (1 - Q_BF) w_B)) / sum(w_A + w_B)``.

    CDD has no Nabf; the default is the definition with the correct argument order. ``convention="tang"``
    reproduces TANG's published numbers, whose caller passes (A, B, F) to a routine that takes (F, A, B), i.e.
    it scores A as if it were the fused image against the "sources" B and F.
    """
    check_images(fused, a, b)
    conv = check_convention(convention, ("cdd", "tang"), "Nabf")
    f, x, y = to255(fused), to255(a), to255(b)
    if conv == "tang":
        return _nabf_core(x, y, f)
    return _nabf_core(f, x, y)


# --- Q_G (LIU metricXydeas) ---------------------------------------------------------------------------------


def _liu_sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LIU's filter2 Sobel (correlation, zero padding): x with [-1 0 1; -2 0 2; -1 0 1], y with its transpose."""
    x = _corr(img, _SMOOTH, _DIFF, "constant")
    y = _corr(img, _DIFF, _SMOOTH, "constant")
    g = np.sqrt(x * x + y * y)
    x = x + (x == 0) * 1e-5
    return g, np.arctan(y / x), x


def q_g(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Q_G, LIU's ``metricXydeas`` (Xydeas & Petrovic as implemented by Liu et al.). Range [0, 1]; higher better.

    Differs from :func:`qabf`: correlation Sobel; orientation modulo pi (``||a_X - a_F| - pi/2| 2/pi``);
    sigmoids ``1/(1+exp(-10(G-0.5)))`` and ``1/(1+exp(-20(A-0.75)))``; zero strengths replaced by 1e-5 in the
    same order as the reference; and the pixel-wise normalised mean ``mean((Q_AF w_A + Q_BF w_B)/(w_A + w_B))``
    instead of a ratio of sums. Raw images (no normalisation).
    """
    check_images(fused, a, b)
    g_f, a_f, _ = _liu_sobel(to255(fused))
    g_a, a_a, _ = _liu_sobel(to255(a))
    g_b, a_b, _ = _liu_sobel(to255(b))
    # source A: bimap before any fix; g_A fixed before the first ratio, g_F fixed before the second
    above = g_a > g_f
    g_a = g_a + (g_a == 0) * 1e-5
    r1 = g_f / g_a
    g_f = g_f + (g_f == 0) * 1e-5
    r_af = np.where(above, r1, g_a / g_f)
    # source B: g_F is already fixed here
    above = g_b > g_f
    g_b = g_b + (g_b == 0) * 1e-5
    r_bf = np.where(above, g_f / g_b, g_b / g_f)
    q_af = _liu_q(r_af, a_a, a_f)
    q_bf = _liu_q(r_bf, a_b, a_f)
    return float(np.mean((q_af * g_a + q_bf * g_b) / (g_a + g_b)))


def _liu_q(ratio: np.ndarray, a_x: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    orient = np.abs(np.abs(a_x - a_f) - np.pi / 2) * 2.0 / np.pi
    return 1.0 / (1.0 + np.exp(-10.0 * (ratio - 0.5))) / (1.0 + np.exp(-20.0 * (orient - 0.75)))


# --- MATLAB edge(I): Sobel, automatic threshold, thinning ------------------------------------------------------


def matlab_sobel_edges(img: np.ndarray) -> np.ndarray:
    """Binary edge map of MATLAB's ``edge(I)`` with its defaults (method 'sobel', automatic threshold, thinning).

    ``bx``, ``by``: correlation with ``fspecial('sobel')' / 8`` and ``fspecial('sobel') / 8``, replicate padding;
    ``b = bx^2 + by^2``; cutoff ``4 mean(b)``; a pixel is an edge when ``b > cutoff`` and it is a local maximum
    of b across the dominant gradient direction (horizontal: ``b(r,c-1) <= b(r,c) > b(r,c+1)`` where
    ``|bx| >= |by|``; vertical likewise), neighbours outside the image counting as passed - the logic of
    MathWorks' portable ``computeEdgesWithThinning``. Scale invariant.

    Args:
        img: 2-D float array (any scale).

    Returns:
        float64 array of 0.0 / 1.0 (MATLAB's logical map as ``double``).
    """
    img = np.asarray(img, dtype=np.float64)
    bx = _corr(img, _SMOOTH / 8.0, -_DIFF, "nearest")
    by = _corr(img, -_DIFF / 8.0, _SMOOTH, "nearest")
    b = bx * bx + by * by
    cutoff = 4.0 * b.mean()
    bx, by = np.abs(bx), np.abs(by)
    left = np.ones_like(b, dtype=bool)
    left[:, 1:] = b[:, :-1] <= b[:, 1:]
    right = np.ones_like(b, dtype=bool)
    right[:, :-1] = b[:, :-1] > b[:, 1:]
    up = np.ones_like(b, dtype=bool)
    up[1:, :] = b[:-1, :] <= b[1:, :]
    down = np.ones_like(b, dtype=bool)
    down[:-1, :] = b[:-1, :] > b[1:, :]
    tol = 100 * np.finfo(np.float64).eps
    edges = (b > cutoff) & (((bx >= by - tol) & left & right) | ((by >= bx - tol) & up & down))
    return edges.astype(np.float64)

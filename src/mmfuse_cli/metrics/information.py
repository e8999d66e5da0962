"""Information-theoretic metrics of F against A, B: MI, Q_MI (normalised MI), Q_NCIE, FMI_pixel.

All histogram metrics use 256 x 256 joint histograms of integer gray levels, built with one ``bincount``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mmfuse_cli.metrics._base import check_convention, check_images, gray_levels, normalize1, to255, too_small


def joint_histogram(x_levels: np.ndarray, y_levels: np.ndarray) -> np.ndarray:
    """Joint probability table ``p[i, j]`` (256 x 256, sums to 1) of two integer images with levels 0..255."""
    counts = np.bincount((x_levels.ravel() * 256 + y_levels.ravel()), minlength=65536)
    return counts.reshape(256, 256) / x_levels.size


def _entropy(p: np.ndarray, log) -> float:
    q = p[p > 0]
    return float(-np.sum(q * log(q)))


def _mi_parts(x_levels: np.ndarray, y_levels: np.ndarray, log=np.log2) -> tuple[float, float, float]:
    """``(I(X;Y), H(X), H(Y))`` from the joint histogram, in the unit of ``log``."""
    h = joint_histogram(x_levels, y_levels)
    hx, hy = _entropy(h.sum(axis=1), log), _entropy(h.sum(axis=0), log)
    return hx + hy - _entropy(h, log), hx, hy


def mi(fused: np.ndarray, a: np.ndarray, b: np.ndarray, convention: str = "cdd") -> float:
    """MI, mutual information ``I(F;A) + I(F;B)`` from 256-bin joint histograms. Higher is better.

    * ``cdd``: integer levels ``round(255 x)``, natural log (nats; = sklearn ``mutual_info_score``).
      Range [0, 2 ln 256 = 11.09].
    * ``tang``: the same in bits (= cdd / ln 2). Range [0, 16].
    * ``vifb``: each image first min-max stretched to 0..255 and rounded (MATLAB rounding), nats.
    """
    check_images(fused, a, b)
    conv = check_convention(convention, ("cdd", "tang", "vifb"), "MI")
    log = np.log2 if conv == "tang" else np.log
    if conv == "vifb":
        lf, la, lb = (normalize1(to255(x)).astype(np.intp) for x in (fused, a, b))
    else:
        lf, la, lb = (gray_levels(x) for x in (fused, a, b))
    return _mi_parts(lf, la, log)[0] + _mi_parts(lf, lb, log)[0]


def q_mi(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Q_MI, normalised mutual information of Hossny et al. (LIU ``metricMI(., 1)``, MEFB "NMI").

    ``2 [I(A,F) / (H(A) + H(F)) + I(B,F) / (H(B) + H(F))]`` on LIU-normalised images (min-max stretched to
    0..255 and rounded), 256 bins, log2. Range [0, 2]; higher is better. Each term equals sklearn's
    ``normalized_mutual_info_score(average_method='arithmetic')``. Not skimage's Studholme NMI.
    """
    check_images(fused, a, b)
    lf, la, lb = (normalize1(to255(x)).astype(np.intp) for x in (fused, a, b))
    total = 0.0
    for ls in (la, lb):
        i, hs, hf = _mi_parts(ls, lf)
        total += 0.0 if hs + hf == 0 else i / (hs + hf)
    return 2.0 * total


def q_ncie(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Q_NCIE, nonlinear correlation information entropy of Wang (LIU ``metricWang``). Higher is better.

    LIU-normalised images; ``NCC(X,Y) = I(X;Y) / log2(256)`` (bits / 8); R = 3 x 3 matrix with ones on the
    diagonal and NCC(A,B), NCC(A,F), NCC(B,F) off it; eigenvalues ``l``;
    ``Q_NCIE = 1 + sum (l/3) log_256(l/3)`` (base 256, as LIU; an ad-hoc base-3 port gives other numbers).
    Range about [0.80, 1] (1 when all three images are identical and span all 256 levels). Non-positive
    eigenvalues contribute 0 (LIU would return NaN / complex there).
    """
    check_images(fused, a, b)
    lf, la, lb = (normalize1(to255(x)).astype(np.intp) for x in (fused, a, b))
    n_ab = _mi_parts(la, lb)[0] / 8.0
    n_af = _mi_parts(la, lf)[0] / 8.0
    n_bf = _mi_parts(lb, lf)[0] / 8.0
    r = np.array([[1.0, n_ab, n_af], [n_ab, 1.0, n_bf], [n_af, n_bf, 1.0]])
    eig = np.linalg.eigvalsh(r)
    eig = eig[eig > 0] / 3.0
    hr = -np.sum(eig * np.log2(eig)) / 8.0
    return float(1.0 - hr)


# --- FMI (Haghighat's fast FMI, TANG's analysis_fmi, feature 'none') ----------------------------------------

_FMI_CHUNK = 8192  # windows per vectorised block (bounded memory: ~8192 x 81 float64 arrays)
_POS = np.arange(1, 10, dtype=np.float64)  # MATLAB positions 1..9 of the window's column-major vector


def _windows(img: np.ndarray) -> np.ndarray:
    """All 3x3 windows as rows of 9 values in MATLAB column-major order (``sub(:)``)."""
    win = sliding_window_view(img, (3, 3))  # (M-2, N-2, row, col)
    return np.ascontiguousarray(win.transpose(0, 1, 3, 2)).reshape(-1, 9)


def _minmax_rows(x: np.ndarray) -> np.ndarray:
    lo = x.min(axis=1, keepdims=True)
    hi = x.max(axis=1, keepdims=True)
    span = hi - lo
    flat = span[:, 0] == 0
    out = np.ones_like(x)
    out[~flat] = (x[~flat] - lo[~flat]) / span[~flat]
    return out


def _xlogx_abs(p: np.ndarray) -> np.ndarray:
    """``-p log2|p|`` where ``p != 0``, else 0 (MATLAB's ``real(-p log2 p)`` also for negative p)."""
    out = np.zeros_like(p)
    nz = p != 0
    out[nz] = -p[nz] * np.log2(np.abs(p[nz]))
    return out


def _bound_table(fc: np.ndarray, xc: np.ndarray, upper: bool) -> np.ndarray:
    """Frechet bound of the joint CDF on the 9 x 9 grid, ``min(F_i, X_j)`` or ``max(F_i + X_j - 1, 0)``."""
    if upper:
        return np.minimum(fc[:, :, None], xc[:, None, :])
    return np.maximum(fc[:, :, None] + xc[:, None, :] - 1.0, 0.0)


def _cell_masses(table: np.ndarray) -> np.ndarray:
    """Probability of each grid cell from a joint CDF table (inclusion-exclusion, zero CDF before index 1)."""
    padded = np.zeros((table.shape[0], 10, 10))
    padded[:, 1:, 1:] = table
    return padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]


def _fmi_windows(xs: np.ndarray, fs: np.ndarray) -> np.ndarray:
    """Per-window normalised feature MI of source windows ``xs`` and fused windows ``fs`` (both (n, 9))."""
    xp = _minmax_rows(xs)
    fp = _minmax_rows(fs)
    xp /= xp.sum(axis=1, keepdims=True)
    fp /= fp.sum(axis=1, keepdims=True)
    xc, fc = np.cumsum(xp, axis=1), np.cumsum(fp, axis=1)
    xt, ft = xp - xp.mean(axis=1, keepdims=True), fp - fp.mean(axis=1, keepdims=True)
    num = np.sum(xt * ft, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(num == 0, 0.0, num / np.sqrt(np.sum(xt * xt, axis=1) * np.sum(ft * ft, axis=1)))
    x_sd = np.sqrt(np.maximum(xp @ _POS**2 - (xp @ _POS) ** 2, 0.0))
    f_sd = np.sqrt(np.maximum(fp @ _POS**2 - (fp @ _POS) ** 2, 0.0))
    joint_h = np.zeros(len(xs))
    for upper in (True, False):
        sel = (c >= 0) if upper else (c < 0)
        if not sel.any():
            continue
        table = _bound_table(fc[sel], xc[sel], upper)
        cov = table.sum(axis=(1, 2)) - fc[sel].sum(axis=1) * xc[sel].sum(axis=1)
        sd_prod = f_sd[sel] * x_sd[sel]
        degenerate = (sd_prod == 0) | ((c[sel] == 0) if upper else False)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(degenerate, 0.0, c[sel] / (cov / sd_prod))
        indep = fp[sel][:, :, None] * xp[sel][:, None, :]
        jpdf = weight[:, None, None] * _cell_masses(table) + (1.0 - weight[:, None, None]) * indep
        joint_h[sel] = _xlogx_abs(jpdf).sum(axis=(1, 2))
    hx = _xlogx_abs(xp).sum(axis=1)
    hf = _xlogx_abs(fp).sum(axis=1)
    mutual = hx + hf - joint_h
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mutual == 0, 0.0, 2.0 * mutual / (hx + hf))


def _fmi_pair(xs: np.ndarray, fs: np.ndarray, equal: np.ndarray) -> np.ndarray:
    out = np.ones(len(xs))
    todo = ~equal
    for start in range(0, int(todo.sum()), _FMI_CHUNK):
        idx = np.flatnonzero(todo)[start : start + _FMI_CHUNK]
        out[idx] = _fmi_windows(xs[idx], fs[idx])
    return out


def fmi(fused: np.ndarray, a: np.ndarray, b: np.ndarray, feature: str = "edge") -> float:
    """Haghighat's fast feature mutual information (Fast-FMI), as TANG's ``analysis_fmi``. Range [0, 1]; higher
    is better.

    Features (MATLAB scale kept, since the reference's "identical window" tests compare raw values):
    ``"edge"`` = MATLAB ``edge(I)`` maps (0/1; :func:`~mmfuse_cli.metrics.gradient.matlab_sobel_edges`), the
    function's default; ``"none"`` = raw pixels on 0..255. Sliding 3x3 windows: each window of A (B) and F is
    min-max normalised (a flat window becomes all ones) and read as a pmf over its 9 positions (MATLAB
    column-major order); the joint pmf mixes the Frechet upper (correlation >= 0) or lower bound with
    independence (Nelsen's method); entropies in bits; ``fmi = 2 I / (H_x + H_f)`` (1 for identical windows,
    0 when I == 0). Window value = mean of the A-F and B-F values; FMI = mean over windows. The reference's quirk
    that the B-F "identical window" test compares raw B with the already-normalised F window is reproduced.
    NaN under 3 px a side.
    """
    check_images(fused, a, b)
    if too_small(fused, 3):
        return float("nan")
    if feature == "edge":
        from mmfuse_cli.metrics.gradient import matlab_sobel_edges

        maps = [matlab_sobel_edges(to255(x)) for x in (fused, a, b)]
    elif feature == "none":
        maps = [to255(x) for x in (fused, a, b)]
    else:
        raise ValueError(f"FMI feature must be 'edge' or 'none', got {feature!r}")
    fs, as_, bs = (_windows(m) for m in maps)
    eq_a = np.all(as_ == fs, axis=1)
    fmi_a = _fmi_pair(as_, fs, eq_a)
    f_seen_by_b = np.where(eq_a[:, None], fs, _minmax_rows(fs))
    eq_b = np.all(bs == f_seen_by_b, axis=1)
    fmi_b = _fmi_pair(bs, fs, eq_b)
    return float(np.mean((fmi_a + fmi_b) / 2.0))


def fmi_pixel(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """FMI_pixel as TANG publishes it. Range [0, 1]; higher is better (IR/VIS methods about 0.85-0.92).

    TANG's ``analysis_Reference`` fills its "FMI_pixel" column with ``analysis_fmi(A, B, F)`` called without a
    feature argument, and ``analysis_fmi`` then defaults to ``'edge'``: the published numbers are FMI of MATLAB
    Sobel edge maps, not of raw pixels (raw pixels give about 0.4-0.6 on TNO even for the plain average). This
    returns that published quantity, :func:`fmi` with ``feature="edge"``; ``fmi(..., feature="none")`` is the
    raw-pixel variant. About 0.5-1 s per 640 x 480 pair.
    """
    return fmi(fused, a, b, feature="edge")

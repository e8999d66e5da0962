"""Fusion metrics: hand-computable values, symmetry / invariance, agreement with independent implementations
(scikit-image, scikit-learn, sewar, scipy, literal ports of the reference loops) and the literature's ordering.

Test images are made here or come with scikit-image (camera, astronaut); nothing is read from shared data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.signal import convolve2d, correlate2d
from skimage import data
from skimage.measure import shannon_entropy
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mmfuse_cli import metrics as M
from mmfuse_cli.io import to_gray
from mmfuse_cli.metrics._base import gray_levels, normalize1, quantize8
from mmfuse_cli.metrics.gradient import matlab_sobel_edges

# --- test images --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """Two real 8-bit gray images of one size (160 x 224, not square to catch axis mix-ups), float [0, 1]."""
    a = quantize8(data.camera()[96:256, 128:352] / 255.0)
    b = quantize8(to_gray(data.astronaut()[96:256, 128:352] / 255.0))
    return a, b


@pytest.fixture(scope="module")
def fused(pair) -> np.ndarray:
    """Average of the pair plus a little noise, on the 8-bit grid."""
    a, b = pair
    rng = np.random.default_rng(0)
    return quantize8(np.clip(0.5 * a + 0.5 * b + rng.normal(0, 3 / 255, a.shape), 0, 1))


@pytest.fixture(scope="module")
def candidates(pair) -> dict[str, np.ndarray]:
    """Fused images whose ranking the literature agrees on: one source copied, the average, pure noise."""
    a, b = pair
    rng = np.random.default_rng(1)
    return {"source": a, "average": quantize8((a + b) / 2), "noise": quantize8(rng.uniform(0, 1, a.shape))}


SOURCE_METRICS = [n for n, m in M.REGISTRY.items() if m.kind == "src"]


def _call(name: str, f, a=None, b=None, **kw) -> float:
    m = M.REGISTRY[name]
    return m(f, **kw) if m.kind == "nr" else m(f, a, b, **kw)


# --- hand-computable values ---------------------------------------------------------------------------------


def test_constant_image_has_zero_activity():
    f = np.full((20, 30), 0.4)
    assert M.en(f) == 0.0
    assert M.sd(f) == 0.0
    assert M.sf(f) == 0.0
    assert M.ag(f) == 0.0


def test_two_level_image():
    m, n = 16, 20
    f = np.zeros((m, n))
    f[:, n // 2 :] = 1.0
    assert M.en(f) == pytest.approx(1.0)
    assert M.sd(f) == pytest.approx(127.5)
    assert M.sf(f) == pytest.approx(255 / math.sqrt(n - 1))
    assert M.sf(f, convention="vifb") == pytest.approx(255 / math.sqrt(n))
    # two columns see the central difference 255 / 2 along x: s = 127.5 / sqrt(2) there
    assert M.ag(f) == pytest.approx(2 * m * 127.5 / math.sqrt(2) / (m * n))
    assert M.ag(f, convention="tang") == pytest.approx(2 * m * 127.5 / math.sqrt(2) / ((m - 1) * (n - 1)))


def test_ramp():
    f = np.tile(np.arange(256) / 255.0, (8, 1))  # one gray level per column
    assert M.en(f) == pytest.approx(8.0)
    assert M.sd(f) == pytest.approx(math.sqrt((256**2 - 1) / 12))
    assert M.sf(f) == pytest.approx(1.0)
    assert M.sf(f, convention="vifb") == pytest.approx(math.sqrt(255 / 256))
    assert M.ag(f) == pytest.approx(1 / math.sqrt(2))


def _entropy_nats(img: np.ndarray) -> float:
    p = np.bincount(gray_levels(img).ravel(), minlength=256) / img.size
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def test_identical_sources_and_fused(pair):
    a = pair[0]
    assert M.mi(a, a, a) == pytest.approx(2 * _entropy_nats(a))
    assert M.mi(a, a, a, convention="tang") == pytest.approx(2 * M.en(a))
    assert M.cc(a, a, a) == pytest.approx(1.0)
    assert M.mse(a, a, a) == 0.0
    assert M.psnr(a, a, a) == math.inf
    assert M.ssim(a, a, a) == pytest.approx(2.0)
    assert M.ssim(a, a, a, convention="tang") == pytest.approx(1.0)
    assert M.ssim(a, a, a, convention="vifb") == pytest.approx(2.0)
    assert M.vif(a, a, a) == pytest.approx(2.0, abs=1e-6)
    assert M.nabf(a, a, a) == 0.0
    assert M.ms_ssim(a, a, a) == pytest.approx(1.0, abs=1e-9)
    assert M.fmi_pixel(a, a, a) == 1.0
    assert M.q_mi(a, a, a) == pytest.approx(2.0)
    assert M.q_y(a, a, a) == pytest.approx(1.0)
    assert M.q_s(a, a, a) == pytest.approx(1.0)
    assert M.q_cb(a, a, a) == pytest.approx(1.0)
    assert M.q_g(a, a, a) == pytest.approx((1 / (1 + math.exp(-5))) ** 2)
    assert math.isnan(M.scd(a, a, a))  # F - B is constant: correlation undefined, as in the references


def test_q_ncie_identical_images(pair):
    a = pair[0]
    h = M.en(quantize8(normalize1(a * 255) / 255)) / 8  # NCC(X, X) = H(X) / log2(256)
    eig = np.array([1 + 2 * h, 1 - h, 1 - h]) / 3
    assert M.q_ncie(a, a, a) == pytest.approx(1 + np.sum(eig * np.log2(eig)) / 8)


def test_qabf_keeps_the_equal_strength_quirk(pair):
    """F == A == B: G_XF = g_F where g_X == g_F, so each edge pixel scores Q^g(g) * Q^a(1)."""
    a = pair[0]
    g = _sobel_conv_strength(a * 255)
    q = 0.9994 / (1 + np.exp(-15 * (g - 0.5))) * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert M.qabf(a, a, a) == pytest.approx(np.sum(q * g) / np.sum(g), abs=1e-12)


def test_fused_equal_to_one_source(pair):
    a, b = pair
    assert M.nabf(a, a, b) == 0.0  # no gradient exceeds A's
    assert M.mi(a, a, b) == pytest.approx(_entropy_nats(a) + M.mi(b, a, a) / 2)  # H(A) + I(A;B)
    assert M.psnr_reference(a, a) == math.inf
    assert M.ssim_reference(a, a) == pytest.approx(1.0)


# --- symmetry and invariance --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in SOURCE_METRICS if n != "FMI_pixel"])
def test_two_source_metrics_are_symmetric_in_the_sources(name, pair, fused):
    """(Not FMI_pixel: the reference compares raw B windows with the already-normalised F window, which on
    0/1 edge maps makes the order of the sources matter - reproduced on purpose.)"""
    a, b = pair
    assert _call(name, fused, a, b) == pytest.approx(_call(name, fused, b, a), rel=1e-9, abs=1e-12)


def test_tang_nabf_order_is_not_symmetric(pair, fused):
    a, b = pair
    assert M.nabf(fused, a, b, convention="tang") != pytest.approx(M.nabf(fused, a, b))


@pytest.mark.parametrize("name", ["EN", "SD", "SF", "AG"])
def test_no_reference_invariances(name, fused):
    value = _call(name, fused)
    assert _call(name, 1.0 - fused) == pytest.approx(value)  # negative image
    assert _call(name, fused.T.copy()) == pytest.approx(value)  # transpose swaps RF and CF
    assert _call(name, fused[::-1, ::-1].copy()) == pytest.approx(value)


def test_mi_is_invariant_to_relabelling_gray_levels(pair, fused):
    a, b = pair
    assert M.mi(1.0 - fused, a, b) == pytest.approx(M.mi(fused, a, b))
    assert M.cc(1.0 - fused, a, b) == pytest.approx(-M.cc(fused, a, b))


@pytest.mark.parametrize("name", ["Qabf", "Nabf", "SSIM", "CC", "MI", "PSNR", "Q_S", "Q_Y", "Q_CB"])
def test_rotation_by_180_degrees(name, pair, fused):
    """Symmetric windows and +-Sobel pairs: turning all three images upside down changes nothing.

    (Not Q_G: LIU adds +1e-5 to zero x-gradients, which breaks the sign symmetry on purpose-free pixels.)
    """
    a, b = pair
    rot = [x[::-1, ::-1].copy() for x in (fused, a, b)]
    assert _call(name, *rot) == pytest.approx(_call(name, fused, a, b), rel=1e-9, abs=1e-12)


# --- agreement with independent implementations (real images) ------------------------------------------------


def test_en_matches_skimage(fused):
    assert M.en(fused) == pytest.approx(
        shannon_entropy(gray_levels(fused).astype(np.uint8), base=2), abs=1e-10
    )


def test_mi_matches_sklearn(pair, fused):
    metrics = pytest.importorskip("sklearn.metrics")
    a, b = pair
    lf, la, lb = (gray_levels(x).ravel() for x in (fused, a, b))
    expected = metrics.mutual_info_score(lf, la) + metrics.mutual_info_score(lf, lb)
    assert M.mi(fused, a, b) == pytest.approx(expected, abs=1e-10)
    assert M.mi(fused, a, b, convention="tang") == pytest.approx(expected / math.log(2), abs=1e-10)


def test_q_mi_matches_sklearn_normalised_mi(pair, fused):
    metrics = pytest.importorskip("sklearn.metrics")
    a, b = pair
    lf, la, lb = (normalize1(x * 255).ravel() for x in (fused, a, b))
    nmi = lambda x, y: metrics.normalized_mutual_info_score(x, y, average_method="arithmetic")  # noqa: E731
    assert M.q_mi(fused, a, b) == pytest.approx(nmi(la, lf) + nmi(lb, lf), abs=1e-10)


def test_vif_matches_sewar(pair, fused):
    full_ref = pytest.importorskip("sewar.full_ref")
    a, b = pair
    expected = full_ref.vifp(a * 255, fused * 255) + full_ref.vifp(b * 255, fused * 255)
    assert M.vif(fused, a, b) == pytest.approx(expected, abs=1e-9)
    assert M.vif_single(fused, a) == pytest.approx(full_ref.vifp(a * 255, fused * 255), abs=1e-9)


def test_ssim_conventions_match_skimage_and_scipy(pair, fused):
    a, b = pair
    f, x, y = fused * 255, a * 255, b * 255
    cdd = structural_similarity(f, x, data_range=2.0) + structural_similarity(f, y, data_range=2.0)
    assert M.ssim(fused, a, b) == pytest.approx(cdd, abs=1e-10)

    def wang(p, q):
        return structural_similarity(
            p, q, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )

    assert M.ssim(fused, a, b, convention="vifb") == pytest.approx(wang(x, f) + wang(y, f), abs=1e-10)
    assert M.ssim(fused, a, b, convention="tang") == pytest.approx(
        (_matlab_ssim(f, x) + _matlab_ssim(f, y)) / 2, abs=1e-6
    )


def _matlab_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB ssim on double data via scipy's own Gaussian (sigma 1.5, radius 5, replicate padding)."""
    g = lambda z: ndimage.gaussian_filter(z, 1.5, mode="nearest", truncate=5 / 1.5)  # noqa: E731
    mx, my = g(x), g(y)
    vx, vy, cxy = g(x * x) - mx * mx, g(y * y) - my * my, g(x * y) - mx * my
    c1, c2 = 1e-4, 9e-4
    return float(np.mean((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))))


def test_pixel_metrics_match_numpy_and_skimage(pair, fused):
    a, b = pair
    f, x, y = fused * 255, a * 255, b * 255
    assert M.cc(fused, a, b) == pytest.approx(
        (np.corrcoef(x.ravel(), f.ravel())[0, 1] + np.corrcoef(y.ravel(), f.ravel())[0, 1]) / 2, abs=1e-12
    )
    scd = np.corrcoef((f - y).ravel(), x.ravel())[0, 1] + np.corrcoef((f - x).ravel(), y.ravel())[0, 1]
    assert M.scd(fused, a, b) == pytest.approx(scd, abs=1e-12)
    mse = (np.mean((x - f) ** 2) + np.mean((y - f) ** 2)) / 2
    assert M.mse(fused, a, b) == pytest.approx(mse)
    assert M.mse(fused, a, b, convention="tang") == pytest.approx(mse / 255**2)
    assert M.psnr(fused, a, b) == pytest.approx(10 * np.log10(f.max() ** 2 / mse))
    assert M.psnr(fused, a, b, convention="tang") == pytest.approx(
        10 * np.log10(255**2 / mse) + 20 * np.log10(255)
    )
    assert M.psnr_reference(fused, a) == pytest.approx(peak_signal_noise_ratio(a, fused, data_range=1.0))
    expected = structural_similarity(
        x, f, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert M.ssim_reference(fused, a) == pytest.approx(expected, abs=1e-10)


def test_ag_matches_explicit_differences(fused):
    f = fused * 255
    gx = np.empty_like(f)
    gx[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / 2
    gx[:, 0], gx[:, -1] = f[:, 1] - f[:, 0], f[:, -1] - f[:, -2]
    gy = np.empty_like(f)
    gy[1:-1] = (f[2:] - f[:-2]) / 2
    gy[0], gy[-1] = f[1] - f[0], f[-1] - f[-2]
    assert M.ag(fused) == pytest.approx(np.mean(np.sqrt((gx**2 + gy**2) / 2)), abs=1e-12)


def _sobel_conv_strength(img: np.ndarray):
    sx = convolve2d(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), mode="same")
    sy = convolve2d(img, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]), mode="same")
    return np.sqrt(sx**2 + sy**2)


def _reference_qabf(f, a, b) -> float:
    """Qabf.m as the spec states it, with scipy's convolve2d (true convolution, zero padding)."""

    def grad(img):
        sx = convolve2d(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), mode="same")
        sy = convolve2d(img, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]), mode="same")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(sx**2 + sy**2), np.where(sx == 0, np.pi / 2, np.arctan(sy / sx))

    gf, af = grad(f)
    num = den = 0.0
    for src in (a, b):
        g, ang = grad(src)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.select([g > gf, g == gf], [gf / g, gf], g / gf)
        q = (
            0.9994
            / (1 + np.exp(-15 * (rel - 0.5)))
            * 0.9879
            / (1 + np.exp(-22 * (1 - np.abs(ang - af) / (np.pi / 2) - 0.8)))
        )
        num += np.sum(q * g)
        den += np.sum(g)
    return num / den


def test_qabf_matches_convolve2d_port(pair, fused):
    a, b = pair
    assert M.qabf(fused, a, b) == pytest.approx(_reference_qabf(fused * 255, a * 255, b * 255), abs=1e-12)


def _reference_nabf(f, a, b) -> float:
    """Kumar's routine with numpy's mirror padding and scipy's correlate2d."""
    vt = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8

    def grad(img):
        ext = np.pad(img, 1, mode="reflect")
        gv, gh = correlate2d(ext, vt, mode="valid"), correlate2d(ext, vt.T, mode="valid")
        with np.errstate(divide="ignore", invalid="ignore"):
            ang = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
        return np.sqrt(gv**2 + gh**2), ang

    def pres(g, ang, gf, af):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where((g == 0) | (gf == 0), 0.0, np.minimum(g, gf) / np.maximum(g, gf))
        aa = np.abs(np.abs(ang - af) - np.pi / 2) * 2 / np.pi
        return np.sqrt(0.9999 / (1 + np.exp(-19 * (rel - 0.5))) * 0.9995 / (1 + np.exp(-22 * (aa - 0.5))))

    (gf, af), (ga, aa), (gb, ab) = grad(f), grad(a), grad(b)
    wa, wb = np.where(ga >= 2, ga**1.5, 0.001), np.where(gb >= 2, gb**1.5, 0.001)
    mask = (gf > ga) & (gf > gb)
    num = np.sum(mask * ((1 - pres(ga, aa, gf, af)) * wa + (1 - pres(gb, ab, gf, af)) * wb))
    return num / np.sum(wa + wb)


def test_nabf_matches_padded_correlation_port(pair, fused):
    a, b = pair
    expected = _reference_nabf(fused * 255, a * 255, b * 255)
    assert M.nabf(fused, a, b) == pytest.approx(expected, abs=1e-12)
    assert M.nabf(fused, a, b, convention="tang") == pytest.approx(
        _reference_nabf(a * 255, b * 255, fused * 255), abs=1e-12
    )


def _reference_mef_ssim(seq: list[np.ndarray], f: np.ndarray) -> float:
    """One scale of Ma et al.'s mef_ssim as a literal per-window loop (their MATLAB, transcribed)."""
    n, bd, eps = 11, 5, np.finfo(float).eps
    coords = np.arange(n) - bd
    win = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 1.5**2))
    win /= win.sum()
    rows, cols = f.shape
    q = []
    for i in range(bd, rows - bd):
        for j in range(bd, cols - bd):
            blocks = [x[i - bd : i + bd + 1, j - bd : j + bd + 1] for x in seq]
            mus = [blk.mean() for blk in blocks]
            eds = [np.sqrt(max(n * n * blk.var(), 0)) + 0.001 for blk in blocks]
            total = sum(blk for blk in blocks).ravel()
            ratio = (np.linalg.norm(total - total.mean()) + eps) / (
                sum(np.linalg.norm(blk.ravel() - m) for blk, m in zip(blocks, mus, strict=True)) + eps
            )
            ratio = 1 - eps if ratio > 1 else max(ratio, eps)
            p = min(math.tan(math.pi / 2 * ratio), 10)
            w = np.array([(e / n) ** p + eps for e in eds])
            w /= w.sum()
            r = sum(wk * (blk - m) / e for wk, blk, m, e in zip(w, blocks, mus, eds, strict=True))
            if np.linalg.norm(r) > 0:
                r = r / np.linalg.norm(r) * max(eds)
            fb = f[i - bd : i + bd + 1, j - bd : j + bd + 1]
            m1, m2 = np.sum(win * r), np.sum(win * fb)
            s1, s2 = np.sum(win * (r - m1) ** 2), np.sum(win * (fb - m2) ** 2)
            s12 = np.sum(win * (r - m1) * (fb - m2))
            c = (0.03 * 255) ** 2
            q.append((2 * s12 + c) / (s1 + s2 + c))
    return float(np.mean(q))


def test_ms_ssim_matches_the_per_window_loop(pair, fused):
    a, b = pair
    sl = (slice(40, 88), slice(60, 108))  # 48 x 48: three scales of 48, 24, 12 px
    x, y, f = a[sl] * 255, b[sl] * 255, fused[sl] * 255
    scores = []
    for level in range(3):
        scores.append(_reference_mef_ssim([x, y], f))
        if level < 2:
            x, y, f = (z.reshape(z.shape[0] // 2, 2, z.shape[1] // 2, 2).mean(axis=(1, 3)) for z in (x, y, f))
    w = np.array([0.0448, 0.2856, 0.3001])
    expected = np.prod(np.array(scores) ** (w / w.sum()))
    assert M.ms_ssim(fused[sl], a[sl], b[sl]) == pytest.approx(expected, abs=1e-9)


def _reference_fmi_window(x: np.ndarray, f: np.ndarray) -> tuple[float, np.ndarray]:
    """One window of Haghighat's fast FMI, transcribed loop by loop; returns (fmi, F window as left)."""
    if np.all(x == f):
        return 1.0, f

    def nrm(s):
        return np.ones_like(s) if s.max() == s.min() else (s - s.min()) / (s.max() - s.min())

    x, f = nrm(x), nrm(f)
    xp, fp = x.ravel(order="F") / x.sum(), f.ravel(order="F") / f.sum()
    xc, fc = np.cumsum(xp), np.cumsum(fp)
    xt, ft = xp - xp.mean(), fp - fp.mean()
    c = 0.0 if np.sum(xt * ft) == 0 else np.sum(xt * ft) / np.sqrt(np.sum(xt * xt) * np.sum(ft * ft))
    pos = np.arange(1, 10)
    xsd = math.sqrt(max(np.sum(pos**2 * xp) - np.sum(pos * xp) ** 2, 0))
    fsd = math.sqrt(max(np.sum(pos**2 * fp) - np.sum(pos * fp) ** 2, 0))
    bound = (lambda u, v: min(u, v)) if c >= 0 else (lambda u, v: max(u + v - 1, 0.0))
    if (c >= 0 and c == 0) or xsd == 0 or fsd == 0:
        weight = 0.0
    else:
        cov = sum(bound(fc[i], xc[j]) - fc[i] * xc[j] for i in range(9) for j in range(9))
        weight = c / (cov / (fsd * xsd))
    cdf = lambda i, j: 0.0 if i < 0 or j < 0 else bound(fc[i], xc[j])  # noqa: E731
    joint = 0.0
    for i in range(9):
        for j in range(9):
            up = cdf(i, j) - cdf(i - 1, j) - cdf(i, j - 1) + cdf(i - 1, j - 1)
            p = weight * up + (1 - weight) * fp[i] * xp[j]
            if p != 0:
                joint += -p * math.log2(abs(p))
    hx = -sum(p * math.log2(p) for p in xp if p != 0)
    hf = -sum(p * math.log2(p) for p in fp if p != 0)
    mi = hx + hf - joint
    return (0.0 if mi == 0 else 2 * mi / (hx + hf)), f


@pytest.mark.parametrize("feature", ["none", "edge"])
def test_fmi_matches_the_per_window_loop(feature, pair, fused):
    a, b = pair
    sl = (slice(50, 70), slice(70, 94))
    x, y, f = a[sl] * 255, b[sl] * 255, fused[sl] * 255
    f[3:6, 3:6] = x[3:6, 3:6]  # a few identical windows exercise the shortcut
    maps = [x, y, f] if feature == "none" else [matlab_sobel_edges(z) for z in (x, y, f)]
    vals = []
    for i in range(1, f.shape[0] - 1):
        for j in range(1, f.shape[1] - 1):
            win = (slice(i - 1, i + 2), slice(j - 1, j + 2))
            v_a, f_left = _reference_fmi_window(maps[0][win], maps[2][win])
            v_b, _ = _reference_fmi_window(maps[1][win], f_left)
            vals.append((v_a + v_b) / 2)
    assert M.fmi(f / 255, x / 255, y / 255, feature=feature) == pytest.approx(np.mean(vals), abs=1e-12)


def test_fmi_pixel_is_tangs_edge_feature_fmi(pair, fused):
    a, b = pair
    assert M.fmi_pixel(fused, a, b) == M.fmi(fused, a, b, feature="edge")
    assert M.fmi_pixel(fused, a, b) > M.fmi(
        fused, a, b, feature="none"
    )  # the published range is the edge one
    with pytest.raises(ValueError, match="feature"):
        M.fmi(fused, a, b, feature="dct")


def test_matlab_sobel_edges_thins_a_step_to_one_column():
    img = np.zeros((12, 20))
    img[:, 10:] = 255.0
    edges = matlab_sobel_edges(img)
    expected = np.zeros_like(img)
    expected[:, 10] = 1.0  # b is equal on columns 9 and 10; only 10 passes b(c-1) <= b(c) > b(c+1)
    np.testing.assert_array_equal(edges, expected)
    np.testing.assert_array_equal(matlab_sobel_edges(img.T), expected.T)
    assert matlab_sobel_edges(np.full((8, 8), 3.0)).sum() == 0


# --- the literature's ordering: a copied source, the average, noise ------------------------------------------

AVERAGE_BEATS_NOISE = [
    "MI",
    "VIF",
    "Qabf",
    "SSIM",
    "MS_SSIM",
    "CC",
    "PSNR",
    "FMI_pixel",
    "Q_MI",
    "Q_NCIE",
    "Q_G",
    "Q_P",
    "Q_CB",
    "Q_Y",
    "Q_S",
]


@pytest.mark.parametrize("name", AVERAGE_BEATS_NOISE)
def test_average_beats_noise(name, pair, candidates):
    a, b = pair
    assert _call(name, candidates["average"], a, b) > _call(name, candidates["noise"], a, b)


def test_noise_is_penalised_where_it_should_be(pair, candidates):
    a, b = pair
    avg, noise = candidates["average"], candidates["noise"]
    assert M.nabf(noise, a, b) > M.nabf(avg, a, b)  # artefacts: lower is better
    assert M.mse(noise, a, b) > M.mse(avg, a, b)
    for name in ("EN", "SF", "AG"):  # no-reference metrics are inflated by noise (the known caveat)
        assert _call(name, noise) > _call(name, avg)


def test_copying_a_source_scores_high_on_mi_but_loses_the_other(pair, candidates):
    a, b = pair
    src, avg = candidates["source"], candidates["average"]
    assert M.mi(src, a, b) > M.mi(avg, a, b)  # MI rewards copying (a known weakness)
    assert M.vif_single(src, b) < M.vif_single(avg, b)


# --- ranges and regression pins -----------------------------------------------------------------------------

PINNED_CDD = {  # values of this implementation on the fixture pair (cdd convention)
    "EN": 7.698960753004541,
    "SD": 63.80989165407542,
    "SF": 17.535409273142875,
    "AG": 6.431256115985722,
    "MI": 2.7645101296624652,
    "SCD": 1.1930985466625545,
    "VIF": 0.5209997433957734,
    "Qabf": 0.40937844127246253,
    "Nabf": 0.0006672576644290908,
    "SSIM": 0.7175886030605874,
    "MS_SSIM": 0.8443665666688926,
    "CC": 0.799517333255128,
    "PSNR": 13.39852804875435,
    "MSE": 2633.720465959821,
    "FMI_pixel": 0.8055669684625256,
    "Q_MI": 0.5332215060824343,
    "Q_NCIE": 0.8105831514351497,
    "Q_G": 0.32586517858599373,
    "Q_P": 0.5072923716828199,
    "Q_CB": 0.4202962271903706,
    "Q_Y": 0.5763927583438536,
    "Q_S": 0.6761359807265467,
}


def test_pinned_values_and_ranges(pair, fused):
    a, b = pair
    values = M.compute_metrics(fused, a, b, list(PINNED_CDD))
    for name, expected in PINNED_CDD.items():
        assert values[name] == pytest.approx(expected, rel=1e-7, abs=1e-10), name
        lo, hi = M.REGISTRY[name].value_range
        assert lo <= values[name] <= hi, name


# --- registry, compute_metrics, input checks ----------------------------------------------------------------


def test_resolve_names_is_case_insensitive_and_expands_groups():
    assert M.resolve_names("en, QABF,ms_ssim,q_mi") == ["EN", "Qabf", "MS_SSIM", "Q_MI"]
    assert M.resolve_names("default") == list(M.DEFAULT)
    assert M.resolve_names("liu,EN") == [*M.LIU_SET, "EN"]
    assert "PSNR_A" not in M.resolve_names("all")
    with pytest.raises(ValueError, match="unknown metric 'Qxyz'"):
        M.resolve_names("EN,Qxyz")


def test_registry_metadata():
    assert set(M.DEFAULT) <= set(M.REGISTRY)
    assert {"EN", "SD", "SF", "AG"} == {n for n, m in M.REGISTRY.items() if m.kind == "nr"}
    assert not M.REGISTRY["Nabf"].higher_is_better and not M.REGISTRY["MSE"].higher_is_better
    assert all(m.higher_is_better for n, m in M.REGISTRY.items() if n not in ("Nabf", "MSE"))


def test_no_reference_metrics_quantizes_and_accepts_rgb(fused):
    rgb = np.stack([fused] * 3, axis=-1)
    values = M.no_reference_metrics(rgb + 0.0004)  # off-grid by a tenth of a level: snapped back
    assert list(values) == ["EN", "SD", "SF", "AG"]
    assert values["SD"] == pytest.approx(M.sd(fused))


def test_compute_metrics_against_clean_references(pair, fused):
    a, b = pair
    rng = np.random.default_rng(2)
    noisy_a = quantize8(np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1))
    noisy_b = quantize8(np.clip(b + rng.normal(0, 0.05, b.shape), 0, 1))
    got = M.compute_metrics(fused, noisy_a, noisy_b, ["CC", "Qabf"], a_clean=a, b_clean=b)
    assert list(got) == ["CC", "Qabf", *M.CLEAN]
    assert got["CC"] == pytest.approx(M.cc(fused, a, b))
    assert got["PSNR_A"] == pytest.approx(M.psnr_reference(noisy_a, a))
    assert got["SSIM_B"] == pytest.approx(M.ssim_reference(noisy_b, b))
    assert got["PSNR_F"] == pytest.approx(M.psnr_fused_reference(fused, a, b))
    assert got["SSIM_F"] == pytest.approx((M.ssim_reference(fused, a) + M.ssim_reference(fused, b)) / 2)
    given = M.compute_metrics(fused, noisy_a, noisy_b, ["CC"], a_clean=a, b_clean=b, against="given")
    assert given["CC"] == pytest.approx(M.cc(fused, noisy_a, noisy_b))


def test_compute_metrics_conventions(pair, fused):
    a, b = pair
    cdd = M.compute_metrics(fused, a, b, ["MI", "PSNR", "SSIM", "EN"])
    tang = M.compute_metrics(fused, a, b, ["MI", "PSNR", "SSIM", "EN"], convention="TANG")
    assert tang["MI"] == pytest.approx(cdd["MI"] / math.log(2))
    assert tang["PSNR"] == pytest.approx(M.psnr_fused_reference(fused, a, b) + 20 * math.log10(255))
    assert tang["SSIM"] < cdd["SSIM"]
    assert tang["EN"] == cdd["EN"]
    with pytest.raises(ValueError, match="convention"):
        M.compute_metrics(fused, a, b, ["MI"], convention="matlab")


def test_input_checks(pair, fused):
    a, b = pair
    with pytest.raises(ValueError, match="sizes differ"):
        M.qabf(fused, a[:-1], b[:-1])
    with pytest.raises(ValueError, match="gray"):
        M.en(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        M.sd(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="both source"):
        M.compute_metrics(fused, None, None, ["Qabf"])
    with pytest.raises(ValueError, match="both clean"):
        M.compute_metrics(fused, a, b, ["CC"], a_clean=a)


def test_small_images_give_nan_where_a_window_does_not_fit(pair, fused):
    a, b = (x[:9, :12] for x in pair)
    f = fused[:9, :12]
    values = M.compute_metrics(f, a, b, "all")
    for name in ("VIF", "MS_SSIM", "Q_S"):  # need 41, 44 and 11 px
        assert math.isnan(values[name]), name
    for name in ("EN", "MI", "Qabf", "Nabf", "SSIM", "CC", "FMI_pixel", "Q_MI", "Q_Y", "Q_CB"):
        assert math.isfinite(values[name]), name
    assert math.isnan(M.ssim(f[:6], a[:6], b[:6])) and math.isnan(M.ssim(f, a, b, convention="vifb"))


def test_phase_congruency_finds_a_step_edge():
    img = np.zeros((64, 64))
    img[:, 32:] = 255.0
    pc = M.phase_congruency(img)
    assert pc.pc[:, 31:33].mean() > 0.5  # strong on the edge
    assert pc.pc[:, 8:24].max() < 0.1  # nothing in the flat part
    assert np.all(pc.M >= pc.m - 1e-12)


def test_large_image_paths_work_in_bands_with_the_same_values():
    """to_gray, the metrics' 8-bit snapping, SF and AG run over bands of rows (bounded memory on 12 Mpx images):
    bit-identical luminance and snapping, SF / AG equal to the whole-image formulas within 1e-12."""
    from mmfuse_cli.io import rgb_to_ycbcr, to_gray
    from mmfuse_cli.metrics import registry
    from mmfuse_cli.metrics._base import quantize8, to255
    from mmfuse_cli.metrics.no_reference import STRIP_ROWS, ag, sf

    rng = np.random.default_rng(7)
    rgb = rng.random((2 * STRIP_ROWS + 37, 50, 3), dtype=np.float32)
    assert np.array_equal(to_gray(rgb), rgb_to_ycbcr(rgb)[..., 0])
    assert np.array_equal(registry._prepare(rgb, True), quantize8(np.asarray(to_gray(rgb), np.float64)))
    gray = registry._prepare(rgb, True)
    f = to255(gray)
    dh, dv = np.diff(f, axis=1), np.diff(f, axis=0)
    assert abs(sf(gray) - np.sqrt(np.mean(dh * dh) + np.mean(dv * dv))) < 1e-12
    gy, gx = np.gradient(f)
    assert abs(ag(gray) - np.sqrt((gx * gx + gy * gy) / 2).mean()) < 1e-12

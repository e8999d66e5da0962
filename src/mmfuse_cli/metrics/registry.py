"""The metric registry (name -> function, needs sources?, direction, range) and :func:`compute_metrics`.

Names are the column names of ``mmfuse evaluate`` and ``run.csv``; lookups are case-insensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np

from mmfuse_cli.io import to_gray
from mmfuse_cli.metrics import gradient, information, no_reference, perceptual, phase, pixel, structural, vif
from mmfuse_cli.metrics._base import CONVENTIONS, check_images

Against = Literal["auto", "given", "clean"]
"""What the source-referenced metrics compare F with (:func:`compute_metrics`'s ``against``)."""


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    Attributes:
        name: column name (``EN``, ``Qabf``, ``MS_SSIM`` ...).
        func: ``func(F)`` for no-reference metrics, ``func(F, A, B)`` otherwise; gray float [0, 1] in, float out.
        kind: ``"nr"`` (F only), ``"src"`` (F against the sources) or ``"clean"`` (against clean references).
        higher_is_better: direction.
        value_range: range of values in the default (cdd) convention.
        variants: conventions with a specific definition (the function takes ``convention=``); empty when the
            metric has a single definition.
        follows: the toolbox whose definition is implemented when no variant applies.
    """

    name: str
    func: Callable[..., float]
    kind: Literal["nr", "src", "clean"]
    higher_is_better: bool
    value_range: tuple[float, float]
    variants: tuple[str, ...] = ()
    follows: str = "CDD"

    def __call__(self, *images: np.ndarray, convention: str = "cdd") -> float:
        if self.variants:
            return float(self.func(*images, convention=convention))
        return float(self.func(*images))


_INF = float("inf")
_ALL3 = ("cdd", "tang", "vifb")

_METRICS = [
    Metric("EN", no_reference.en, "nr", True, (0.0, 8.0)),
    Metric("SD", no_reference.sd, "nr", True, (0.0, 127.5)),
    Metric("SF", no_reference.sf, "nr", True, (0.0, 360.6), _ALL3),
    Metric("AG", no_reference.ag, "nr", True, (0.0, 255.0), _ALL3),
    Metric("MI", information.mi, "src", True, (0.0, 11.09), _ALL3),
    Metric("SCD", pixel.scd, "src", True, (-2.0, 2.0)),
    Metric("VIF", vif.vif, "src", True, (0.0, _INF)),
    Metric("Qabf", gradient.qabf, "src", True, (0.0, 1.0)),
    Metric("Nabf", gradient.nabf, "src", False, (0.0, 1.0), ("cdd", "tang"), "TANG"),
    Metric("SSIM", structural.ssim, "src", True, (-2.0, 2.0), _ALL3),
    Metric("MS_SSIM", structural.ms_ssim, "src", True, (-1.0, 1.0), (), "TANG"),
    Metric("CC", pixel.cc, "src", True, (-1.0, 1.0)),
    Metric("PSNR", pixel.psnr, "src", True, (0.0, _INF), _ALL3),
    Metric("MSE", pixel.mse, "src", False, (0.0, 65025.0), _ALL3),
    Metric("FMI_pixel", information.fmi_pixel, "src", True, (0.0, 1.0), (), "TANG"),
    Metric("Q_MI", information.q_mi, "src", True, (0.0, 2.0), (), "LIU"),
    Metric("Q_NCIE", information.q_ncie, "src", True, (0.0, 1.0), (), "LIU"),
    Metric("Q_G", gradient.q_g, "src", True, (0.0, 1.0), (), "LIU"),
    Metric("Q_P", phase.q_p, "src", True, (0.0, 1.0), (), "LIU"),
    Metric("Q_CB", perceptual.q_cb, "src", True, (0.0, 1.0), (), "LIU"),
    Metric("Q_Y", structural.q_y, "src", True, (-1.0, 1.0), (), "LIU"),
    Metric("Q_S", structural.q_s, "src", True, (-1.0, 1.0), (), "LIU"),
    Metric("PSNR_A", pixel.psnr_reference, "clean", True, (0.0, _INF), (), "textbook"),
    Metric("SSIM_A", structural.ssim_reference, "clean", True, (-1.0, 1.0), (), "Wang"),
    Metric("PSNR_B", pixel.psnr_reference, "clean", True, (0.0, _INF), (), "textbook"),
    Metric("SSIM_B", structural.ssim_reference, "clean", True, (-1.0, 1.0), (), "Wang"),
    Metric("PSNR_F", pixel.psnr_fused_reference, "clean", True, (0.0, _INF), (), "textbook"),
    Metric("SSIM_F", structural.ssim_fused_reference, "clean", True, (-1.0, 1.0), (), "Wang"),
]

REGISTRY: dict[str, Metric] = {m.name: m for m in _METRICS}
"""All metrics by column name, in the canonical column order."""

HIGHER_IS_BETTER: dict[str, bool] = {name: metric.higher_is_better for name, metric in REGISTRY.items()}
"""Metric name -> higher is better (the HTML report's best / worst and bold bests)."""

NO_REFERENCE: tuple[str, ...] = ("EN", "SD", "SF", "AG")
"""Metrics of the fused image alone (what ``mmfuse run`` always reports)."""

DEFAULT: tuple[str, ...] = (
    "EN",
    "SD",
    "SF",
    "AG",
    "MI",
    "SCD",
    "VIF",
    "Qabf",
    "Nabf",
    "SSIM",
    "CC",
    "PSNR",
    "MSE",
)
"""Default selection: CDD's twelve metrics plus Nabf; all of them take well under a second per 640x480 pair."""

LIU_SET: tuple[str, ...] = ("Q_MI", "Q_NCIE", "Q_P", "Q_CB", "Q_Y", "Q_S")
"""The Liu et al. metrics reported in the DRFusion tables."""

CLEAN: tuple[str, ...] = ("PSNR_A", "SSIM_A", "PSNR_B", "SSIM_B", "PSNR_F", "SSIM_F")
"""Against clean references: the given A (B) vs clean A (B), and F vs the clean pair (PSNR of the averaged
MSE; mean of the two SSIMs). Textbook PSNR (peak 255) and Wang SSIM, whatever the convention."""

_BY_LOWER = {name.lower(): name for name in REGISTRY}


def resolve_names(spec: str | Iterable[str]) -> list[str]:
    """Canonical metric names from a comma-separated string or a list, case-insensitive, order kept.

    The words ``default``, ``all`` and ``liu`` expand to :data:`DEFAULT`, every metric but the clean ones, and
    :data:`LIU_SET`. Duplicates are dropped.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    groups = {
        "default": DEFAULT,
        "all": tuple(n for n, m in REGISTRY.items() if m.kind != "clean"),
        "liu": LIU_SET,
    }
    out: list[str] = []
    for raw in items:
        key = raw.strip().lower()
        if not key:
            continue
        if key in groups:
            names = list(groups[key])
        elif key in _BY_LOWER:
            names = [_BY_LOWER[key]]
        else:
            valid = ", ".join(REGISTRY)
            raise ValueError(f"unknown metric {raw.strip()!r} (valid: {valid}; or default, all, liu)")
        out.extend(n for n in names if n not in out)
    return out


@overload
def _prepare(img: np.ndarray, quantize: bool) -> np.ndarray: ...
@overload
def _prepare(img: None, quantize: bool) -> None: ...
@overload
def _prepare(img: np.ndarray | None, quantize: bool) -> np.ndarray | None: ...
def _prepare(img: np.ndarray | None, quantize: bool) -> np.ndarray | None:
    if img is None:
        return None
    gray = np.array(to_gray(np.asarray(img)), dtype=np.float64)  # a copy: changed in place below
    if not quantize:
        return gray
    # quantize8(gray), in place: one float64 plane instead of four (a 12 Mpx image: 140 MB, not 550 MB)
    gray *= 255.0
    np.rint(gray, out=gray)
    np.clip(gray, 0, 255, out=gray)
    gray /= 255.0
    return gray


def no_reference_metrics(fused_gray: np.ndarray, quantize: bool = True) -> dict[str, float]:
    """EN, SD, SF, AG (CDD convention) of one fused image; a few milliseconds for 640x480.

    Args:
        fused_gray: float [0, 1], (H, W) (an RGB image is reduced to its BT.601 luminance).
        quantize: snap to the 8-bit grid first, i.e. score what an 8-bit file of the image would hold.
    """
    f = _prepare(fused_gray, quantize)
    return {name: REGISTRY[name](f) for name in NO_REFERENCE}


def compute_metrics(
    fused: np.ndarray,
    a: np.ndarray | None = None,
    b: np.ndarray | None = None,
    names: str | Iterable[str] = DEFAULT,
    a_clean: np.ndarray | None = None,
    b_clean: np.ndarray | None = None,
    convention: str = "cdd",
    against: Against = "auto",
    quantize: bool = True,
) -> dict[str, float]:
    """Compute the named metrics of one fused image.

    Args:
        fused, a, b: float [0, 1] images of one size, (H, W) or (H, W, 3); colour is reduced to BT.601
            luminance (OpenCV's gray weights, as CDD). ``a``/``b`` may be None when only no-reference metrics
            are asked for.
        names: metric names (see :func:`resolve_names`).
        a_clean, b_clean: clean references of the sources, if known. When both are given the clean metrics
            (:data:`CLEAN`) are added to the result.
        convention: ``cdd`` (default), ``tang``, ``vifb`` or ``liu``; selects the toolbox variant of metrics that
            have one (see each metric's docstring); the others keep their single definition.
        against: what the source-referenced metrics compare F with: the ``given`` A/B, the ``clean`` ones, or
            ``auto`` = clean when both clean images are given (recommended on degraded data: otherwise a method
            that copies the noise scores well).
        quantize: snap all images to the 8-bit grid first (``round(255 x) / 255``), i.e. score what the 8-bit
            files the reference toolboxes read would hold.

    Returns:
        ``{name: value}`` in the order of ``names`` (then the clean metrics). NaN where a metric is undefined.

    Raises:
        ValueError: unknown name or convention, missing sources, or images of different sizes.
    """
    if convention.lower() not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r} (expected one of {', '.join(CONVENTIONS)})")
    selected = resolve_names(names if isinstance(names, str) else list(names))
    f, x, y = _prepare(fused, quantize), _prepare(a, quantize), _prepare(b, quantize)
    xc, yc = _prepare(a_clean, quantize), _prepare(b_clean, quantize)
    has_clean = xc is not None and yc is not None
    if (xc is None) != (yc is None):
        raise ValueError("give both clean references or neither")
    if against == "clean" and not has_clean:
        raise ValueError("against='clean' needs both clean references")
    use_clean = has_clean and against in ("auto", "clean")
    sx, sy = (xc, yc) if use_clean else (x, y)
    if has_clean:
        selected += [n for n in CLEAN if n not in selected]
    needs_src = any(REGISTRY[n].kind == "src" for n in selected)
    if needs_src and (sx is None or sy is None):
        raise ValueError("source-referenced metrics need both source images")
    check_images(*[img for img in (f, x, y, xc, yc) if img is not None])
    return {name: _evaluate(name, f, sx, sy, x, y, xc, yc, convention) for name in selected}


def _evaluate(name, f, sx, sy, x, y, xc, yc, convention) -> float:
    metric = REGISTRY[name]
    if metric.kind == "nr":
        return metric(f, convention=convention)
    if metric.kind == "src":
        return metric(f, sx, sy, convention=convention)
    if xc is None or yc is None:
        raise ValueError(f"{name} needs clean references")
    if name.endswith("_F"):
        return metric(f, xc, yc)
    given, clean = (x, xc) if name.endswith("_A") else (y, yc)
    if given is None:
        raise ValueError(f"{name} needs the given source image")
    return metric(given, clean)

"""Time every fusion metric on one image pair (prints figures; asserts nothing).

Usage::

    OMP_NUM_THREADS=1 python bench/metrics_speed.py [IR VIS] [--repeat N]

Without paths it uses MSRS 00004N from ``../shared/data`` (640 x 480, visible RGB -> luminance) when present,
else a synthetic 640 x 480 pair. The fused image is the average of the two sources. Also prints the values and,
when ``tno/test/{ir,vi}/01.png`` is present, checks the cdd convention against reference values of
CDDFuse's ``Evaluator.py`` (see docs/METRICS.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mmfuse_cli.io import read_image, to_gray
from mmfuse_cli.metrics import DEFAULT, REGISTRY, compute_metrics, quantize8

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FIXTURE = {  # CDDFuse's Evaluator.py on TNO 01, F = avg + 3 N(0,1), seed 0 (docs/METRICS.md, CDD convention)
    "EN": 6.465254,
    "SD": 23.505751,
    "SF": 8.955848,
    "AG": 3.355028,
    "MI": 1.135140,
    "CC": 0.393846,
    "SCD": 1.761146,
    "PSNR": 15.500336,
    "VIF": 0.383629,
    "Qabf": 0.287892,
    "SSIM": 0.843002,
    "Q_MI": 0.244940,
    "Q_NCIE": 0.803494,
    "Nabf": 0.007498,
}


def _load_pair(ir: Path | None, vis: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    if ir is None:
        ir, vis = DATA / "msrs/test/ir/00004N.png", DATA / "msrs/test/vi/00004N.png"
        if not ir.exists():
            rng = np.random.default_rng(0)
            a = np.clip(np.cumsum(np.cumsum(rng.normal(size=(480, 640)), 0), 1) / 400 + 0.5, 0, 1)
            b = np.clip(a.T[:480, :480].mean() + rng.normal(0, 0.1, (480, 640)), 0, 1)
            return quantize8(a), quantize8(b), "synthetic 640x480"
    a = to_gray(read_image(ir).pixels)
    b = to_gray(read_image(vis).pixels)
    return quantize8(a), quantize8(b), f"{ir.name} ({a.shape[1]}x{a.shape[0]})"


def _time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ir", nargs="?", type=Path)
    parser.add_argument("vis", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    a, b, label = _load_pair(args.ir, args.vis)
    f = quantize8((a + b) / 2)
    print(f"pair: {label}, fused = average; best of {args.repeat}")
    print(f"{'metric':<10} {'ms':>8}  value")
    for name, metric in REGISTRY.items():
        if metric.kind == "clean":
            continue
        call = (lambda m=metric: m(f)) if metric.kind == "nr" else (lambda m=metric: m(f, a, b))
        seconds = _time(call, 1 if name in ("Q_P", "FMI_pixel") else args.repeat)
        print(f"{name:<10} {1e3 * seconds:8.1f}  {call():.6f}{'  (default)' if name in DEFAULT else ''}")
    total = _time(lambda: compute_metrics(f, a, b, DEFAULT), args.repeat)
    print(f"compute_metrics(DEFAULT: {len(DEFAULT)} metrics): {1e3 * total:.0f} ms per pair")
    _check_fixture()


def _check_fixture() -> None:
    ir, vis = DATA / "tno/test/ir/01.png", DATA / "tno/test/vi/01.png"
    if not ir.exists():
        return
    a = read_image(ir).pixels.astype(np.float64)
    b = read_image(vis).pixels.astype(np.float64)
    noise = np.random.RandomState(0).randn(*a.shape)
    f = np.clip(np.round(0.5 * a * 255 + 0.5 * b * 255 + 3 * noise), 0, 255) / 255
    got = compute_metrics(f, a, b, list(FIXTURE))
    worst = max(abs(got[k] - v) for k, v in FIXTURE.items())
    print(f"spec fixture (TNO 01, cdd): {len(FIXTURE)} metrics, max |difference| = {worst:.2e}")


if __name__ == "__main__":
    main()

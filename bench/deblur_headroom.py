"""How much deblurring gain is there to find? A yardstick for the ">= 2 dB over the pseudo-inverse" target.

    python bench/deblur_headroom.py --data ../shared/data --quality bench/results/quality-2026-11-30-mif-s3.json

For the benchmark's blurred sources (the same test pairs, seeds and 8-bit observations as bench/quality.py)
this prints, per split / scenario / source, the PSNR (dB, against the clean source) of

* ``observed``: the degraded file itself;
* ``start``: the pseudo-inverse A+ y that mmfuse starts from (Wiener deconvolution);
* ``oracle``: the best LINEAR restoration there is for that image: a Wiener filter built from the clean image's
  own power spectrum, |K| |X|^2 / (|K|^2 |X|^2 + N), with N the sensor noise plus the 8-bit rounding
  (1/255)^2 / 12. No method can know the clean spectrum, so this is an upper bound for linear deconvolution;
  beating it needs a non-linear image prior, as a learned model has;
* ``mmfuse``: the restored source from a ``bench/quality.py`` result file (``--quality``), when given.

Only sources observed at full resolution (scale 1) are listed: blur and blur + noise. Convolution is made
circular on the mirror-extended image, which is what the operator's reflect padding approximates.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import SCENARIOS, SPLITS, load_clean_pairs, observe, pseudo_inverse  # noqa: E402

from mmfuse_cli.metrics.pixel import psnr_reference  # noqa: E402
from mmfuse_cli.operators import Degradation, GaussianBlur  # noqa: E402
from mmfuse_cli.sampler import Observation  # noqa: E402


def _mirror(x: np.ndarray) -> np.ndarray:
    """``x`` (H, W) extended to (2H, 2W) by mirroring, so that a circular convolution acts like reflect padding."""
    h, w = x.shape
    return np.pad(x.astype(np.float64), ((0, h), (0, w)), mode="symmetric")


def oracle_linear_restoration(observed: np.ndarray, clean: np.ndarray, degradation: Degradation) -> np.ndarray:
    """Wiener deconvolution with the clean image's own power spectrum (H x W float, [0, 1] clipped).

    ``degradation`` must have scale 1. Both images are mirror-extended to 2H x 2W so that the blur is circular.
    """
    if degradation.scale != 1:
        raise ValueError("the oracle is defined for full-resolution observations (scale 1) only")
    h, w = clean.shape
    spectrum_x, spectrum_y = np.fft.fft2(_mirror(clean)), np.fft.fft2(_mirror(observed))
    if degradation.blur > 0:
        kernel = GaussianBlur(std=degradation.blur).transfer_function(2 * h, 2 * w).numpy()
    else:
        kernel = np.ones((2 * h, 2 * w))
    power = np.abs(spectrum_x) ** 2
    rounding = Observation(torch.from_numpy(observed)[None, None], degradation, bits=8).quantisation_std
    noise_power = (degradation.noise**2 + rounding**2) * (4 * h * w)  # per-frequency, unnormalised FFT
    estimate = np.real(np.fft.ifft2(kernel * power / (kernel**2 * power + noise_power) * spectrum_y))
    return np.clip(estimate[:h, :w], 0.0, 1.0).astype(np.float32)


def headroom(data: Path, split: str, scenario: str, limit: int, seed: int) -> dict[str, dict[str, float]]:
    """{side: {observed, start, oracle}} mean PSNRs (dB) over the split's benchmark pairs, scale-1 sides only."""
    sums: dict[str, dict[str, list[float]]] = {}
    for key, clean_a, clean_b in load_clean_pairs(data, split, limit):
        for side, clean, degradation in (("a", clean_a, SCENARIOS[scenario][0]), ("b", clean_b, SCENARIOS[scenario][1])):
            if degradation.scale != 1 or degradation.blur == 0:
                continue
            y = observe(clean, degradation, key, side, seed)
            row = sums.setdefault(side, {"observed": [], "start": [], "oracle": []})
            row["observed"].append(psnr_reference(y, clean))
            row["start"].append(psnr_reference(pseudo_inverse(y, degradation), clean))
            row["oracle"].append(psnr_reference(oracle_linear_restoration(y, clean, degradation), clean))
    return {side: {name: float(np.mean(values)) for name, values in row.items()} for side, row in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--splits", default="msrs,tno,mri_ct,mri_pet,mri_spect")
    parser.add_argument("--scenarios", default="blur,composite")
    parser.add_argument("--limit", type=int, default=6, help="pairs per split, as bench/quality.py --limit")
    parser.add_argument("--seed", type=int, default=0, help="as bench/quality.py --seed")
    parser.add_argument("--quality", type=Path, action="append", default=[], help="quality-*.json for the mmfuse column")
    args = parser.parse_args()

    restored: dict[str, dict] = {}
    for path in args.quality:
        result = json.loads(path.read_text())
        if result["meta"]["seed"] != args.seed or result["meta"]["limit"] != args.limit:
            parser.error(f"{path}: made with another --seed/--limit, its inputs are not these")
        restored.update(result["results"])

    print("| split | scenario | source | observed | start (A+ y) | oracle linear | oracle − start | mmfuse − start |")
    print("|---|---|---|---|---|---|---|---|")
    for split in args.splits.split(","):
        if split not in SPLITS:
            parser.error(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        for scenario in args.scenarios.split(","):
            for side, psnr in headroom(args.data, split, scenario, args.limit, args.seed).items():
                model = restored.get(split, {}).get("scenarios", {}).get(scenario, {}).get("mmfuse", {})
                gain = f"{model[f'psnr_{side}'] - psnr['start']:+.2f}" if f"psnr_{side}" in model else "-"
                print(
                    f"| {split} | {scenario} | {side} | {psnr['observed']:.2f} | {psnr['start']:.2f} | "
                    f"{psnr['oracle']:.2f} | {psnr['oracle'] - psnr['start']:+.2f} | {gain} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

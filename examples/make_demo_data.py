"""Generate a small demo set of clean infrared/visible-like pairs (no dataset images are shipped).

The visible images are crops of photographs that scikit-image ships (astronaut, coffee, chelsea, rocket);
the "infrared" partner is synthesised from the same scene: smoothed, contrast-compressed luminance with a few
warm blobs (objects the visible camera does not show), so the pair shares structure but differs in content, as
real IR/VIS pairs do.

Usage: python examples/make_demo_data.py demo/clean      (writes demo/clean/ir/*.png and demo/clean/vi/*.png)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage import data

from mmfuse_cli.io import rgb_to_ycbcr, write_image


def synthetic_infrared(rgb: np.ndarray, seed: int) -> np.ndarray:
    """A thermal-looking gray image (float32 [0, 1]) derived from an RGB scene."""
    rng = np.random.default_rng(seed)
    lum = rgb_to_ycbcr(rgb)[..., 0]
    ir = 0.15 + 0.45 * gaussian_filter(lum, 2.0) ** 1.5
    h, w = lum.shape
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(3):
        cy, cx, r = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(0.05, 0.12) * min(h, w)
        ir += 0.45 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return np.clip(ir, 0, 1).astype(np.float32)


def main(target: Path) -> None:
    scenes = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
    }
    (target / "ir").mkdir(parents=True, exist_ok=True)
    (target / "vi").mkdir(parents=True, exist_ok=True)
    for seed, (name, image) in enumerate(scenes.items()):
        rgb = image[:256, :320].astype(np.float32) / 255.0
        write_image(target / "vi" / f"{name}.png", rgb, 8)
        write_image(target / "ir" / f"{name}.png", synthetic_infrared(rgb, seed), 8)
    print(f"wrote {len(scenes)} pairs to {target}/ir and {target}/vi")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo/clean"))

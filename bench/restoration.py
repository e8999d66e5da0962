"""Restoration alone on images no model saw: mmfuse's restored source against BM3D told the noise (issue 26).

    python bench/restoration.py --limit 12                     # BSD68, noise 15/255 and 25/255, IVIF model
    python bench/restoration.py --limit 0 --sigmas 15 --models drfusion-ivif-s,drfusion-mif-s

Protocol (BSD68, ``natural/test/gray`` of the data root; neither shipped model trained on natural photographs):

* source a = the clean image plus white Gaussian noise of std sigma (float, no rounding: the setting of the
  published BSD68 figures, BM3D 31.07 / 28.57 dB and DnCNN 31.73 / 29.23 dB at 15 / 25 of 255);
* source b = a flat mid-gray image, stated clean: it carries nothing, so whatever mmfuse restores in a comes
  from a alone, as it does for BM3D;
* mmfuse is told a's noise exactly (``Degradation(noise=sigma, bits=0)``), BM3D is told the same sigma
  (``bm3d.bm3d(noisy, sigma_psd=sigma)``); both are scored by PSNR of the restored a against the clean image
  (``metrics.pixel.psnr_reference``, 0..255 scale), mean over the images.

Prints a Markdown table (PSNR, and seconds per image) and writes bench/results/restoration-<date>.json.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
from _common import DATA, load_model, write_result

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import read_image, to_gray
from mmfuse_cli.metrics.pixel import psnr_reference
from mmfuse_cli.pairing import list_images

HERE = Path(__file__).resolve().parent
BSD68 = "natural/test/gray"
PUBLISHED = {
    15: {"BM3D": 31.07, "DnCNN": 31.73, "DRUNet": 31.91},
    25: {"BM3D": 28.57, "DnCNN": 29.23, "DRUNet": 29.48},
}
"""Published BSD68 figures (dB), from the DnCNN README."""


def noisy_copy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``clean`` plus white Gaussian noise of std ``sigma`` (float32, not clipped, not rounded)."""
    rng = np.random.default_rng(seed)
    return (clean + rng.normal(0.0, sigma, clean.shape)).astype(np.float32)


def restore_mmfuse(fuser: Fuser, noisy: np.ndarray, sigma: float) -> np.ndarray:
    """mmfuse's restored source a, told the noise exactly, beside a flat clean source b."""
    flat = np.full_like(noisy, 0.5)
    out = fuser.fuse(np.clip(noisy, 0, 1), flat, Degradation(noise=sigma, bits=0), Degradation(bits=0))
    return out.a


def restore_bm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return np.clip(bm3d.bm3d(noisy, sigma_psd=sigma), 0, 1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=12, help="images of BSD68 (0 = all 68), evenly spaced")
    parser.add_argument("--sigmas", default="15,25", help="noise std in levels of 255, comma-separated")
    parser.add_argument(
        "--models",
        default="drfusion-ivif-s",
        help="checkpoints (NAME or PATH, or a training state.safetensors), comma-separated",
    )
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D (slow: seconds per image)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    files = list_images(args.data / BSD68)
    if args.limit:
        files = files[:: max(1, len(files) // args.limit)][: args.limit]
    images = [(p.stem, to_gray(read_image(p).pixels)) for p in files]
    fusers = {name: Fuser(load_model(name)) for name in args.models.split(",")}
    methods = ["noisy", *fusers, *([] if args.no_bm3d else ["BM3D"])]
    result: dict = {"date": str(date.today()), "images": [k for k, _ in images]}
    result["args"] = {k: str(v) for k, v in vars(args).items()}
    table: dict = {}
    for level in (int(s) for s in args.sigmas.split(",")):
        sigma = level / 255.0
        psnr: dict[str, list[float]] = {m: [] for m in methods}
        seconds: dict[str, list[float]] = {m: [] for m in methods}
        for i, (key, clean) in enumerate(images):
            noisy = noisy_copy(clean, sigma, 1000 * level + i)
            psnr["noisy"].append(psnr_reference(np.clip(noisy, 0, 1), clean))
            for name, fuser in fusers.items():
                start = time.perf_counter()
                restored = restore_mmfuse(fuser, noisy, sigma)
                seconds[name].append(time.perf_counter() - start)
                psnr[name].append(psnr_reference(restored, clean))
            if not args.no_bm3d:
                start = time.perf_counter()
                restored = restore_bm3d(noisy, sigma)
                seconds["BM3D"].append(time.perf_counter() - start)
                psnr["BM3D"].append(psnr_reference(restored, clean))
            print(
                f"  sigma {level}: {key} " + " ".join(f"{m} {psnr[m][-1]:.2f}" for m in methods), flush=True
            )
        table[level] = {
            m: {
                "psnr": float(np.mean(psnr[m])),
                "seconds": float(np.median(seconds[m])) if seconds[m] else 0.0,
            }
            for m in methods
        }
        table[level]["per_image"] = psnr
    result["table"] = {str(k): v for k, v in table.items()}

    print(f"\nBSD68, {len(images)} images, PSNR of the restored image (dB), mean; s/image median")
    print("| noise (of 255) | " + " | ".join(methods) + " | published BM3D / DnCNN / DRUNet (68 images) |")
    print("| --- | " + " | ".join("---" for _ in methods) + " | --- |")
    for level, row in table.items():
        cells = [
            f"{row[m]['psnr']:.2f}" + (f" ({row[m]['seconds']:.2f} s)" if row[m]["seconds"] else "")
            for m in methods
        ]
        pub = PUBLISHED.get(level)
        ref = " / ".join(f"{v:.2f}" for v in pub.values()) if pub else "-"
        print(f"| {level} | " + " | ".join(cells) + f" | {ref} |")
    write_result(args.out, "restoration", result, args.tag)


if __name__ == "__main__":
    main()

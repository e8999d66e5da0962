"""How much do sensor grain and band-limiting in the clean reference cap the deblurring gain? (TNO's test
images carry grain, and its infrared ones look resized.)

    python bench/grain_sensitivity.py --task ivif --only tno/train --pairs 8 --grain 0,1,2,3
    python bench/grain_sensitivity.py --task ivif --only tno/train --pairs 8 --grain 0 --zoom 1,1.5,2 --model A --model B
    python bench/grain_sensitivity.py --estimate ../shared/data/tno/test/vi --estimate ../shared/data/tno/train/vi

Takes held-out validation pairs of the training data (the same hold-out as ``mmfuse train``; ``--only`` keeps the
pairs whose key contains it), centre crops of up to 256 px, adds white Gaussian "grain" of std G 8-bit levels to
the CLEAN images (so the reference itself is grainy, like TNO's test images) or enlarges them by ``--zoom``
(bicubic, then the centre 256 px again: a band-limited reference, like a resized file), blurs them by std 1.5
and rounds to 8 bits as ``mmfuse degrade`` would, then prints per grain level and zoom the gain (dB) over the
pseudo-inverse start of

* each model (``--model``, repeatable; default the shipped checkpoint of the task), sources a and b;
* the oracle linear restoration of ``bench/deblur_headroom.py`` (Wiener with the clean image's own spectrum),
  source a: the best linear deconvolution of that image.

``--estimate DIR`` (repeatable) instead prints, per folder, the median over up to 15 evenly spaced images of
the grain already in them (a robust noise estimate, median(|HH|) / 0.6745 of the finest Haar diagonal band) and
of the share of their spectral energy above 0.3 cycles/pixel (small for images enlarged before they were saved).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from deblur_headroom import oracle_linear_restoration  # noqa: E402
from quality import SCENARIOS, observe, pseudo_inverse  # noqa: E402
from validation_scenarios import centre_crop, load_model  # noqa: E402

from mmfuse_cli.fuse import Fuser  # noqa: E402
from mmfuse_cli.io import is_image_file, read_image, to_gray  # noqa: E402
from mmfuse_cli.metrics.pixel import psnr_reference as psnr  # noqa: E402
from mmfuse_cli.train import TrainConfig, load_pairs, split_pairs, training_folders  # noqa: E402


def with_grain(clean: np.ndarray, levels: float, rng: np.random.Generator) -> np.ndarray:
    """``clean`` (H, W) in [0, 1] plus white Gaussian grain of std ``levels`` / 255, clipped to [0, 1]."""
    return np.clip(clean + rng.normal(0.0, levels / 255.0, clean.shape), 0.0, 1.0).astype(np.float32)


def enlarged(clean: np.ndarray, zoom: float) -> np.ndarray:
    """``clean`` (H, W) in [0, 1] enlarged ``zoom`` times (bicubic, clipped), its centre H x W cut out again."""
    if zoom == 1:
        return clean
    big = F.interpolate(
        torch.from_numpy(clean)[None, None], scale_factor=zoom, mode="bicubic", align_corners=False
    )
    big = big[0, 0].clamp(0.0, 1.0).numpy()
    h, w = clean.shape
    top, left = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[top : top + h, left : left + w])


def high_band_share(img: np.ndarray, cutoff: float = 0.3) -> float:
    """Share (%) of the spectral energy of ``img`` (H, W), mean removed, above ``cutoff`` cycles/pixel."""
    spectrum = np.abs(np.fft.fft2(img - img.mean())) ** 2
    radius = np.hypot(np.fft.fftfreq(img.shape[0])[:, None], np.fft.fftfreq(img.shape[1])[None, :])
    return float(100 * spectrum[radius > cutoff].sum() / spectrum.sum())


def grain_estimate(img: np.ndarray) -> float:
    """Noise std (8-bit levels) of ``img`` (H, W) in [0, 1]: median(|HH|) / 0.6745, finest Haar diagonal band."""
    x = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2].astype(np.float64)
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.median(np.abs(hh)) / 0.6745 * 255)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=["ivif", "mif"])
    parser.add_argument(
        "--estimate", action="append", default=[], help="print the grain of this folder's images"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="checkpoint NAME/PATH, repeatable (default: the task's shipped one)",
    )
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--only", default="", help="keep validation pairs whose key contains this")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--grain", default="0,1,2,3", help="grain std levels (8-bit units), comma-separated")
    parser.add_argument(
        "--zoom", default="1", help="enlargements of the clean crops, comma-separated (1 = none)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.estimate:
        print("| folder | images | grain (8-bit levels, median) | energy above 0.3 cycles/px (%, median) |")
        print("| --- | --- | --- | --- |")
        for folder in args.estimate:
            files = sorted(p for p in Path(folder).iterdir() if is_image_file(p))
            if not files:
                parser.error(f"{folder}: no images")
            chosen = [to_gray(read_image(p).pixels) for p in files[:: max(1, len(files) // 15)][:15]]
            grain = np.median([grain_estimate(img) for img in chosen])
            high = np.median([high_band_share(img) for img in chosen])
            print(f"| {folder} | {len(files)} | {grain:.2f} | {high:.2f} |")
        return 0
    if args.task is None:
        parser.error("--task is required (unless --estimate)")

    cfg = TrainConfig(task=args.task, data=args.data)
    pairs = load_pairs(training_folders(cfg), cfg.crop, log=lambda s: None, root=Path(args.data))
    val = [p for p in split_pairs(pairs, cfg.val_fraction)[1] if args.only in p.key][: args.pairs]
    if not val:
        parser.error(f"no validation pair's key contains {args.only!r}")
    models = args.model or [f"drfusion-{args.task}-s"]
    fusers = [Fuser(load_model(m, args.task)) for m in models]
    da, db = SCENARIOS["blur"]
    print(
        f"{len(val)} validation pairs of {args.task} ({args.only or 'all'}), blur 1.5, 8-bit observations\n"
    )
    print(
        "| grain (8-bit levels) | zoom | "
        + " | ".join(f"{m} gain a / b (dB)" for m in models)
        + " | oracle linear gain a (dB) |"
    )
    print("|" + " --- |" * (len(models) + 3))
    for level in (float(g) for g in args.grain.split(",")):
        for zoom in (float(z) for z in args.zoom.split(",")):
            gains = []
            for pair in val:
                rng = np.random.default_rng(args.seed)
                ca = with_grain(enlarged(centre_crop(pair.a, 256), zoom), level, rng)
                cb = with_grain(enlarged(centre_crop(pair.b, 256), zoom), level, rng)
                ya, yb = observe(ca, da, pair.key, "a", args.seed), observe(cb, db, pair.key, "b", args.seed)
                start_a, start_b = psnr(pseudo_inverse(ya, da), ca), psnr(pseudo_inverse(yb, db), cb)
                row = []
                for fuser in fusers:
                    out = fuser.fuse(ya, yb, da, db, bits=(8, 8))
                    row += [psnr(out.a, ca) - start_a, psnr(out.b, cb) - start_b]
                gains.append(row + [psnr(oracle_linear_restoration(ya, ca, da), ca) - start_a])
            mean = np.mean(gains, axis=0)
            cells = " | ".join(f"{mean[2 * i]:+.2f} / {mean[2 * i + 1]:+.2f}" for i in range(len(models)))
            print(f"| {level:g} | {zoom:g} | {cells} | {mean[-1]:+.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

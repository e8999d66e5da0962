"""How much does sensor grain in the clean reference cap the deblurring gain? (TNO's test images carry grain.)

    python bench/grain_sensitivity.py --task ivif --only tno/train --pairs 8 --grain 0,1,2,3
    python bench/grain_sensitivity.py --estimate ../shared/data/tno/test/vi --estimate ../shared/data/tno/train/vi

Takes held-out validation pairs of the training data (the same hold-out as ``mmfuse train``; ``--only`` keeps the
pairs whose key contains it), centre crops of up to 256 px, adds white Gaussian "grain" of std G 8-bit levels to
the CLEAN images (so the reference itself is grainy, like TNO's test images), blurs them by std 1.5 and rounds
to 8 bits as ``mmfuse degrade`` would, then prints per grain level the gain (dB) over the pseudo-inverse start of

* the model (``--model``, default the shipped checkpoint of the task), sources a and b;
* the oracle linear restoration of ``bench/deblur_headroom.py`` (Wiener with the clean image's own spectrum),
  source a: the best linear deconvolution of that (grainy) image.

``--estimate DIR`` (repeatable) instead prints the grain already in a folder's images: the median over up to 15
evenly spaced images of a robust noise estimate, median(|HH|) / 0.6745 of the finest Haar diagonal band.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

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


def grain_estimate(img: np.ndarray) -> float:
    """Noise std (8-bit levels) of ``img`` (H, W) in [0, 1]: median(|HH|) / 0.6745, finest Haar diagonal band."""
    x = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2].astype(np.float64)
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    return float(np.median(np.abs(hh)) / 0.6745 * 255)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["ivif", "mif"])
    parser.add_argument("--estimate", action="append", default=[], help="print the grain of this folder's images")
    parser.add_argument("--model", default=None, help="checkpoint NAME/PATH (default: the task's shipped one)")
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--only", default="", help="keep validation pairs whose key contains this")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--grain", default="0,1,2,3", help="grain std levels (8-bit units), comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.estimate:
        print("| folder | images | grain (8-bit levels, median) |")
        print("| --- | --- | --- |")
        for folder in args.estimate:
            files = sorted(p for p in Path(folder).iterdir() if is_image_file(p))
            if not files:
                parser.error(f"{folder}: no images")
            chosen = files[:: max(1, len(files) // 15)][:15]
            grain = np.median([grain_estimate(to_gray(read_image(p).pixels)) for p in chosen])
            print(f"| {folder} | {len(files)} | {grain:.2f} |")
        return 0
    if args.task is None:
        parser.error("--task is required (unless --estimate)")

    cfg = TrainConfig(task=args.task, data=args.data)
    pairs = load_pairs(training_folders(cfg), cfg.crop, log=lambda s: None, root=Path(args.data))
    val = [p for p in split_pairs(pairs, cfg.val_fraction)[1] if args.only in p.key][: args.pairs]
    if not val:
        parser.error(f"no validation pair's key contains {args.only!r}")
    fuser = Fuser(load_model(args.model or f"drfusion-{args.task}-s", args.task))
    da, db = SCENARIOS["blur"]
    print(f"{len(val)} validation pairs of {args.task} ({args.only or 'all'}), blur 1.5, 8-bit observations\n")
    print("| grain (8-bit levels) | model gain a / b (dB) | oracle linear gain a (dB) |")
    print("| --- | --- | --- |")
    for level in (float(g) for g in args.grain.split(",")):
        gains = []
        for pair in val:
            rng = np.random.default_rng(args.seed)
            ca = with_grain(centre_crop(pair.a, 256), level, rng)
            cb = with_grain(centre_crop(pair.b, 256), level, rng)
            ya, yb = observe(ca, da, pair.key, "a", args.seed), observe(cb, db, pair.key, "b", args.seed)
            start_a, start_b = psnr(pseudo_inverse(ya, da), ca), psnr(pseudo_inverse(yb, db), cb)
            out = fuser.fuse(ya, yb, da, db, bits=(8, 8))
            oracle = psnr(oracle_linear_restoration(ya, ca, da), ca)
            gains.append([psnr(out.a, ca) - start_a, psnr(out.b, cb) - start_b, oracle - start_a])
        a, b, oracle = np.mean(gains, axis=0)
        print(f"| {level:g} | {a:+.2f} / {b:+.2f} | {oracle:+.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

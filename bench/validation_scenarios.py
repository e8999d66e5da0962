"""Restored-source PSNR against the pseudo-inverse start, per benchmark scenario, on VALIDATION pairs.

    python bench/validation_scenarios.py --task ivif runs/ivif-q/state.safetensors drfusion-ivif-s
    python bench/validation_scenarios.py --task mif runs/mif-q/model.safetensors --pairs 8 --crop 256
    python bench/validation_scenarios.py --task mif drfusion-mif-s --only mri_pet/train/pet --scenarios blur
    python bench/validation_scenarios.py --task ivif drfusion-ivif-s --flip-ensemble

The quality benchmark (bench/quality.py) scores the test splits; choices made while training (which checkpoint
to ship, which setting to keep) must not look at them. This script answers "does the model beat its start by
the 2 dB the issue asks for, in each scenario?" on the training data's held-out validation pairs (the same
every-10th hold-out as ``mmfuse train``), degraded with bench/quality.py's scenarios and quantised to 8 bits like
the files ``mmfuse degrade`` writes.

Each MODEL is a checkpoint NAME or PATH, or a training ``state.safetensors`` (its config and ``model.*`` tensors).
Prints one Markdown table: per scenario and source, the start's PSNR and each model's gain over it (dB, mean
over pairs of the per-pair PSNR). Centre crops (``--crop``) keep it to about a minute on a 2-core CPU.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _common import DATA, SCENARIOS, load_model, observe, pseudo_inverse

from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.metrics.pixel import psnr_reference as psnr
from mmfuse_cli.training.config import TrainConfig
from mmfuse_cli.training.data import load_pairs, split_pairs, training_folders


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape
    th, tw = min(h, size) // 8 * 8, min(w, size) // 8 * 8
    top, left = (h - th) // 2, (w - tw) // 2
    return img[top : top + th, left : left + tw]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="checkpoint NAME/PATH or training state.safetensors")
    parser.add_argument("--task", choices=["ivif", "mif"], required=True)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--pairs", type=int, default=6, help="validation pairs, evenly spaced")
    parser.add_argument("--crop", type=int, default=256, help="centre crop side in pixels")
    parser.add_argument("--scenarios", default="noise,blur,composite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        default="",
        help="keep validation pairs whose key (a_dir/stem) contains this, e.g. mri_pet/train/pet",
    )
    parser.add_argument(
        "--flip-ensemble",
        action="store_true",
        help="add a column per model run with --flip-ensemble (4x the time)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    cfg = TrainConfig(task=args.task, data=args.data)
    pairs = load_pairs(training_folders(cfg), cfg.crop, log=lambda s: None, root=Path(args.data))
    _, val = split_pairs(pairs, cfg.val_fraction)
    val = [pair for pair in val if args.only in pair.key]
    if not val:
        parser.error(f"no validation pair's key contains {args.only!r}")
    val = val[:: max(1, len(val) // args.pairs)][: args.pairs]
    models = [load_model(m, args.task) for m in args.models]
    fusers = [Fuser(model) for model in models]
    names = [Path(m).parent.name + "/" + Path(m).name if Path(m).exists() else m for m in args.models]
    if args.flip_ensemble:  # the same loaded models, driven through the ensemble
        fusers += [Fuser(model, FuseConfig(flip_ensemble=True)) for model in models]
        names += [f"{name} flip-ensemble" for name in names]

    only = f" whose key contains {args.only!r}" if args.only else ""
    print(
        f"{len(val)} validation pairs of {args.task}{only}, centre crops <= {args.crop} px, 8-bit observations\n"
    )
    header = "| scenario | source | start (dB) | " + " | ".join(f"{n} gain" for n in names) + " |"
    print(header)
    print("|" + " --- |" * (3 + len(names)))
    for scenario in args.scenarios.split(","):
        da, db = SCENARIOS[scenario]
        start: dict[str, list[float]] = {"a": [], "b": []}
        gains = [{"a": [], "b": []} for _ in fusers]
        for pair in val:
            ca, cb = centre_crop(pair.a, args.crop), centre_crop(pair.b, args.crop)
            ya, yb = observe(ca, da, pair.key, "a", args.seed), observe(cb, db, pair.key, "b", args.seed)
            pa, pb = pseudo_inverse(ya, da), pseudo_inverse(yb, db)
            sa, sb = psnr(pa, ca), psnr(pb, cb)
            start["a"].append(sa)
            start["b"].append(sb)
            for fuser, gain in zip(fusers, gains):
                out = fuser.fuse(ya, yb, da, db)
                gain["a"].append(psnr(out.a, ca) - sa)
                gain["b"].append(psnr(out.b, cb) - sb)
        for side in ("a", "b"):
            cells = " | ".join(f"{np.mean(g[side]):+.2f}" for g in gains)
            print(f"| {scenario} | {side} | {np.mean(start[side]):.2f} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

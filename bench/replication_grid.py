"""Pixel-replicated sources: which test splits are stored as 2 x 2 blocks, and what a model does with that grid.

    python bench/replication_grid.py --data ../shared/data drfusion-mif-s runs/mif-g1/state.safetensors

The Harvard atlas's PET and SPECT images are 128 x 128 scans stored at 256 x 256 by repeating every pixel 2 x 2.
Their clean references therefore carry sharp block edges at the Nyquist frequency, which a blur of std 1.5 wipes
out of the observation (its transfer there is 1e-5). A model trained on crops that keep the block grid
(``mmfuse train --crop-align 2``) can learn to put the blocks back; one trained on crops at any offset cannot.

Part 1 prints, per test split and source, the RMS spread inside 2 x 2 blocks that start on even rows and columns,
and inside those that start on odd ones: 0 for the even grid means the source is pixel-replicated. Check your
own (undegraded) files the same way with ``--folder DIR`` (repeatable), before telling ``mmfuse run --a-grid 2``:

    python bench/replication_grid.py --folder my_archive/pet --folder my_archive/mri

Part 2 scores each MODEL (checkpoint NAME/PATH, or a training ``state.safetensors``) on source a of the
MRI + PET and MRI + SPECT test pairs, as PSNR gain (dB) of the restored source over its pseudo-inverse start,
twice: not told the grid, and told it (``Degradation(grid=2)``, what ``mmfuse run --a-grid 2`` does). The column
``start on grid`` is the start itself projected onto the 2 x 2 blocks: how much of the gain the projection
alone gives. Three versions of the same clean images:

* ``stored``: the files as they are (the block grid starts at the top-left pixel, as in every Harvard file);
* ``shifted``: the same images cut one pixel in from the top and the left, so the grid starts on odd rows and
  columns: a file cropped by an odd number of pixels, for which ``--a-grid 2`` would be a false claim;
* ``smooth``: each 128 x 128 scan enlarged with bicubic interpolation instead of replication: a functional image
  with no blocks at all, as another archive would store it (a false claim too).

The last two are the price of a wrong claim, and of a model that learned the grid from its training crops
(History 16 in docs/TRAINING.md: ``--crop-align 2``) and so assumes it everywhere.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality import SCENARIOS, SPLITS, load_clean_pairs, observe, pseudo_inverse  # noqa: E402
from validation_scenarios import load_model  # noqa: E402

from mmfuse_cli.fuse import Fuser  # noqa: E402
from mmfuse_cli.io import is_image_file, read_image, to_gray  # noqa: E402
from mmfuse_cli.metrics.pixel import psnr_reference as psnr  # noqa: E402
from mmfuse_cli.operators import project_to_grid  # noqa: E402
from mmfuse_cli.pixel_grid import block_spread  # noqa: E402


def variants(clean: np.ndarray) -> dict[str, np.ndarray]:
    """The three versions of one pixel-replicated clean image (H, W) in [0, 1], sizes multiples of 8."""
    h, w = clean.shape
    native = clean.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    smooth = F.interpolate(torch.from_numpy(native)[None, None], scale_factor=2, mode="bicubic", align_corners=False)
    return {
        "stored": clean,
        "shifted": clean[1 : 1 + h - 8, 1 : 1 + w - 8],
        "smooth": smooth[0, 0].clamp(0, 1).numpy(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="checkpoint NAME/PATH or training state.safetensors (task mif)")
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=6, help="test pairs per split, evenly spaced (0 = all)")
    parser.add_argument("--scenarios", default="blur,noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", action="append", default=[], help="check this folder's images instead (repeatable)")
    args = parser.parse_args(argv)
    data = Path(args.data)

    print("RMS spread inside 2 x 2 blocks (8-bit levels), blocks on even / odd rows and columns\n")
    if args.folder:
        print("| folder | images | even grid | odd grid |")
        print("| --- | --- | --- | --- |")
        for folder in args.folder:
            images = [to_gray(read_image(p).pixels) for p in sorted(Path(folder).iterdir()) if is_image_file(p)]
            if not images:
                parser.error(f"{folder}: no images")
            even = np.mean([block_spread(img, 2) for img in images]) * 255
            odd = np.mean([block_spread(img, 2, 1) for img in images]) * 255
            print(f"| {folder} | {len(images)} | {even:.2f} | {odd:.2f} |", flush=True)
        return 0
    print("| split | source | even grid | odd grid |")
    print("| --- | --- | --- | --- |")
    for split in SPLITS:
        pairs = load_clean_pairs(data, split, args.limit)
        for side, index in (("a", 1), ("b", 2)):
            even = np.mean([block_spread(p[index], 2) for p in pairs]) * 255
            odd = np.mean([block_spread(p[index], 2, 1) for p in pairs]) * 255
            print(f"| {split} | {side} | {even:.2f} | {odd:.2f} |", flush=True)
    if not args.models:
        return 0

    fusers = [Fuser(load_model(m, "mif")) for m in args.models]
    names = [Path(m).parent.name + "/" + Path(m).name if Path(m).exists() else m for m in args.models]
    columns = " | ".join(f"{n} gain | told: gain" for n in names)
    print("\nSource a: restored PSNR gain over the pseudo-inverse start (dB); told = given grid 2\n")
    print(f"| split | scenario | version | start (dB) | start on grid: gain | {columns} |")
    print("|" + " --- |" * (5 + 2 * len(names)))
    for split in ("mri_pet", "mri_spect"):
        pairs = load_clean_pairs(data, split, args.limit)
        versions_a = [variants(clean_a) for _, clean_a, _ in pairs]  # each pair's three versions, built once
        for scenario in args.scenarios.split(","):
            da, db = SCENARIOS[scenario]
            for version in ("stored", "shifted", "smooth"):
                start, projected, gains = [], [], [[] for _ in range(2 * len(fusers))]
                for (key, _, clean_b), versions in zip(pairs, versions_a):
                    ca = versions[version]
                    cb = clean_b[1 : 1 + ca.shape[0], 1 : 1 + ca.shape[1]] if version == "shifted" else clean_b
                    ya, yb = observe(ca, da, key, "a", args.seed), observe(cb, db, key, "b", args.seed)
                    pinv = pseudo_inverse(ya, da)
                    start.append(psnr(pinv, ca))
                    on_grid = project_to_grid(torch.from_numpy(pinv)[None, None], 2)[0, 0].numpy()
                    projected.append(psnr(on_grid, ca) - start[-1])
                    for i, fuser in enumerate(fusers):
                        for j, told in enumerate((da, replace(da, grid=2))):
                            gains[2 * i + j].append(psnr(fuser.fuse(ya, yb, told, db, bits=(8, 8)).a, ca) - start[-1])
                cells = " | ".join(f"{np.mean(g):+.2f}" for g in gains)
                row = f"| {split} | {scenario} | {version} | {np.mean(start):.2f} | {np.mean(projected):+.2f} | {cells} |"
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Blind estimation benchmark: how well mmfuse reads noise, blur and scale it was never told, and what that costs.

    python bench/estimation.py --data ../shared/data                       # all three parts
    python bench/estimation.py --parts accuracy --images 2                 # (a) only, quicker

(a) accuracy: clean test images of every split (--images per split and side), degraded as ``mmfuse degrade`` does
    on the grid noise {0, .01, .02, .03, .05, .08, .1} x blur {0, .5, 1, 1.5, 2, 2.5} x scale {1, 2, 4}; the
    resolver's estimates (what ``mmfuse run`` would use) against the truth: median and 90th-percentile absolute
    error per parameter, with the issue's targets.
(b) end to end: bench/quality.py's scenarios on --pairs pairs per split, mmfuse told the truth vs blind (nothing
    told: the resolver estimates) vs assume-clean; Qabf / VIF against the clean sources and the restored sources'
    PSNR (dB).
(c) real degraded pairs (drmf_ivif/val, drmf_mif/val of the data root; clean references exist): blind vs assume-clean.
(calibrate, only when asked: ``--parts calibrate``) the blur estimator's ``BLUR_CALIBRATION`` table, refitted from
    clean TRAINING images (3 per folder of CALIBRATION_FOLDERS): prints the table to paste into
    ``mmfuse_cli/degradation/estimate.py``.

Prints Markdown tables; writes bench/results/estimation-<date>.json. The estimator's constants were calibrated on
training images (tno/llvip/harvard train splits); every image here is from a test or validation split.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from _common import DATA, HELD_OUT_SPLITS, SCENARIOS, SPLITS, load_clean_pairs, observe, write_result

from mmfuse_cli.degradation.estimate import (
    NOISE_KNOTS,
    estimate_noise,
    infer_scales,
    total_edge_width,
)
from mmfuse_cli.degradation.resolve import DegradationResolver, SourceRequest
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import read_image, to_gray
from mmfuse_cli.metrics import compute_metrics
from mmfuse_cli.metrics.pixel import psnr_reference
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.pairing import list_images, pair_folders
from mmfuse_cli.weights.resolve import resolve_checkpoint

HERE = Path(__file__).resolve().parent
CALIBRATION_FOLDERS = {
    "ivif": ("tno/train/ir", "tno/train/vi", "llvip/train/ir", "llvip/train/vi"),
    "mif": (  # not PET / SPECT: they are stored as 2x2 blocks, which the pixel grid handles (--a-grid 2)
        "harvard/mri_ct/train/ct",
        "harvard/mri_ct/train/mri",
        "harvard/mri_pet/train/mri",
        "harvard/mri_spect/train/mri",
    ),
}
SHARP_PERCENTILE = 75.0
"""beta is this percentile of the clean images' readings: most of the model's own sharp images read as sharp."""
CALIBRATION_BLURS = (0.0, 1.0, 1.5, 2.0, 2.5)
NOISES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1)
BLURS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
SCALES = (1, 2, 4)
REAL = {
    "drmf_ivif": (
        "ivif",
        "drmf_ivif/val/ir",
        "drmf_ivif/val/vi",
        "drmf_ivif/val/ir_degraded",
        "drmf_ivif/val/vi_degraded",
    ),
    "drmf_mif": (
        "mif",
        "drmf_mif/val/ct",
        "drmf_mif/val/mri",
        "drmf_mif/val/ct_degraded",
        "drmf_mif/val/mri_degraded",
    ),
}


def blind_resolver(tmp: Path, task: str = "ivif") -> tuple[DegradationResolver, Path, Path]:
    """The resolver ``mmfuse run --task TASK`` builds when nothing is told, and two file paths in a folder with no
    sidecar."""
    resolver = DegradationResolver(SourceRequest(), SourceRequest(), task=task)
    return resolver, tmp / "a.png", tmp / "b.png"


def accuracy(data: Path, images: int, tmp: Path) -> dict:
    """Part (a): per parameter, absolute errors over the grid."""
    errors: dict[str, list[float]] = {"noise": [], "noise>0.04 (rel)": [], "blur [1, 2.5]": [], "blur 0": []}
    clean_noise: list[float] = []
    scale_exact = [0, 0]
    by_split: dict[str, list[float]] = {}
    for split in (s for s in SPLITS if s not in HELD_OUT_SPLITS):
        resolver, pa, pb = blind_resolver(tmp, SPLITS[split][0])
        pairs = load_clean_pairs(data, split, images)
        for key, a, b in pairs:
            for side, clean in (("a", a), ("b", b)):
                h, w = clean.shape[0] // 8 * 8, clean.shape[1] // 8 * 8
                clean = clean[:h, :w]
                for noise in NOISES:
                    for blur in BLURS:
                        for scale in SCALES:
                            truth = Degradation(blur=blur, scale=scale, noise=noise)
                            y = observe(clean, truth, key, side, 0)
                            ra, _ = resolver.resolve_pair(pa, y, 8, pb, clean, 8)
                            scale_exact[0] += int(infer_scales(y.shape, clean.shape) == (scale, 1))
                            scale_exact[1] += 1
                            got = ra.degradation
                            errors["noise"].append(abs(got.noise - noise))
                            by_split.setdefault(split, []).append(abs(got.noise - noise))
                            if noise > 0.04:
                                errors["noise>0.04 (rel)"].append(abs(got.noise - noise) / noise)
                            if 1.0 <= blur <= 2.5:
                                errors.setdefault(f"blur [1, 2.5] x{scale}", []).append(abs(got.blur - blur))
                                errors["blur [1, 2.5]"].append(abs(got.blur - blur))
                            if blur == 0:
                                errors["blur 0"].append(got.blur)
                            if noise == 0 and blur == 0 and scale == 1:
                                clean_noise.append(got.noise)
    table = {
        name: {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "n": len(v)}
        for name, v in errors.items()
    }
    table["clean images: noise read (max)"] = {
        "median": float(np.median(clean_noise)),
        "p90": float(np.max(clean_noise)),
        "n": len(clean_noise),
    }
    table["noise by split"] = {s: float(np.median(v)) for s, v in by_split.items()}
    table["scale exact"] = {
        "median": scale_exact[0] / scale_exact[1],
        "p90": scale_exact[0] / scale_exact[1],
        "n": scale_exact[1],
    }
    return table


def _score(fused, ra, rb, ca, cb) -> dict:
    m = compute_metrics(fused, ca, cb, ["Qabf", "VIF"])
    return {
        "Qabf": m["Qabf"],
        "VIF": m["VIF"],
        "psnr_a": psnr_reference(ra, ca),
        "psnr_b": psnr_reference(rb, cb),
    }


FIGURE_CELLS = ("tno/blur", "msrs/composite", "mri_ct/blur", "mri_pet/composite")
"""The (split / scenario) cells whose first pair the figure shows."""


def end_to_end(data: Path, pairs: int, tmp: Path, splits: list[str], examples: dict | None = None) -> dict:
    """Part (b): told vs blind vs assume-clean per split and scenario (means over pairs); the first pair's images of
    the FIGURE_CELLS go into ``examples`` when given."""
    fusers = {task: Fuser(load_checkpoint(resolve_checkpoint(None, task=task))) for task in ("ivif", "mif")}
    out: dict = {}
    for split in splits:
        task = SPLITS[split][0]
        resolver, pa, pb = blind_resolver(tmp, task)
        for scenario, (da, db) in SCENARIOS.items():
            cells: dict[str, list[dict]] = {"told": [], "blind": [], "assume-clean": []}
            seconds = []
            for key, ca, cb in load_clean_pairs(data, split, pairs):
                ya, yb = observe(ca, da, key, "a", 0), observe(cb, db, key, "b", 0)
                start = time.perf_counter()
                sa, sb = resolver.resolve_pair(pa, ya, 8, pb, yb, 8)
                seconds.append(time.perf_counter() - start)
                for mode, (ta, tb) in {
                    "told": (da, db),
                    "blind": (sa.degradation, sb.degradation),
                    "assume-clean": (Degradation(scale=da.scale), Degradation(scale=db.scale)),
                }.items():
                    res = fusers[task].fuse(ya, yb, ta, tb)
                    cells[mode].append(_score(res.fused, res.a, res.b, ca, cb))
                    if examples is not None and f"{split}/{scenario}" in FIGURE_CELLS:
                        shown = examples.setdefault(f"{split}/{scenario}", {"a": ya, "b": yb})
                        shown.setdefault(mode, res.fused)
                        if mode == "blind":
                            shown.setdefault("told_as", (ta, tb))
            out[f"{split}/{scenario}"] = {
                mode: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
                for mode, rows in cells.items()
            }
            out[f"{split}/{scenario}"]["estimate_seconds"] = float(np.median(seconds))
            print(
                f"  {split}/{scenario}: "
                + json.dumps(
                    {
                        m: round(v["Qabf"], 3)
                        for m, v in out[f"{split}/{scenario}"].items()
                        if isinstance(v, dict)
                    }
                ),
                flush=True,
            )
    return out


def real_pairs(data: Path, tmp: Path) -> dict:
    """Part (c): the real degraded validation pairs, blind vs assume-clean, against the clean references."""
    out: dict = {}
    for name, (task, clean_a, clean_b, deg_a, deg_b) in REAL.items():
        fuser = Fuser(load_checkpoint(resolve_checkpoint(None, task=task)))
        resolver = DegradationResolver(SourceRequest(), SourceRequest(), task=task)
        ya_dir = data / deg_a
        yb_dir = data / deg_b if (data / deg_b).is_dir() else data / clean_b
        rows: dict[str, list[dict]] = {"blind": [], "assume-clean": []}
        estimates = []
        for pair in pair_folders(ya_dir, yb_dir).pairs:
            ya_img, yb_img = read_image(pair.a), read_image(pair.b)
            ya, yb = to_gray(ya_img.pixels), to_gray(yb_img.pixels)
            ca = to_gray(read_image(next((data / clean_a).glob(pair.key + ".*"))).pixels)
            cb = to_gray(read_image(next((data / clean_b).glob(pair.key + ".*"))).pixels)
            sa, sb = resolver.resolve_pair(
                pair.a, ya_img.pixels, ya_img.bit_depth, pair.b, yb_img.pixels, yb_img.bit_depth
            )
            estimates.append((sa.degradation.describe(), sb.degradation.describe()))
            for mode, (ta, tb) in {
                "blind": (sa.degradation, sb.degradation),
                "assume-clean": (
                    Degradation(scale=sa.degradation.scale),
                    Degradation(scale=sb.degradation.scale),
                ),
            }.items():
                res = fuser.fuse(ya, yb, ta, tb)
                if res.a.shape != ca.shape or res.b.shape != cb.shape:
                    continue
                rows[mode].append(_score(res.fused, res.a, res.b, ca, cb))
        out[name] = {m: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for m, v in rows.items() if v}
        out[name]["pairs"] = len(rows["blind"])
        out[name]["estimates"] = estimates
    return out


def calibrate(data: Path, per_folder: int = 4) -> dict:
    """Per task, scale and noise knot: ``r^2 w^2 = alpha blur^2 + beta`` for the total edge width ``w`` that
    :func:`total_edge_width` reads (told the estimated noise) on clean TRAINING images of that task's model.
    ``alpha``: least-squares slope over the blurs of the median readings; ``beta``: the SHARP_PERCENTILE of the
    clean (blur 0) readings, so that what the model was trained on as sharp reads as sharp."""
    blurs = np.asarray(CALIBRATION_BLURS)
    table: dict = {}
    for task, folders in CALIBRATION_FOLDERS.items():
        images = []
        for folder in folders:
            files = list_images(data / folder)
            for path in files[:: max(1, len(files) // per_folder)][:per_folder]:
                x = to_gray(read_image(path).pixels)
                images.append((f"{folder}/{path.stem}", x[: x.shape[0] // 8 * 8, : x.shape[1] // 8 * 8]))
        table[task] = {}
        for scale in SCALES:
            fits = []
            for noise in NOISE_KNOTS:
                readings = []
                for blur in blurs:
                    row = []
                    for key, clean in images:
                        y = observe(
                            clean, Degradation(blur=float(blur), scale=scale, noise=noise), key, "a", 0
                        )
                        width = total_edge_width(y, estimate_noise(y, 8).value or 0.0).value
                        row.append(scale**2 * (width or 0.0) ** 2)
                    readings.append(row)
                medians = np.median(readings, axis=1)
                design = np.stack([blurs**2, np.ones_like(blurs)], axis=1)
                (alpha, _), *_ = np.linalg.lstsq(design, medians, rcond=None)
                beta = float(np.percentile(readings[0], SHARP_PERCENTILE))
                fits.append((round(float(alpha), 3), round(beta, 3)))
                print(
                    f"  {task} x{scale} noise {noise}: alpha {alpha:.3f} beta {beta:.3f} (medians {np.round(medians, 2)})"
                )
            table[task][scale] = tuple(fits)
    print("\nBLUR_CALIBRATION = {")
    for task, scales in table.items():
        print(f'    "{task}": {{')
        for scale, fits in scales.items():
            print(f"        {scale}: {fits},")
        print("    },")
    print("}", flush=True)
    return {"folders": CALIBRATION_FOLDERS, "per_folder": per_folder, "table": table}


def save_figure(examples: dict, path: Path) -> None:
    """One row per cell: the degraded sources, then the fused image told / blind / assume-clean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["a", "b", "told", "blind", "assume-clean"]
    fig, axes = plt.subplots(
        len(examples), len(cols), figsize=(3 * len(cols), 2.7 * len(examples)), squeeze=False
    )
    for i, (cell, shown) in enumerate(examples.items()):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(shown[col], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title({"a": "input a (degraded)", "b": "input b (degraded)"}.get(col, f"fused, {col}"))
        ta, tb = shown["told_as"]
        axes[i, 0].set_ylabel(
            f"{cell}\nblind: a blur {ta.blur:.2f} noise {ta.noise:.3f}\nb blur {tb.blur:.2f} noise {tb.noise:.3f}",
            fontsize=8,
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def _print_accuracy(table: dict) -> None:
    print("\n| parameter | median abs error | 90th percentile | n |\n| --- | --- | --- | --- |")
    for name, row in table.items():
        if name == "noise by split":
            continue
        print(f"| {name} | {row['median']:.4f} | {row['p90']:.4f} | {row['n']} |")
    print(
        "\nnoise median abs error by split: "
        + ", ".join(f"{s} {v:.4f}" for s, v in table["noise by split"].items())
    )


def _print_end_to_end(table: dict) -> None:
    print(
        "\n| split / scenario | told Qabf / VIF / PSNR a / b | blind | assume-clean | blind/told Qabf, VIF | est. s |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for cell, modes in table.items():
        f = lambda m: f"{m['Qabf']:.3f} / {m['VIF']:.3f} / {m['psnr_a']:.2f} / {m['psnr_b']:.2f}"  # noqa: E731
        t, b, c = modes["told"], modes["blind"], modes["assume-clean"]
        ratio = f"{b['Qabf'] / t['Qabf']:.1%}, {b['VIF'] / t['VIF']:.1%}"
        print(f"| {cell} | {f(t)} | {f(b)} | {f(c)} | {ratio} | {modes['estimate_seconds']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--parts", default="accuracy,end-to-end,real")
    parser.add_argument("--images", type=int, default=2, help="(a): clean pairs per split")
    parser.add_argument("--pairs", type=int, default=3, help="(b): pairs per split and scenario")
    parser.add_argument("--splits", default="tno,msrs,mri_ct,mri_pet,mri_spect", help="(b): splits")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--figure", type=Path, default=None, help="(b): also save a figure of a few pairs here"
    )
    args = parser.parse_args()
    parts = args.parts.split(",")
    result: dict = {"date": str(date.today()), "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        if "calibrate" in parts:
            result["calibrate"] = calibrate(args.data)
        if "accuracy" in parts:
            result["accuracy"] = accuracy(args.data, args.images, Path(tmp))
            _print_accuracy(result["accuracy"])
        if "end-to-end" in parts:
            examples: dict = {}
            result["end_to_end"] = end_to_end(
                args.data, args.pairs, Path(tmp), args.splits.split(","), examples
            )
            if args.figure is not None and examples:
                save_figure(examples, args.figure)
                print(f"wrote {args.figure}")
            _print_end_to_end(result["end_to_end"])
        if "real" in parts:
            result["real"] = real_pairs(args.data, Path(tmp))
            print(
                "\n"
                + json.dumps(
                    {k: {m: v for m, v in r.items() if m != "estimates"} for k, r in result["real"].items()},
                    indent=1,
                )
            )
    write_result(args.out, "estimation", result)


if __name__ == "__main__":
    main()

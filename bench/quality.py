"""Quality benchmark: mmfuse against the alternatives a practitioner would use, on the test splits of the data root.

    python bench/quality.py --data ../shared/data                      # all splits, 12 pairs each
    python bench/quality.py --data ../shared/data --splits msrs --limit 4 --methods mmfuse,baseline
    python bench/quality.py --data ../shared/data --splits mri_pet,mri_spect --declared-grid   # told PET/SPECT's grid

For each split and scenario the clean test pairs are degraded exactly as ``mmfuse degrade`` does (same code,
per-file seeds, 8-bit quantisation of the degraded files), every method restores/fuses, and the fused image is
scored against the CLEAN sources (our recommended protocol on synthetic degradations; see docs/METRICS.md).

Scenarios (a = IR / functional, b = visible / MRI):
    clean:      no degradation
    noise:      a, b: noise 0.05
    blur:       a, b: blur 1.5
    composite:  a: blur 1.5 + scale 2 + noise 0.05;  b: blur 1.5 + noise 0.05

Methods: mmfuse (shipped checkpoint of the task), baseline = average of the pseudo-inverses A1+ y1, A2+ y2
(docs/BENCHMARKS.md, Methods), and from bench/alternatives.py: max-abs, Laplacian pyramid and GFF on the
pseudo-inverses, and the classical cascade (known-sigma denoise -> bicubic -> Richardson-Lucy -> GFF). All methods
see luminance only.

Writes bench/results/quality-<date>.json and a Markdown report (tables with the best value in bold) to
--report (default bench/results/quality-<date>.md), plus one figure per scenario with --figures.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import alternatives
import numpy as np
from _common import KNOWN_GRIDS, SCENARIOS, SPLITS, load_clean_pairs, observe, pseudo_inverse

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.metrics import compute_metrics
from mmfuse_cli.metrics.pixel import psnr_reference
from mmfuse_cli.metrics.structural import ssim_reference
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.weights.resolve import resolve_checkpoint

HERE = Path(__file__).resolve().parent

FUSED_METRICS = ["Q_MI", "Q_NCIE", "Qabf", "Q_P", "Q_CB", "Q_Y", "EN", "SD", "SF", "VIF", "SSIM"]
LOWER_IS_BETTER: set[str] = set()
METHODS = ["mmfuse", "baseline", "max_abs", "laplacian", "gff", "cascade"]


def run_method(
    method: str, fuser: Fuser, ya, yb, da: Degradation, db: Degradation, grids: tuple[int, int] = (1, 1)
):
    """Returns (fused, restored_a or None, restored_b or None), all (H, W) float32 [0, 1].

    ``grids``: the sources' pixel grids, told to mmfuse only (the other methods have no use for them)."""
    if method == "mmfuse":
        da, db = replace(da, grid=grids[0]), replace(db, grid=grids[1])
        out = fuser.fuse(ya, yb, da, db)  # the observations are 8-bit files (Degradation.bits = 8)
        return out.fused, out.a, out.b
    if method == "cascade":
        fused, ra, rb = alternatives.cascade(ya, da, yb, db)
        return fused, ra, rb
    pa, pb = pseudo_inverse(ya, da), pseudo_inverse(yb, db)
    rule = {
        "baseline": alternatives.fuse_average,
        "max_abs": alternatives.fuse_max_abs,
        "laplacian": alternatives.fuse_laplacian_pyramid,
        "gff": alternatives.fuse_gff,
    }[method]
    restored = (pa, pb) if method == "baseline" else (None, None)
    return rule(pa, pb), *restored


def evaluate_split(
    split,
    data,
    limit,
    methods,
    scenarios,
    seed,
    fusers,
    log,
    reused: dict | None = None,
    declared_grid: bool = False,
) -> dict:
    """Scores of every method on one split. ``reused``: {scenario: {method: summary}} taken from an earlier run
    (same seed, limit and code, so the same degraded inputs) instead of recomputed; those methods run on the
    first pair only, for the figure. ``declared_grid``: mmfuse (only) is told the split's :data:`KNOWN_GRIDS`."""
    task = SPLITS[split][0]
    grid_a, grid_b = KNOWN_GRIDS.get(split, (1, 1)) if declared_grid else (1, 1)
    pairs = load_clean_pairs(data, split, limit)
    reused = reused or {}
    results: dict = {}
    examples: dict = {}
    for scenario in scenarios:
        da, db = SCENARIOS[scenario]
        per_method: dict[str, list[dict]] = {m: [] for m in methods}
        timing: dict[str, list[float]] = {m: [] for m in methods}
        for key, ca, cb in pairs:
            ya, yb = observe(ca, da, key, "a", seed), observe(cb, db, key, "b", seed)
            for method in methods:
                if method in reused.get(scenario, {}):
                    if key == pairs[0][0]:
                        fused, _, _ = run_method(method, fusers[task], ya, yb, da, db, (grid_a, grid_b))
                        examples.setdefault(scenario, {"a": ya, "b": yb, "clean_a": ca, "clean_b": cb})[
                            method
                        ] = fused
                    continue
                start = time.perf_counter()
                fused, ra, rb = run_method(method, fusers[task], ya, yb, da, db, (grid_a, grid_b))
                timing[method].append(time.perf_counter() - start)
                row = compute_metrics(fused, a=ca, b=cb, names=FUSED_METRICS)
                if ra is not None:
                    row.update(psnr_a=psnr_reference(ra, ca), psnr_b=psnr_reference(rb, cb))
                    row.update(ssim_a=ssim_reference(ra, ca), ssim_b=ssim_reference(rb, cb))
                per_method[method].append(row)
                if key == pairs[0][0]:
                    examples.setdefault(scenario, {"a": ya, "b": yb, "clean_a": ca, "clean_b": cb})[
                        method
                    ] = fused
        summary = {}
        for method, rows in per_method.items():
            if method in reused.get(scenario, {}):
                summary[method] = reused[scenario][method]
                continue
            keys = rows[0].keys()
            summary[method] = {k: _mean([r[k] for r in rows]) for k in keys}
            summary[method]["seconds"] = statistics.median(timing[method])
        results[scenario] = summary
        log(
            f"{split}/{scenario}: "
            + ", ".join(f"{m} Qabf {summary[m]['Qabf']:.3f} VIF {summary[m]['VIF']:.3f}" for m in methods)
        )
    return {"pairs": len(pairs), "task": task, "scenarios": results, "examples": examples}


def _mean(values):
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def markdown_tables(all_results: dict) -> str:
    lines = []
    for split, res in all_results.items():
        for scenario, summary in res["scenarios"].items():
            methods = list(summary)
            cols = FUSED_METRICS + [
                c for c in ("psnr_a", "psnr_b", "ssim_a", "ssim_b") if c in summary.get("mmfuse", {})
            ]
            lines.append(f"\n#### {split} ({res['pairs']} pairs) - {scenario}\n")
            lines.append("| method | " + " | ".join(cols) + " | s/pair |")
            lines.append("|---" * (len(cols) + 2) + "|")
            best = {}
            for c in cols:
                vals = [
                    summary[m].get(c)
                    for m in methods
                    if summary[m].get(c) is not None and math.isfinite(summary[m].get(c))
                ]
                if vals:
                    best[c] = min(vals) if c in LOWER_IS_BETTER else max(vals)
            for m in methods:
                cells = []
                for c in cols:
                    v = summary[m].get(c)
                    if v is None or not math.isfinite(v):
                        cells.append("-")
                    else:
                        text = f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
                        cells.append(f"**{text}**" if c in best and v == best[c] else text)
                lines.append(f"| {m} | " + " | ".join(cells) + f" | {summary[m]['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def save_figures(all_results: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for split, res in all_results.items():
        examples = res["examples"]
        if not examples:
            continue
        scenarios = list(examples)
        cols = ["a", "b", "baseline", "cascade", "mmfuse"]
        fig, axes = plt.subplots(
            len(scenarios), len(cols), figsize=(3 * len(cols), 2.6 * len(scenarios)), squeeze=False
        )
        for i, scenario in enumerate(scenarios):
            for j, col in enumerate(cols):
                ax = axes[i, j]
                img = examples[scenario].get(col)
                if img is not None:
                    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title({"a": "input a (degraded)", "b": "input b (degraded)"}.get(col, col))
                if j == 0:
                    ax.set_ylabel(scenario)
        fig.tight_layout()
        path = out_dir / f"quality-{split}.png"
        fig.savefig(path, dpi=60)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--limit", type=int, default=12, help="pairs per split (evenly spaced; 0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ivif-model", default=None)
    parser.add_argument("--mif-model", default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument(
        "--flip-ensemble", action="store_true", help="mmfuse run --flip-ensemble (4x the time)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--figures", type=Path, default=None, help="folder for one PNG per split")
    parser.add_argument(
        "--tag", default="", help="suffix of the output file names (to run splits in parallel)"
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="earlier quality-*.json (same --seed and --limit): take the --reuse-methods scores from it",
    )
    parser.add_argument(
        "--declared-grid",
        action="store_true",
        help="tell mmfuse the pixel grid of sources stored as replicated blocks (KNOWN_GRIDS: Harvard PET/SPECT)",
    )
    parser.add_argument(
        "--reuse-methods", default="cascade", help="methods whose scores --reuse takes (not the model)"
    )
    args = parser.parse_args()

    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    fusers = {}
    for task, name in (("ivif", args.ivif_model), ("mif", args.mif_model)):
        if any(SPLITS[s][0] == task for s in splits):
            model = load_checkpoint(resolve_checkpoint(name, task=task))
            fusers[task] = Fuser(
                model, FuseConfig(device="cpu", steps=args.steps, flip_ensemble=args.flip_ensemble)
            )
    previous: dict = {}
    if args.reuse:
        earlier = json.loads(args.reuse.read_text())
        if earlier["meta"]["seed"] != args.seed or earlier["meta"]["limit"] != args.limit:
            parser.error(f"{args.reuse}: made with another --seed/--limit, its scores are not comparable")
        keep = {m.strip() for m in args.reuse_methods.split(",")} - {"mmfuse"}
        previous = {
            split: {sc: {m: v for m, v in summ.items() if m in keep} for sc, summ in res["scenarios"].items()}
            for split, res in earlier["results"].items()
        }
    started = time.time()
    all_results = {}
    for split in splits:
        all_results[split] = evaluate_split(
            split,
            args.data,
            args.limit,
            methods,
            scenarios,
            args.seed,
            fusers,
            lambda s: print(s, file=sys.stderr, flush=True),
            reused=previous.get(split),
            declared_grid=args.declared_grid,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = date.today().isoformat() + (f"-{args.tag}" if args.tag else "")
    serialisable = {s: {k: v for k, v in r.items() if k != "examples"} for s, r in all_results.items()}
    meta = {
        "date": stamp,
        "seed": args.seed,
        "limit": args.limit,
        "minutes": round((time.time() - started) / 60, 1),
    }
    if args.declared_grid:
        meta["declared_grid"] = {s: KNOWN_GRIDS[s] for s in splits if s in KNOWN_GRIDS}
    if args.flip_ensemble:
        meta["flip_ensemble"] = True
    if args.reuse:
        meta["reused"] = {"from": args.reuse.name, "methods": args.reuse_methods}
    (args.out / f"quality-{stamp}.json").write_text(
        json.dumps({"meta": meta, "results": serialisable}, indent=2)
    )
    report = markdown_tables(all_results)
    (args.out / f"quality-{stamp}.md").write_text(report)
    print(report)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        for path in save_figures(all_results, args.figures):
            print(f"figure: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

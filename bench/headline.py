"""Headline tables from bench/quality.py results: mmfuse vs baseline vs cascade, and a model before/after.

    python bench/headline.py bench/results/quality-2026-11-30-ivif.json bench/results/quality-2026-11-30-mif.json
    python bench/headline.py NEW_IVIF.json NEW_MIF.json --before OLD_IVIF.json OLD_MIF.json

The first table is the one docs/BENCHMARKS.md opens with: per split x scenario, Qabf and VIF of mmfuse, the
"average of pseudo-inverses" baseline and the classical cascade (best in bold), the restored sources' PSNR gain
over their pseudo-inverse start (the baseline's restored sources *are* that start), and seconds per pair.
With ``--before``, a second table compares two runs of the same protocol (e.g. two checkpoints): the restoration
gain and Qabf/VIF of mmfuse in each, and how many cells meet the ">= 2 dB over the start" and "beats the
baseline on Qabf and VIF" targets.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

TARGET_GAIN_DB = 2.0
# Fused-image metrics where higher is better against the clean sources (no-reference EN/SD/SF reward noise).
QUALITY_METRICS = ["Q_MI", "Q_NCIE", "Qabf", "Q_P", "Q_CB", "Q_Y", "VIF", "SSIM"]


def load_results(paths: list[Path]) -> dict:
    """Merge the ``results`` of several quality-*.json files: {split: {"scenarios": {scenario: {method: row}}}}."""
    merged: dict = {}
    for path in paths:
        merged.update(json.loads(path.read_text())["results"])
    return merged


def restoration_gains(summary: dict) -> tuple[float, float] | None:
    """mmfuse's restored a, b PSNR minus the pseudo-inverse start's (dB); None where nothing is restored."""
    mm, base = summary.get("mmfuse", {}), summary.get("baseline", {})
    if "psnr_a" not in mm or "psnr_a" not in base:
        return None
    gains = mm["psnr_a"] - base["psnr_a"], mm["psnr_b"] - base["psnr_b"]
    return gains if all(math.isfinite(g) for g in gains) else None  # clean inputs: the start is exact


def _fmt(values: list[float | None], digits: int = 3) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    best = max(finite) if finite else None
    cells = []
    for v in values:
        if v is None or not math.isfinite(v):
            cells.append("-")
        else:
            text = f"{v:.{digits}f}"
            cells.append(f"**{text}**" if v == best else text)
    return " / ".join(cells)


def _gain_text(gains: tuple[float, float] | None) -> str:
    return "-" if gains is None else f"{gains[0]:+.1f}, {gains[1]:+.1f}"


def headline_table(results: dict) -> str:
    rows = [
        "| split | scenario | Qabf: mmfuse / baseline / cascade | VIF: mmfuse / baseline / cascade "
        "| restored a, b: mmfuse − pseudo-inverse start (dB) | s/pair: mmfuse / cascade |",
        "|---|---|---|---|---|---|",
    ]
    for split, res in results.items():
        for scenario, summary in res["scenarios"].items():
            methods = ("mmfuse", "baseline", "cascade")
            qabf = _fmt([summary.get(m, {}).get("Qabf") for m in methods])
            vif = _fmt([summary.get(m, {}).get("VIF") for m in methods])
            seconds = " / ".join(
                f"{summary[m]['seconds']:.2f}" if m in summary else "-" for m in ("mmfuse", "cascade")
            )
            rows.append(
                f"| {split} | {scenario} | {qabf} | {vif} | {_gain_text(restoration_gains(summary))} | {seconds} |"
            )
    return "\n".join(rows)


def before_after_table(before: dict, after: dict) -> str:
    rows = [
        "| split | scenario | restored a, b gain (dB): before → after | Qabf: before → after (baseline) "
        "| VIF: before → after (baseline) |",
        "|---|---|---|---|---|",
    ]
    counts = {
        "before": [0, 0, 0, 0],
        "after": [0, 0, 0, 0],
    }  # gain cells met, gain cells, beats-baseline, cells
    for split, res in after.items():
        for scenario, summary in res["scenarios"].items():
            old = before.get(split, {}).get("scenarios", {}).get(scenario)
            if old is None:
                continue
            for label, s in (("before", old), ("after", summary)):
                gains = restoration_gains(s)
                if gains is not None:
                    counts[label][0] += sum(g >= TARGET_GAIN_DB for g in gains)
                    counts[label][1] += 2
                beats = all(s["mmfuse"][k] > s["baseline"][k] for k in ("Qabf", "VIF"))
                counts[label][2] += beats
                counts[label][3] += 1
            base = summary["baseline"]
            rows.append(
                f"| {split} | {scenario} | {_gain_text(restoration_gains(old))} → {_gain_text(restoration_gains(summary))} "
                f"| {old['mmfuse']['Qabf']:.3f} → {summary['mmfuse']['Qabf']:.3f} ({base['Qabf']:.3f}) "
                f"| {old['mmfuse']['VIF']:.3f} → {summary['mmfuse']['VIF']:.3f} ({base['VIF']:.3f}) |"
            )
    lines = ["\n".join(rows), ""]
    for label in ("before", "after"):
        met, total, beats, cells = counts[label]
        lines.append(
            f"* {label}: restored source >= {TARGET_GAIN_DB:g} dB over its start in {met} of {total} degraded cells; "
            f"beats the baseline on Qabf and VIF in {beats} of {cells} cells"
        )
    return "\n".join(lines)


def cascade_table(results: dict) -> str:
    """Per scenario: on how many of :data:`QUALITY_METRICS` (summed over splits) mmfuse beats the cascade."""
    wins: dict[str, list[int]] = {}
    for res in results.values():
        for scenario, summary in res["scenarios"].items():
            if "cascade" not in summary or scenario == "clean":
                continue
            won = sum(summary["mmfuse"][m] > summary["cascade"][m] for m in QUALITY_METRICS)
            entry = wins.setdefault(scenario, [0, 0, 0])
            entry[0] += won
            entry[1] += len(QUALITY_METRICS)
            entry[2] += won > len(QUALITY_METRICS) / 2
    rows = [
        f"| scenario | metrics where mmfuse beats the cascade ({', '.join(QUALITY_METRICS)}; all splits) "
        "| splits where mmfuse wins most of them |",
        "|---|---|---|",
    ]
    splits = len(results)
    for scenario, (won, total, split_wins) in wins.items():
        rows.append(f"| {scenario} | {won} of {total} | {split_wins} of {splits} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", nargs="+", type=Path, help="quality-*.json files (merged)")
    parser.add_argument(
        "--before", nargs="+", type=Path, default=None, help="earlier quality-*.json to compare"
    )
    args = parser.parse_args()
    after = load_results(args.results)
    print(headline_table(after))
    print()
    print(cascade_table(after))
    if args.before:
        print()
        print(before_after_table(load_results(args.before), after))


if __name__ == "__main__":
    main()

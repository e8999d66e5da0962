"""Plot the loss and validation curves of training runs (runs/<task>/log.jsonl) into a PNG.

    python bench/plot_training.py runs/ivif runs/mif -o docs/training-curves.png
    python bench/plot_training.py runs/ivif+runs/ivif-b2 runs/mif+runs/mif-b2 -o docs/training-curves.png

``A+B`` draws a run continued in stages (B started ``--init-from`` A's export) on one step axis, B's steps
offset by A's last step, with a dashed line where the stage begins.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]


def read_stages(spec: str) -> tuple[str, list[dict], list[int]]:
    """``dir[+dir...]`` -> (title, records on one step axis, the steps where later stages begin)."""
    records: list[dict] = []
    starts: list[int] = []
    offset = 0
    for i, part in enumerate(spec.split("+")):
        log = read_log(Path(part))
        if i:
            starts.append(offset)
        records += [{**r, "step": r["step"] + offset} for r in log]
        offset = records[-1]["step"] if records else offset
    return " + ".join(Path(p).name for p in spec.split("+")), records, starts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="run folders; A+B for a run continued in stages")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/training-curves.png"))
    args = parser.parse_args()
    fig, axes = plt.subplots(len(args.runs), 2, figsize=(11, 4.2 * len(args.runs)), squeeze=False)
    for row, run in enumerate(args.runs):
        title, log, starts = read_stages(run)
        title = "\n".join(
            textwrap.wrap(title, 70)
        )  # long stage chains wrap instead of running into the next panel
        ax = axes[row, 0]
        for key in sorted({k for r in log for k in r if k.startswith("loss_")}):
            # records without the key (a stage's step-0 validation) and non-positive totals (log-L1 source
            # loss) have no place on a log axis
            points = [(r["step"], r[key]) for r in log if r.get(key) is not None and r[key] > 0]
            if points:
                ax.plot(*zip(*points), label=key[5:])
        ax.set_title(f"{title}\ntraining loss (mean over 100 steps)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        val = [r for r in log if "val_psnr_a" in r]
        ax = axes[row, 1]
        vsteps = [r["step"] for r in val]
        for key, style in (
            ("val_psnr_a", "-"),
            ("val_psnr_b", "-"),
            ("val_psnr_a_pinv", ":"),
            ("val_psnr_b_pinv", ":"),
        ):
            ax.plot(
                vsteps,
                [r[key] for r in val],
                style,
                label=key[4:].replace("_pinv", " (pseudo-inverse start)"),
            )
        ax.set_title(f"{title}\nvalidation PSNR of restored sources (dB)", fontsize=9)
        ax.set_xlabel("step")
        # below the axes: inside, it would hide the latest stage's curve
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        for start in starts:
            for ax in axes[row]:
                ax.axvline(start, color="gray", linestyle="--", linewidth=0.8)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Plot the loss and validation curves of training runs (runs/<task>/log.jsonl) into a PNG.

    python bench/plot_training.py runs/ivif runs/mif -o docs/training-curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/training-curves.png"))
    args = parser.parse_args()
    fig, axes = plt.subplots(len(args.runs), 2, figsize=(11, 3.4 * len(args.runs)), squeeze=False)
    for row, run in enumerate(args.runs):
        log = read_log(run)
        steps = [r["step"] for r in log]
        ax = axes[row, 0]
        for key in sorted({k for r in log for k in r if k.startswith("loss_")}):
            ax.plot(steps, [r.get(key) for r in log], label=key[5:])
        ax.set_title(f"{run.name}: training loss (mean over 100 steps)")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        val = [r for r in log if "val_psnr_a" in r]
        ax = axes[row, 1]
        vsteps = [r["step"] for r in val]
        for key, style in (("val_psnr_a", "-"), ("val_psnr_b", "-"), ("val_psnr_a_pinv", ":"), ("val_psnr_b_pinv", ":")):
            ax.plot(vsteps, [r[key] for r in val], style, label=key[4:].replace("_pinv", " (pseudo-inverse start)"))
        ax.set_title(f"{run.name}: validation PSNR of restored sources (dB)")
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

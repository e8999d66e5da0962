#!/usr/bin/env bash
# Quick start: make demo pairs, degrade them like a cheap sensor would, restore + fuse, and score the result.
# Usage: bash examples/quickstart.sh [WORKDIR]        (default WORKDIR: ./demo)
set -euo pipefail
work=${1:-demo}
here=$(cd "$(dirname "$0")" && pwd)

python "$here/make_demo_data.py" "$work/clean"

# 1. Degrade: the IR camera is low-resolution (x2), blurred and noisy; the visible camera is blurred and noisy.
#    Each output folder gets a degradation.json sidecar that `mmfuse run` picks up by itself.
mmfuse degrade "$work/clean/ir" -o "$work/degraded/ir" --blur 1.5 --scale 2 --noise 0.05 --seed 1
mmfuse degrade "$work/clean/vi" -o "$work/degraded/vi" --blur 1.5 --noise 0.05 --seed 2

# 2. Restore and fuse every pair (matched by file stem). Fused images + run.csv land in $work/fused.
mmfuse run "$work/degraded/ir" "$work/degraded/vi" -o "$work/fused" --save-sources

# 3. Score the fused images against the clean sources (we have them, because we degraded them ourselves).
mmfuse evaluate "$work/fused" --a "$work/clean/ir" --b "$work/clean/vi" -m EN,SD,SF,Qabf,VIF,SSIM -o "$work/metrics.csv"

# 4. Look at them: a static HTML page (thumbnails, degradations, metrics, sortable table, before/after slider).
mmfuse report "$work/fused"
echo "fused images: $work/fused   metrics: $work/metrics.csv   report: $work/fused/report/index.html"

#!/usr/bin/env bash
# Shell-pipeline recipes. Every mmfuse command writes data on stdout (with --json) and progress on stderr,
# and exits 0 (all done), 1 (some items failed; the rest finished) or 2 (usage error).
# Usage: bash examples/pipelines.sh [WORKDIR]   (expects WORKDIR/degraded/{ir,vi} from quickstart.sh)
set -euo pipefail
work=${1:-demo}

# 1. Pairs from `find`: one "a_path<TAB>b_path" line per pair on stdin. Here: every IR image whose
#    visible partner exists. JSON Lines on stdout, one object per pair.
find "$work/degraded/ir" -name '*.png' | sort | while read -r ir; do
  vi="$work/degraded/vi/$(basename "$ir")"
  [ -e "$vi" ] && printf '%s\t%s\n' "$ir" "$vi"
done | mmfuse run --pairs - -o "$work/fused_from_list" --json --quiet > "$work/run.jsonl"

# 2. Pick the failures out of the JSON Lines (python instead of jq, which may not be installed).
python - "$work/run.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
failed = [r for r in rows if r["status"] == "failed"]
print(f"{len(rows)} pairs, {len(failed)} failed")
for r in failed:
    print(r["item"], r["reason"])
PY

# 3. Parallel shards with xargs: split the pair list and run two mmfuse processes side by side
#    (each resumable with --skip-existing; outputs are written atomically, so shards never clash).
find "$work/degraded/ir" -name '*.png' | sort | while read -r ir; do
  printf '%s\t%s\n' "$ir" "$work/degraded/vi/$(basename "$ir")"
done > "$work/pairs.tsv"
split -n l/2 -d "$work/pairs.tsv" "$work/shard_"
ls "$work"/shard_* | xargs -P 2 -I{} sh -c 'mmfuse run --pairs {} -o "$1/fused_sharded" --skip-existing --quiet --csv {}.csv' _ "$work"

# 4. Evaluate as JSON Lines and keep only the mean row.
mmfuse evaluate "$work/fused_sharded" --a "$work/clean/ir" --b "$work/clean/vi" -m Qabf,VIF --json | tail -n 1

"""Where one pair's time goes, stage by stage, on one thread of the default path (issue 41, "profile first").

Usage: python bench/pair_profile.py A_DIR B_DIR [--pairs 4] [--backend auto]
Runs the run's own stages in sequence on each pair, without the reader / writer threads, and prints the median
seconds per stage: decode, resolve (the blind estimates), fuse (network calls and the sampler's correction:
pseudo-inverses, FFTs), the run.csv no-reference metrics, encode + write. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mmfuse_cli.batch.stages import RunOptions, make_resolver, score_fused
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import read_image, write_image
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.pairing import pair_folders
from mmfuse_cli.weights.resolve import resolve_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a_dir", type=Path)
    parser.add_argument("b_dir", type=Path)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    pairs = pair_folders(args.a_dir, args.b_dir).pairs[: args.pairs]
    fuser = Fuser(
        load_checkpoint(resolve_checkpoint(None, task="ivif", progress=False)),
        FuseConfig(backend=args.backend),
    )
    resolver = make_resolver(RunOptions(output_dir=Path(tempfile.mkdtemp())), None, fuser.task)
    stages: dict[str, list[float]] = {k: [] for k in ("decode", "resolve", "fuse", "metrics", "encode+write")}
    out = Path(tempfile.mkdtemp())
    for i, pair in enumerate(pairs):
        t0 = time.perf_counter()
        a, b = read_image(pair.a), read_image(pair.b)
        t1 = time.perf_counter()
        ra, rb = resolver.resolve_pair(pair.a, a.pixels, a.bit_depth, pair.b, b.pixels, b.bit_depth)
        t2 = time.perf_counter()
        fused = fuser.fuse_batch([a.pixels], [b.pixels], ra.degradation, rb.degradation)[0]
        t3 = time.perf_counter()
        score_fused(fused.fused)
        t4 = time.perf_counter()
        write_image(out / f"{pair.key}.png", fused.fused, 8)
        t5 = time.perf_counter()
        if i == 0:
            continue  # the first pair pays OpenVINO's compile for its shape
        for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            stages[name].append(seconds)
    total = sum(statistics.median(v) for v in stages.values())
    print(f"backend {fuser.backend.name}, {len(pairs) - 1} pairs after the first, median seconds per pair:")
    for name, values in stages.items():
        median = statistics.median(values)
        print(f"  {name:14s} {median:7.3f} s  {100 * median / total:5.1f} %")
    print(f"  {'total':14s} {total:7.3f} s")


if __name__ == "__main__":
    main()

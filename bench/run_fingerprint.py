"""Behaviour fingerprint of ``mmfuse run``: sha256 of every output file and of run.csv's rows without their
timing column, over a fixed set of runs on the demo pairs (examples/make_demo_data.py). Run it before and after a
refactor that must not change behaviour; the two printouts must be identical.

Usage: python bench/run_fingerprint.py WORKDIR        (WORKDIR is created; about a minute on 2 cores)
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNS = {  # name -> extra flags of `mmfuse run DEGRADED/ir DEGRADED/vi -o OUT`
    "blind-auto": [],
    "told-torch": ["--backend", "torch", "--a-noise", "0.05", "--b-noise", "0.05", "--a-blur", "1.5"],
    "clean-16bit-tif": ["--backend", "torch", "--assume-clean", "--format", "tif", "--bit-depth", "16"],
    "steps2-sources": ["--backend", "torch", "--steps", "2", "--save-sources", "--batch", "2"],
    "tiled": ["--backend", "torch", "--tile", "96"],
}
TIMING_COLUMNS = {"seconds"}


def mmfuse(*args: str) -> None:
    subprocess.run(["mmfuse", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def rows_digest(csv_path: Path) -> str:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]
    text = repr(sorted(sorted(row.items()) for row in rows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main(work: Path) -> None:
    clean, degraded = work / "clean", work / "degraded"
    if not degraded.exists():
        subprocess.run(
            [sys.executable, str(HERE.parent / "examples" / "make_demo_data.py"), str(clean)], check=True
        )
        mmfuse(
            "degrade",
            str(clean / "ir"),
            "-o",
            str(degraded / "ir"),
            "--blur",
            "1.5",
            "--scale",
            "2",
            "--noise",
            "0.05",
            "--seed",
            "1",
        )
        mmfuse(
            "degrade",
            str(clean / "vi"),
            "-o",
            str(degraded / "vi"),
            "--blur",
            "1.5",
            "--noise",
            "0.05",
            "--seed",
            "2",
        )
    for name, flags in RUNS.items():
        out = work / "out" / name
        mmfuse("run", str(degraded / "ir"), str(degraded / "vi"), "-o", str(out), "-q", *flags)
        for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "run.csv"):
            print(f"{name}/{path.relative_to(out)} {digest(path)}")
        print(f"{name}/run.csv rows {rows_digest(out / 'run.csv')}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

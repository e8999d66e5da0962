"""Every example in examples/ runs as documented (so they never rot)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("examples") / "demo"
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "quickstart.sh"), str(work)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def test_quickstart_fuses_and_evaluates(demo):
    fused = sorted(p.name for p in (demo / "fused").glob("*.png"))
    assert fused == ["astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]
    with open(demo / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5  # four pairs + the mean row
    assert all(float(r["Qabf"]) > 0 for r in rows)


def test_pipelines_script(demo):
    proc = subprocess.run(
        ["bash", str(EXAMPLES / "pipelines.sh"), str(demo)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 pairs, 0 failed" in proc.stdout
    assert len(list((demo / "fused_sharded").glob("*.png"))) == 4


def test_api_example(demo):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "api_example.py"), str(demo)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Qabf" in proc.stdout
    assert (demo / "astronaut_fused.png").exists()

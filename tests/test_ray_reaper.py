"""``kill -9`` of a driver that started its own Ray: the reaper ends Ray's processes (GCS, raylet, the dashboard and
runtime-env agents, workers) within seconds instead of the minute or two Ray itself takes. Real processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import astronaut, camera, write_tiny_checkpoint

from mmfuse_cli.io import write_image

pytest.importorskip("ray")
if not Path("/proc/self/stat").exists():
    pytest.skip("the reaper reads /proc", allow_module_level=True)


def _children() -> dict[int, int]:
    """pid -> ppid of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            out[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    return out


def _descendants(root: int) -> set[int]:
    table, found = _children(), {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found - {root}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_killed_ray_driver_leaves_no_ray_process_behind(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i in range(40):
        write_image(a / f"{i:02d}.png", np.roll(camera(128, 128), i, axis=1), 8)
        write_image(b / f"{i:02d}.png", np.roll(astronaut(128, 128), i, axis=0), 8)
    checkpoint = write_tiny_checkpoint(tmp_path)
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "mmfuse_cli",
        "run",
        a,
        b,
        "-o",
        out,
        "--model",
        checkpoint,
        "--engine",
        "ray",
    ]
    driver = subprocess.Popen(
        [str(x) for x in args],
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not list(out.glob("*.png")):
            time.sleep(0.2)
        assert list(out.glob("*.png")), "the run never started"
        ray_processes = {p for p in _descendants(driver.pid) if _alive(p)}
        ray_processes -= {
            p for p in ray_processes if b"mmfuse ray reaper" in Path(f"/proc/{p}/cmdline").read_bytes()
        }
        assert len(ray_processes) >= 4  # GCS, raylet, agents, workers
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in ray_processes):
        time.sleep(0.2)
    assert not [p for p in ray_processes if _alive(p)]

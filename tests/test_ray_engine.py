"""`mmfuse run --engine ray`: the same files and rows as the local engine, on a local Ray started here; an actor
killed mid-run and a driver killed mid-run (then `--skip-existing`) still end with the local engine's bytes."""

import csv
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import astronaut, camera, write_tiny_checkpoint
from typer.testing import CliRunner

from mmfuse_cli.batch.engines import EngineOptions
from mmfuse_cli.batch.stages import RunOptions
from mmfuse_cli.cli import app
from mmfuse_cli.degradation.resolve import SourceRequest
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.files import TEMP_SUFFIX
from mmfuse_cli.io import write_image
from mmfuse_cli.pairing import pair_folders

ray = pytest.importorskip("ray")
runner = CliRunner()
NOISE = ["--a-noise", "0.03", "--b-noise", "0.03", "-q"]
MARKER = f"MMFUSE_RAY_TEST_{os.getpid()}"


@pytest.fixture(scope="module")
def cluster():
    """A local Ray for this module (2 CPUs, no dashboard); the engine joins it instead of starting its own. Its
    processes inherit ``MARKER`` in their environment, so that the test finds its own actors only."""
    os.environ[MARKER] = "1"
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    os.environ.pop(MARKER, None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=2)


def _pairs(folder: Path, n: int, size: int = 64) -> tuple[Path, Path]:
    a, b = folder / "a", folder / "b"
    a.mkdir(parents=True, exist_ok=True)
    b.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_image(a / f"{i:03d}.png", np.roll(camera(size, size), i * 7, axis=1), 8)
        write_image(b / f"{i:03d}.png", np.roll(astronaut(size, size), i * 5, axis=0), 8)
    return a, b


@pytest.fixture(scope="module")
def long_run(tmp_path_factory, checkpoint):
    """24 pairs of 128x128 (long enough for a kill to land mid-run) and the local engine's outputs for them, with
    one torch thread like each actor."""
    root = tmp_path_factory.mktemp("long")
    a, b = _pairs(root, 24, size=128)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each actor: float sums depend on how many threads share them (README, Ray)
    try:
        assert _cli(a, b, "-o", root / "reference", "--model", checkpoint, *NOISE).exit_code == 0
    finally:
        torch.set_num_threads(threads)
    return a, b, root / "reference"


def _rows(path: Path, out: Path) -> list[dict]:
    """run.csv rows sorted by item, without the timing column and with the output folder made relative."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.pop("seconds")
        row["output"] = row["output"].replace(str(out), "OUT")
    return sorted(rows, key=lambda r: r["item"])


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _cli(*args):
    return runner.invoke(app, ["run", *[str(a) for a in args]])


def _worker_pids() -> list[int]:
    """PIDs of this module's mmfuse Ray actors (Ray titles an actor process ``ray::MapWorker(...FuseWorker...)``;
    other test runs on the same machine lack ``MARKER``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (
                    b"FuseWorker" in (entry / "cmdline").read_bytes()
                    and MARKER.encode() in (entry / "environ").read_bytes()
                ):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _wait_for(predicate, seconds: float = 120) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_local_and_ray_engines_write_the_same_bytes_and_rows(cluster, checkpoint, tmp_path):
    a, b = _pairs(tmp_path, 6)
    (a / "002.png").write_bytes(b"garbage")  # a corrupt pair in the middle
    write_image(a / "lonely.png", camera(64, 64), 8)  # no partner: a row from pairing, on the driver
    common = [a, b, "--model", checkpoint, "--save-sources", "--batch", "2", *NOISE]
    local, distributed = tmp_path / "local", tmp_path / "ray"
    first = _cli(*common, "-o", local)
    second = _cli(*common, "-o", distributed, "--engine", "ray")
    assert first.exit_code == second.exit_code == 1, second.output
    assert _files(distributed) == _files(local) and len(_files(local)) == 3 * 5  # fused + both sources
    rows = _rows(distributed / "run.csv", distributed)
    assert rows == _rows(local / "run.csv", local)
    assert [r["item"] for r in rows] == sorted(r["item"] for r in rows)  # run.csv sorted by item
    failed = {r["item"]: r["reason"] for r in rows if r["status"] == "failed"}
    assert "cannot decode" in failed["002"] and any("no partner" in reason for reason in failed.values())
    assert not list(distributed.rglob(f"*{TEMP_SUFFIX}"))


def test_skip_existing_exit_codes_and_option_errors(cluster, checkpoint, tmp_path, monkeypatch):
    a, b = _pairs(tmp_path, 3)
    out = tmp_path / "out"
    args = [a, b, "-o", out, "--model", checkpoint, "--engine", "ray", *NOISE]
    assert _cli(*args).exit_code == 0
    before = {r["item"]: r for r in _rows(out / "run.csv", out)}
    first = (out / "001.png").read_bytes()
    (out / "001.png").unlink()
    again = _cli(*args, "--skip-existing")
    assert again.exit_code == 0, again.output
    after = {r["item"]: r for r in _rows(out / "run.csv", out)}
    # the skipped pairs keep their rows of the first run, metrics and provenance included
    assert {k: r["status"] for k, r in after.items()} == {"000": "ok", "001": "ok", "002": "ok"}
    assert after["000"] == before["000"] and after["002"] == before["002"]
    assert (out / "001.png").read_bytes() == first

    bad = _cli(a, b, "-o", out, "--model", checkpoint, "--engine", "ray", "--actors", "0")
    assert bad.exit_code == 2 and "--actors must be >= 1" in bad.output
    assert _cli(a, b, "-o", out, "--model", checkpoint, "--address", "auto").exit_code == 2  # local engine
    monkeypatch.setattr("mmfuse_cli.batch.engines.ray_available", lambda: False)
    missing = _cli(*args)
    assert missing.exit_code == 2
    assert "--engine ray needs Ray: pip install 'mmfuse[ray]'" in missing.output


def test_engine_options_validate_themselves():
    with pytest.raises(InvalidValueError) as info:
        EngineOptions(engine="spark")
    assert info.value.field == "engine"
    with pytest.raises(InvalidValueError) as info:
        EngineOptions(engine="ray", gpus_per_actor=0)
    assert info.value.field == "gpus_per_actor"


def test_pool_size_follows_gpus_then_cpus():
    from mmfuse_cli.batch.ray_engine import pool_size

    ray_opts, cpu_config = EngineOptions(engine="ray"), FuseConfig(device="cpu")
    assert pool_size({"CPU": 16.0, "GPU": 2.0}, ray_opts, FuseConfig(), 100) == (2, 1.0)
    assert pool_size(
        {"CPU": 16.0, "GPU": 2.0}, EngineOptions("ray", gpus_per_actor=0.5), FuseConfig(), 100
    ) == (
        4,
        0.5,
    )
    assert pool_size({"CPU": 16.0, "GPU": 2.0}, ray_opts, cpu_config, 100) == (16, 0.0)
    assert pool_size({"CPU": 16.0}, EngineOptions("ray", actors=3), FuseConfig(), 2) == (2, 0.0)


def test_an_actor_killed_mid_run_is_retried_and_the_outputs_are_identical(
    cluster, checkpoint, long_run, tmp_path
):
    from mmfuse_cli.batch.driver import drive
    from mmfuse_cli.batch.ray_engine import RayEngine

    a, b, reference = long_run
    n = len(_files(reference))
    out = tmp_path / "out"
    noisy = SourceRequest(noise=0.03)
    options = RunOptions(output_dir=out, source_a=noisy, source_b=noisy)
    results: list = []
    job = threading.Thread(
        target=lambda: results.extend(
            drive(
                pair_folders(a, b).pairs,
                RayEngine(checkpoint, FuseConfig(), options, EngineOptions("ray", actors=2)),
                options,
            )
        )
    )
    job.start()
    try:
        assert _wait_for(lambda: len(list(out.glob("*.png"))) >= 2), "the run never started"
        pids = _worker_pids()
        assert pids, "no actor process found"
        os.kill(pids[0], signal.SIGKILL)
        done_at_kill = len(list(out.glob("*.png")))
    finally:
        job.join(timeout=300)
    assert done_at_kill < n, "the kill must land mid-run"
    assert [r.status for r in results] == ["ok"] * n
    assert _files(out) == _files(reference)
    assert not list(out.rglob(f"*{TEMP_SUFFIX}"))


def test_a_killed_driver_then_skip_existing_completes_the_set(cluster, checkpoint, long_run, tmp_path):
    a, b, reference = long_run
    n, out = len(_files(reference)), tmp_path / "out"
    common = [a, b, "--model", checkpoint, *NOISE]
    driver = subprocess.Popen(
        [sys.executable, "-m", "mmfuse_cli", "run", *map(str, common), "-o", str(out), "--engine", "ray"]
        + ["--address", cluster],
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: len(list(out.glob("*.png"))) >= 3, 180), "the run never started"
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    done_at_kill = len(list(out.glob("*.png")))
    assert 0 < done_at_kill < n, "the kill must land mid-run"
    assert _wait_for(lambda: not _worker_pids(), 60), "Ray did not stop the dead driver's actors"
    for name, data in _files(out).items():  # whatever exists under a final name is complete
        assert data == _files(reference)[name]
    resumed = _cli(*common, "-o", out, "--engine", "ray", "--skip-existing")
    assert resumed.exit_code == 0, resumed.output
    assert _files(out) == _files(reference)
    assert not list(out.rglob(f"*{TEMP_SUFFIX}"))
    statuses = [r["status"] for r in _rows(out / "run.csv", out)]
    assert statuses.count("skipped") >= done_at_kill and "failed" not in statuses

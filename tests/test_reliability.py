"""Fault injection with real files and real processes: nothing finished is ever lost or half-written."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import astronaut, camera, write_tiny_checkpoint

from mmfuse_cli.files import TEMP_SUFFIX
from mmfuse_cli.io import read_image, write_image

CLI = [sys.executable, "-m", "mmfuse_cli"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=1)


def _pairs(folder, n, size=96, colour=False):
    a, b = folder / "a", folder / "b"
    a.mkdir(parents=True, exist_ok=True)
    b.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        base = np.roll(camera(size, size), i * 7, axis=1)
        write_image(a / f"{i:03d}.png", np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1), 8)
        vis = np.roll(astronaut(size, size), i * 5, axis=0) if colour else base[::-1]
        write_image(b / f"{i:03d}.png", vis, 8)
    return a, b


def _run(args, **kw):
    return subprocess.run([*CLI, "run", *args], capture_output=True, text=True, timeout=600, **kw)


def _rows(path):
    with open(path) as handle:
        return {r["item"]: r for r in csv.DictReader(handle)}


def _outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_kill_9_then_skip_existing_equals_an_uninterrupted_run(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, 16, size=192)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    common = ["--model", str(checkpoint), "--a-noise", "0.03", "--b-noise", "0.03", "-q"]
    assert _run([str(a), str(b), "-o", str(reference), *common]).returncode == 0

    proc = subprocess.Popen(
        [*CLI, "run", str(a), str(b), "-o", str(resumed), *common], stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(resumed.glob("*.png"))) < 3:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(list(resumed.glob("*.png")))
    assert 0 < done_at_kill < 16, "the kill must land mid-run"
    for name, data in _outputs(resumed).items():  # whatever exists under a final name is complete
        assert data == _outputs(reference)[name]

    again = _run([str(a), str(b), "-o", str(resumed), *common, "--skip-existing"])
    assert again.returncode == 0, again.stderr
    assert _outputs(resumed) == _outputs(reference)  # byte-identical on CPU
    assert not list(resumed.rglob(f"*{TEMP_SUFFIX}"))
    statuses = [r["status"] for r in _rows(resumed / "run.csv").values()]
    assert statuses.count("skipped") >= done_at_kill and statuses.count("failed") == 0


def _mount_tmpfs(path, size, readonly=False):
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


def test_full_disk_stops_the_run_cleanly_and_keeps_finished_outputs(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, 8, size=128, colour=True)
    reference = tmp_path / "reference"
    common = ["--model", str(checkpoint), "--a-noise", "0.05", "-q"]
    assert _run([str(a), str(b), "-o", str(reference), *common]).returncode == 0
    one_file = max(len(v) for v in _outputs(reference).values())
    disk = tmp_path / "disk"
    preexec = None
    if not _mount_tmpfs(disk, 3 * one_file + 4096):
        # no tmpfs here: cap the size any single file may reach instead (EFBIG, a real kernel limit)
        import resource

        def preexec():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (one_file // 2, one_file // 2))

    try:
        out = disk / "out"
        report = tmp_path / "run.csv"
        proc = _run([str(a), str(b), "-o", str(out), "--report", str(report), *common], preexec_fn=preexec)
        assert proc.returncode == 1
        rows = _rows(report)
        assert len(rows) == 8
        failed = [r for r in rows.values() if r["status"] == "failed"]
        assert failed and any("cannot write" in r["reason"] for r in failed)
        assert all("not processed" in r["reason"] or "cannot write" in r["reason"] for r in failed)
        finished = _outputs(out)
        for name, data in finished.items():
            assert data == _outputs(reference)[name]
            read_image(out / name)
        assert not list(out.rglob(f"*{TEMP_SUFFIX}"))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_read_only_output_folder_is_a_clear_error(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, 3, size=64)
    ro = tmp_path / "ro"
    if not _mount_tmpfs(ro, "1m", readonly=True):
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        proc = _run([str(a), str(b), "-o", str(ro / "out"), "--model", str(checkpoint), "-q"])
        assert proc.returncode == 2
        assert "error:" in proc.stderr and "Read-only" in proc.stderr
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_mixed_formats_depths_and_channels_in_one_folder(tmp_path, checkpoint):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_image(a / "gray8.png", camera(64, 64), 8)
    write_image(b / "gray8.png", camera(64, 64)[::-1], 8)
    write_image(a / "deep.tif", camera(64, 64), 16)
    write_image(b / "deep.png", camera(64, 64)[:, ::-1], 16)
    write_image(a / "rgb.jpg", astronaut(64, 64), 8)
    write_image(b / "rgb.bmp", astronaut(64, 64), 8)
    rgba = np.concatenate([astronaut(64, 64), np.ones((64, 64, 1), np.float32)], axis=-1)
    import imageio.v3 as iio

    iio.imwrite(a / "alpha.png", (rgba * 255).astype(np.uint8))
    write_image(b / "alpha.png", camera(64, 64), 8)
    out = tmp_path / "out"
    proc = _run([str(a), str(b), "-o", str(out), "--model", str(checkpoint), "-q"])
    assert proc.returncode == 0, proc.stderr
    assert read_image(out / "deep.png").bit_depth == 16
    assert read_image(out / "gray8.png").bit_depth == 8
    assert read_image(out / "rgb.png").pixels.ndim == 3
    assert {r["status"] for r in _rows(out / "run.csv").values()} == {"ok"}


def test_duplicate_stems_and_missing_partners_are_reported(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, 2, size=64)
    write_image(a / "000.jpg", camera(64, 64), 8)  # 000.png and 000.jpg: ambiguous
    write_image(b / "lonely.png", camera(64, 64), 8)
    out = tmp_path / "out"
    proc = _run([str(a), str(b), "-o", str(out), "--model", str(checkpoint), "-q"])
    assert proc.returncode == 1
    rows = _rows(out / "run.csv")
    assert rows["001"]["status"] == "ok"
    assert "duplicate stem" in rows["000"]["reason"]
    assert any("no partner" in r["reason"] for r in rows.values())
    assert "error:" in proc.stderr


@pytest.mark.parametrize(
    "content,match",
    [
        ("{broken", "not valid JSON"),
        ('{"schema": "mmfuse.degradation", "schema_version": 1, "degradation": {"scale": 1000}}', "scale"),
        ('{"schema": "mmfuse.degradation", "schema_version": 1, "degradation": {"noise": -1}}', "noise"),
        (
            '{"schema": "mmfuse.degradation", "schema_version": 1, "degradation": {}, "extra": 1}',
            "unknown field",
        ),
        (
            '{"schema": "mmfuse.degradation", "schema_version": 1, "degradation": {}, "files": ["../../x"]}',
            "outside",
        ),
    ],
)
def test_bad_sidecars_are_rejected_before_any_work(tmp_path, checkpoint, content, match):
    a, b = _pairs(tmp_path, 2, size=64)
    (a / "degradation.json").write_text(content)
    proc = _run([str(a), str(b), "-o", str(tmp_path / "out"), "--model", str(checkpoint)])
    assert proc.returncode == 2
    assert match in proc.stderr and "degradation.json" in proc.stderr
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


def test_quiet_run_prints_nothing_but_errors(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, 2, size=64)
    proc = _run(
        [
            str(a),
            str(b),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(checkpoint),
            "--a-noise",
            "0.01",
            "--b-noise",
            "0.01",
            "-q",
        ]
    )
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""

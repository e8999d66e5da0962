"""The hostile-input battery (issue 38): each case with real files and real processes, the way it failed before."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import astronaut, camera, write_tiny_checkpoint

from mmfuse_cli.files import TEMP_SUFFIX
from mmfuse_cli.io import write_image
from mmfuse_cli.locks import exclusive

CLI = [sys.executable, "-m", "mmfuse_cli"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=1, head_std=None)


def _pairs(folder, names, size=64):
    a, b = folder / "a", folder / "b"
    for i, name in enumerate(names):
        for side, image in ((a, camera(size, size)), (b, astronaut(size, size))):
            path = side / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(path, np.roll(image, 3 * i, axis=1), 8)
    return a, b


def _mmfuse(*args, timeout=300, **kw):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, timeout=timeout, **kw)


def _run(checkpoint, *args, **kw):
    return _mmfuse("run", *args, "--model", checkpoint, "--a-noise", "0.02", "--b-noise", "0.02", **kw)


def _rows(path):
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        return list(csv.DictReader(handle))


# --- 3. a file name that is not UTF-8 -------------------------------------------------------------------------


def test_a_latin1_file_name_is_kept_losslessly_in_run_csv_and_json(tmp_path, checkpoint):
    latin = os.fsdecode(b"caf\xe9.png")
    a, b = _pairs(tmp_path, ["plain.png", latin])
    out = tmp_path / "out"
    done = _run(checkpoint, a, b, "-o", out, "--json", "-q")
    assert done.returncode == 0, done.stderr
    assert (out / latin).exists() and (out / "plain.png").exists()
    items = {row["item"] for row in _rows(out / "run.csv")}
    assert items == {"plain", os.fsdecode(b"caf\xe9")}  # the same bytes back
    lines = done.stdout.decode("utf-8").splitlines()  # valid UTF-8 on stdout
    assert {json.loads(line)["item"] for line in lines} == items
    estimated = _mmfuse("estimate", a, "-o", tmp_path / "est.csv", "-q")
    assert estimated.returncode == 0, estimated.stderr
    assert os.fsencode(latin) in (tmp_path / "est.csv").read_bytes()


# --- 4. an output folder that is an input folder --------------------------------------------------------------


def test_an_output_folder_equal_to_an_input_folder_is_refused_and_nothing_is_touched(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["x.png", "y.png"])
    before = {p.name: p.read_bytes() for p in a.iterdir()}
    refused = _run(checkpoint, a, b, "-o", a)
    assert refused.returncode == 2
    assert b"-o must not be the input folder" in refused.stderr
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before
    degrade = _mmfuse("degrade", a, "-o", a, "--noise", "0.05")
    assert degrade.returncode == 2 and b"-o must not be the input folder" in degrade.stderr
    assert {p.name: p.read_bytes() for p in a.iterdir()} == before


def test_an_output_that_would_overwrite_an_input_file_is_refused(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["x.png"])
    (tmp_path / "list.tsv").write_text(f"{a / 'x.png'}\t{b / 'x.png'}\n")
    refused = _run(checkpoint, "--pairs", tmp_path / "list.tsv", "-o", b)
    assert refused.returncode == 2 and b"is an input file" in refused.stderr


# --- 5. run.csv on interrupt ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_of_few_pairs_still_writes_run_csv(tmp_path, checkpoint, sig):
    a, b = _pairs(tmp_path, [f"{i:02d}.png" for i in range(12)], size=160)
    out = tmp_path / "out"
    args = [*CLI, "run", a, b, "-o", out, "--model", checkpoint, "--backend", "torch", "-q"]
    proc = subprocess.Popen([str(x) for x in args], stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(out.glob("*.png"))) < 2:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    rows = _rows(out / "run.csv")
    assert rows and all(r["status"] == "ok" for r in rows)
    assert all((out / f"{r['item']}.png").exists() for r in rows)
    assert b"lists the pairs finished so far" in err


# --- 6. two runs into one folder ------------------------------------------------------------------------------


def test_another_live_runs_temporary_files_are_left_alone_and_dead_ones_removed(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["x.png"])
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname().replace(".", "_")
    live = out / f".y.png.{host}-{os.getpid()}.abc{TEMP_SUFFIX}"  # this test process: alive
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = out / f".z.png.{host}-{gone.pid}.abc{TEMP_SUFFIX}"
    live.write_bytes(b"in flight")
    dead.write_bytes(b"left by kill -9")
    assert _run(checkpoint, a, b, "-o", out, "-q").returncode == 0
    assert live.exists() and not dead.exists()


def test_a_second_run_writing_the_same_run_csv_is_refused_naming_the_first(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["x.png"])
    out = tmp_path / "out"
    out.mkdir()
    with exclusive(out / "run.csv"):
        refused = _run(checkpoint, a, b, "-o", out)
        assert refused.returncode == 2
        assert f"pid {os.getpid()}".encode() in refused.stderr and b"its own --csv" in refused.stderr
        assert not (out / "x.png").exists()
        other = _run(checkpoint, a, b, "-o", out, "--csv", tmp_path / "shard.csv", "-q")
        assert other.returncode == 0  # a shard with its own table is welcome
    assert _run(checkpoint, a, b, "-o", out, "-q").returncode == 0  # and after the first one ends


# --- 7. --pairs names -----------------------------------------------------------------------------------------


def test_auto_renamed_pairs_never_collide_with_real_names(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["d1/x.png", "d2/x.png", "x_1.png"])
    lines = [f"{a / n}\t{b / n}" for n in ("d1/x.png", "d2/x.png", "x_1.png")]
    (tmp_path / "list.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    done = _run(checkpoint, "--pairs", tmp_path / "list.tsv", "-o", out, "-q")
    assert done.returncode == 0, done.stderr
    items = [r["item"] for r in _rows(out / "run.csv")]
    assert sorted(items) == ["x", "x_1", "x_2"]
    assert sorted(p.name for p in out.glob("*.png")) == ["x.png", "x_1.png", "x_2.png"]


# --- 9. restored sources beside a sub-folder named sources/a ---------------------------------------------------


def test_restored_sources_never_share_a_path_with_a_fused_image(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["k.png", "sources/a/k.png"])
    refused = _run(checkpoint, a, b, "-o", tmp_path / "out", "-r", "--save-sources")
    assert refused.returncode == 2 and b"would be both" in refused.stderr
    assert _run(checkpoint, a, b, "-o", tmp_path / "out2", "-r", "-q").returncode == 0  # no sources: no clash


# --- 10, 13. sidecars that are not small JSON files ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge", "deep", "digits"])
def test_a_hostile_sidecar_is_one_line_naming_it_and_never_hangs(tmp_path, checkpoint, kind):
    a, b = _pairs(tmp_path, ["x.png"])
    sidecar = a / "degradation.json"
    if kind == "fifo":
        os.mkfifo(sidecar)
    elif kind == "dev-zero":
        sidecar.symlink_to("/dev/zero")
    elif kind == "huge":
        sidecar.write_text('{"schema": "' + "x" * (2 << 20) + '"}')
    elif kind == "deep":
        sidecar.write_text("[" * 100_000 + "]" * 100_000)
    else:
        sidecar.write_text('{"schema": ' + "9" * 5000 + "}")
    started = time.time()
    refused = _run(checkpoint, a, b, "-o", tmp_path / "out", timeout=120)
    assert time.time() - started < 60
    assert refused.returncode == 2, refused.stderr
    errors = [line for line in refused.stderr.decode().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(sidecar) in errors[0] and "Traceback" not in refused.stderr.decode()


# --- 16. smaller cases ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "nan", "-1G", "256M"])
def test_a_max_memory_that_is_not_a_usable_budget_names_the_flag(tmp_path, checkpoint, value):
    a, b = _pairs(tmp_path, ["x.png"])
    refused = _run(checkpoint, a, b, "-o", tmp_path / "out", "--max-memory", value)
    assert refused.returncode == 2
    assert b"--max-memory" in refused.stderr and b"Traceback" not in refused.stderr


def test_minus_zero_max_memory_means_no_bound_like_zero(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["x.png"])
    assert _run(checkpoint, a, b, "-o", tmp_path / "out", "--max-memory", "-0", "-q").returncode == 0


def test_an_output_folder_inside_a_recursive_input_is_not_read_back_as_input(tmp_path, checkpoint):
    a, b = _pairs(tmp_path, ["x.png", "y.png"])
    out = a / "fused"
    for _ in range(2):
        done = _run(checkpoint, a, b, "-o", out, "-r", "-q")
        assert done.returncode == 0, done.stderr
    rows = _rows(out / "run.csv")
    assert sorted(r["item"] for r in rows) == ["x", "y"] and all(r["status"] == "ok" for r in rows)


# --- 14. heavy noise ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.2, 0.3])
def test_heavy_noise_gets_a_reading_not_a_silent_zero(tmp_path, sigma):
    from mmfuse_cli.degradation.estimate import estimate_noise

    rng = np.random.default_rng(3)
    noisy = np.round(np.clip(camera(256, 256) + rng.normal(0, sigma, (256, 256)), 0, 1) * 255) / 255
    reading = estimate_noise(noisy.astype(np.float32)).value
    assert reading is not None and 0.8 * sigma <= reading <= 1.1 * sigma  # clipping makes it err low
    pure = estimate_noise((rng.integers(0, 256, (256, 256)) / 255).astype(np.float32)).value
    assert pure is not None and pure > 0.2


def test_noise_that_cannot_be_read_is_a_warning_on_stderr(tmp_path, checkpoint):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_image(a / "x.png", np.zeros((64, 64), np.float32), 8)  # black: every tile clipped
    write_image(b / "x.png", camera(64, 64), 8)
    done = _mmfuse("run", a, b, "-o", tmp_path / "out", "--model", checkpoint)
    assert done.returncode == 0, done.stderr
    assert b"noise of source a could not be estimated" in done.stderr


# --- 16. more small cases -------------------------------------------------------------------------------------


def test_estimate_write_sidecar_that_cannot_be_written_is_one_line(tmp_path):
    a, _ = _pairs(tmp_path, ["x.png"])
    (
        a / "degradation.json"
    ).mkdir()  # the sidecar's name is taken by a folder: the write fails, even for root
    done = _mmfuse("estimate", a, "--write-sidecar")
    assert (
        done.returncode == 1
        and b"cannot write the sidecar" in done.stderr
        and b"Traceback" not in done.stderr
    )


def test_estimate_write_sidecar_into_an_unwritable_folder_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    a, _ = _pairs(tmp_path, ["x.png"])
    a.chmod(0o555)
    try:
        done = _mmfuse("estimate", a, "--write-sidecar")
    finally:
        a.chmod(0o755)
    assert (
        done.returncode == 1
        and b"cannot write the sidecar" in done.stderr
        and b"Traceback" not in done.stderr
    )


def test_estimate_output_that_is_a_directory_is_one_line(tmp_path):
    a, _ = _pairs(tmp_path, ["x.png"])
    done = _mmfuse("estimate", a, "-o", tmp_path)
    assert (
        done.returncode == 1 and b"cannot write the table" in done.stderr and b"Traceback" not in done.stderr
    )


def test_evaluate_with_no_metric_named_is_refused(tmp_path):
    a, b = _pairs(tmp_path, ["x.png"])
    done = _mmfuse("evaluate", a, "--a", a, "--b", b, "-m", "")
    assert done.returncode == 2 and b"names no metric" in done.stderr

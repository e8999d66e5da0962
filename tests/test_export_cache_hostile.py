"""The export cache ($MMFUSE_CACHE/export) against hostile entries, with real files and real processes: a FIFO or
a link to /dev/zero in place of an exported file, a directory in place of a file or of its JSON record, a 100k-deep
record, an unwritable cache, and the build folders a ``kill -9`` leaves behind. Each run finishes in seconds with
the bytes of a clean cache, and the entry is rebuilt."""

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import astronaut, camera, write_tiny_checkpoint

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.export import cached_entry
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import to_gray, write_image
from mmfuse_cli.model.network import FusionModel, ModelConfig
from mmfuse_cli.weights.resolve import sha256_file

pytest.importorskip("onnxruntime")

CLI = [sys.executable, "-m", "mmfuse_cli"]
HANG = 90
"""Seconds after which a run counts as hung (a clean run takes a few seconds, the export included)."""
QUICK = 30
"""A run over a hostile cache must finish in this many seconds (wall, interpreter start included)."""
DEG_A = Degradation(blur=1.5, scale=2, noise=0.05)
DEG_B = Degradation(blur=1.0, noise=0.05)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=1)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    (root / "a").mkdir()
    (root / "b").mkdir()
    write_image(root / "a" / "x.png", camera(48, 48), 8)
    write_image(root / "b" / "x.png", to_gray(astronaut(48, 48)), 8)
    return root / "a", root / "b"


def _run(pair, out, checkpoint, cache, backend, timeout=HANG, quiet=True):
    """The real CLI on the pair with MMFUSE_CACHE=cache: (completed process, wall seconds)."""
    env = {**os.environ, "MMFUSE_CACHE": str(cache)}
    args = [*CLI, "run", str(pair[0]), str(pair[1]), "-o", str(out), "--model", str(checkpoint)]
    start = time.monotonic()
    done = subprocess.run(
        [*args, "--backend", backend, *(["-q"] if quiet else [])],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    return done, time.monotonic() - start


def _outputs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def clean(tmp_path_factory, pair, checkpoint):
    """Per backend: a clean cache made by one run, and that run's output bytes."""
    made = {}

    def get(backend):
        if backend not in made:
            pytest.importorskip(backend)
            root = tmp_path_factory.mktemp(f"clean-{backend}")
            done, _ = _run(pair, root / "out", checkpoint, root / "cache", backend)
            assert done.returncode == 0, done.stderr
            made[backend] = root / "cache", _outputs(root / "out")
        return made[backend]

    return get


def _entry(cache, runtime):
    """The record and the file paths of the one ``runtime`` entry (``onnx-torch`` or ``openvino``) in ``cache``."""
    folder = cache / "export"
    (record,) = [p for p in folder.glob("*.json") if f"-{runtime}-" in p.name]
    return record, [folder / name for name in json.loads(record.read_text())["files"]]


def _assert_rebuilt(cache, runtime):
    record, files = _entry(cache, runtime)
    assert stat.S_ISREG(record.lstat().st_mode)
    data = json.loads(record.read_text())
    for path in files:
        assert stat.S_ISREG(path.lstat().st_mode), f"{path.name} is not a regular file"
        assert sha256_file(path) == data["files"][path.name]
    assert not [p for p in (cache / "export").iterdir() if p.name.startswith(".")], "leftovers in the cache"


def _fifo(path):
    path.unlink()
    os.mkfifo(path)


def _dev_zero(path):
    path.unlink()
    path.symlink_to("/dev/zero")


def _directory(path):
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")


def _deep(depth):
    def corrupt(path):
        path.write_text("[" * depth + "]" * depth)

    return corrupt


FILE, RECORD = "file", "record"
CASES = {
    "file-fifo": (FILE, _fifo),
    "file-dev-zero": (FILE, _dev_zero),
    "file-directory": (FILE, _directory),
    "record-directory": (RECORD, _directory),
    "record-fifo": (RECORD, _fifo),
    "record-dev-zero": (RECORD, _dev_zero),
    "record-100k-deep": (RECORD, _deep(100_000)),
    "record-10k-deep": (RECORD, _deep(10_000)),  # under the record's size limit: parsed, too deep
}


@pytest.mark.parametrize(
    "backend, case",
    [("onnxruntime", case) for case in CASES] + [("openvino", "file-fifo"), ("openvino", "record-directory")],
)
def test_a_hostile_cache_entry_is_rebuilt_quickly_with_the_same_output(
    tmp_path, pair, checkpoint, clean, backend, case
):
    cache, reference = clean(backend)
    shutil.copytree(cache, tmp_path / "cache", symlinks=True)
    runtime = "onnx-torch" if backend == "onnxruntime" else "openvino"
    record, files = _entry(tmp_path / "cache", runtime)
    which, corrupt = CASES[case]
    # the OpenVINO IR's .bin is read by OpenVINO itself, beside the .xml: corrupt that one
    target = record if which == RECORD else max(files, key=lambda p: p.suffix == ".bin")
    corrupt(target)

    done, seconds = _run(pair, tmp_path / "out", checkpoint, tmp_path / "cache", backend)
    assert done.returncode == 0, done.stderr
    assert seconds < QUICK
    assert _outputs(tmp_path / "out") == reference
    _assert_rebuilt(tmp_path / "cache", runtime)
    # and the next run trusts the rebuilt entry: no warning, same bytes
    again, _ = _run(pair, tmp_path / "again", checkpoint, tmp_path / "cache", backend)
    assert again.returncode == 0, again.stderr
    assert "rebuilding" not in again.stderr
    assert _outputs(tmp_path / "again") == reference


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = FusionModel(ModelConfig(base_channels=8, levels=3))
    for p in model.net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def _max_diff(x, y) -> float:
    return max(float(np.abs(x.fused - y.fused).max()), float(np.abs(x.a - y.a).max()))


def _unwritable_caches(tmp_path):
    """Cache folders nobody can write, root included: under a regular file; and, when not root, a chmod 555 one."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    yield blocker / "cache"
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        yield locked


def test_an_unwritable_cache_with_auto_falls_back_to_the_next_backend_with_one_note(
    tiny, tmp_path, monkeypatch
):
    a, b = camera(24, 40), astronaut(48, 80)
    reference = Fuser(tiny, FuseConfig(device="cpu", backend="torch")).fuse(a, b, DEG_A, DEG_B)
    for cache in _unwritable_caches(tmp_path):
        monkeypatch.setenv("MMFUSE_CACHE", str(cache))
        fuser = Fuser(tiny, FuseConfig(device="cpu", backend="auto"))
        assert fuser.backend.name == "torch"
        note = fuser.fallback_note
        assert note is not None and "\n" not in note
        assert str(cache / "export") in note and "using torch" in note
        assert _max_diff(fuser.fuse(a, b, DEG_A, DEG_B), reference) < 1e-6
    # a cache that works: no note
    monkeypatch.setenv("MMFUSE_CACHE", str(tmp_path / "fine"))
    assert Fuser(tiny, FuseConfig(device="cpu", backend="auto")).fallback_note is None


def test_an_unwritable_cache_with_auto_still_writes_the_output(tmp_path, pair, checkpoint):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done, _ = _run(pair, tmp_path / "out", checkpoint, blocker / "cache", "auto", quiet=False)
    assert done.returncode == 0, done.stderr
    assert list(_outputs(tmp_path / "out"))
    notes = [line for line in done.stderr.splitlines() if "backend auto: using" in line]
    assert len(notes) == 1 and notes[0].startswith("warning:"), done.stderr


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_an_unwritable_cache_with_a_named_backend_is_one_error_naming_the_folder(
    tmp_path, pair, checkpoint, backend
):
    pytest.importorskip(backend)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done, _ = _run(pair, tmp_path / "out", checkpoint, blocker / "cache", backend)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(blocker / "cache" / "export") in lines[0]
    assert "export cache" in lines[0]


def test_a_killed_export_leaves_no_build_folder_behind(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MMFUSE_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "export"
    # a real export killed with SIGKILL while it builds
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from mmfuse_cli.engine.export import cached_entry\n"
            "def build(folder):\n"
            "    (folder / 'net.onnx').write_bytes(b'half')\n"
            "    time.sleep(600)\n"
            "cached_entry('killed-entry', build, lambda files: files)\n",
        ],
        env={**os.environ, "MMFUSE_CACHE": str(tmp_path / "cache")},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(folder.glob(".killed-entry*/net.onnx")):
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    (killed,) = folder.glob(".killed-entry*")
    assert str(child.pid) in killed.name, "the build folder names its owner's pid"
    # one an older mmfuse left (no host in its name), untouched for two hours
    old = folder / f".old-entry.{child.pid}.build"
    old.mkdir()
    (old / "net.onnx").write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    # a live process's build folder (this one's) is left alone
    host = socket.gethostname().replace(".", "_")
    live = folder / f".live-entry.{host}-{os.getpid()}.x1y2.build"
    live.mkdir()

    def build(staging):
        (staging / "n.bin").write_bytes(b"1")
        return [staging / "n.bin"]

    assert cached_entry("other", build, len) == 1
    assert not killed.exists() and not old.exists()
    assert live.is_dir()
    live.rmdir()
    Fuser(tiny, FuseConfig(device="cpu", backend="onnxruntime"))  # the cache works as usual afterwards


def test_cached_entry_refuses_a_record_that_points_outside_its_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFUSE_CACHE", str(tmp_path / "cache"))
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not the cache's")
    built = []

    def build(folder):
        built.append(1)
        (folder / "n.bin").write_bytes(b"fresh")
        return [folder / "n.bin"]

    assert cached_entry("k", build, lambda files: files[0].read_bytes()) == b"fresh"
    record = tmp_path / "cache" / "export" / "k.json"
    data = json.loads(record.read_text())
    digest = sha256_file(secret)
    data["files"] = {str(secret): digest}
    data["bytes"] = {str(secret): secret.stat().st_size}
    record.write_text(json.dumps(data))
    assert cached_entry("k", build, lambda files: files[0].read_bytes()) == b"fresh"
    assert len(built) == 2


def test_an_export_cache_error_is_an_oserror_naming_the_folder(tmp_path, monkeypatch):
    from mmfuse_cli.engine.export import ExportCacheError

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MMFUSE_CACHE", str(blocker))
    with pytest.raises(ExportCacheError) as exc:
        cached_entry("k", lambda f: [], len)
    assert isinstance(exc.value, OSError)
    assert str(exc.value).startswith(f"{blocker / 'export'}: ")
    assert exc.value.filename == str(blocker / "export")

"""Writing an output never replaces what the user named: regular files are replaced atomically, devices, FIFOs
and open descriptors are written through, symlinks stay symlinks (their target gets the content), a directory is a
clear error. Real files, real FIFOs, real processes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import camera

from mmfuse_cli.files import (
    TEMP_SUFFIX,
    atomic_write_bytes,
    atomic_write_text,
    resolve_output,
    writes_in_place,
)
from mmfuse_cli.io import read_image, write_image


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _no_temporaries(*folders: Path) -> bool:
    return not any(p.name.endswith(TEMP_SUFFIX) for folder in folders for p in folder.iterdir())


def _read_fifo_in_thread(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    """A daemon thread that opens ``fifo`` for reading and collects everything until end-of-file (a test whose
    writer never opens the FIFO fails on the join timeout instead of hanging)."""
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, received


def test_a_regular_file_is_replaced_atomically_with_the_umask_mode(tmp_path):
    target = tmp_path / "rows.csv"
    target.write_text("old, longer content\n")
    os.chmod(target, 0o600)
    assert atomic_write_text(target, "new\n") == target
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == _umask_mode()
    assert _no_temporaries(tmp_path)
    assert not writes_in_place(target) and not writes_in_place(tmp_path / "not-yet.csv")


def test_dev_null_stays_a_character_device():
    assert writes_in_place(Path("/dev/null"))
    atomic_write_bytes(Path("/dev/null"), b"discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_is_written_through_to_its_reader(tmp_path):
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    thread, received = _read_fifo_in_thread(fifo)
    atomic_write_text(fifo, "item,status\na,ok\n")
    thread.join(timeout=10)
    assert not thread.is_alive(), "the reader never saw the write: the FIFO was replaced"
    assert received == [b"item,status\na,ok\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _no_temporaries(tmp_path)


def test_a_symlink_stays_a_link_and_its_target_in_another_folder_gets_the_content(tmp_path):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (elsewhere / "real.csv").write_text("old\n")
    link = here / "link.csv"
    link.symlink_to(Path("..") / "elsewhere" / "real.csv")  # relative, as `ln -s` makes them
    assert atomic_write_text(link, "new\n") == link
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "elsewhere", "real.csv")
    assert (elsewhere / "real.csv").read_text() == "new\n"
    assert stat.S_IMODE((elsewhere / "real.csv").stat().st_mode) == _umask_mode()
    assert _no_temporaries(here, elsewhere)


def test_a_chain_of_links_and_a_link_to_dev_null_are_followed(tmp_path):
    (tmp_path / "real.txt").write_text("")
    (tmp_path / "b").symlink_to("real.txt")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    atomic_write_text(tmp_path / "a", "through two links\n")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    assert (tmp_path / "real.txt").read_text() == "through two links\n"
    null_link = tmp_path / "null.csv"
    null_link.symlink_to("/dev/null")
    atomic_write_text(null_link, "gone\n")
    assert null_link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_dangling_symlink_is_written_at_the_path_it_points_to(tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to("made-by-the-write.csv")
    atomic_write_text(link, "created\n")
    assert link.is_symlink()
    assert (tmp_path / "made-by-the-write.csv").read_text() == "created\n"
    assert resolve_output(link) == tmp_path.resolve() / "made-by-the-write.csv"


def test_a_symlink_loop_and_a_directory_are_one_clear_error(tmp_path):
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    with pytest.raises(OSError, match="too many levels of symbolic links") as info:
        atomic_write_text(tmp_path / "loop1", "x")
    assert info.value.filename == str(tmp_path / "loop1")
    folder = tmp_path / "out"
    folder.mkdir()
    (tmp_path / "to-dir").symlink_to("out")
    for path in (folder, tmp_path / "to-dir"):
        with pytest.raises(IsADirectoryError) as info:
            atomic_write_text(path, "x")
        assert info.value.filename == str(path) and info.value.strerror == "is a directory, not a file"
    assert folder.is_dir() and list(folder.iterdir()) == [] and _no_temporaries(tmp_path)


def test_dev_stdout_redirected_to_a_file_keeps_the_file_and_the_order(tmp_path):
    """``-o /dev/stdout > out.txt``: the shell's file is written in order with what else goes to stdout, not
    swapped for a new file behind the shell's back."""
    out = tmp_path / "out.txt"
    code = (
        "from pathlib import Path; from mmfuse_cli.files import atomic_write_text;"
        "print('before'); atomic_write_text(Path('/dev/stdout'), 'rows\\n'); print('after')"
    )
    with open(out, "w") as handle:
        inode = os.fstat(handle.fileno()).st_ino
        subprocess.run([sys.executable, "-c", code], stdout=handle, check=True)
    assert out.read_text() == "before\nrows\nafter\n"
    assert out.stat().st_ino == inode
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert piped.stdout == "before\nrows\nafter\n"


def test_write_image_through_a_symlink_keeps_the_link(tmp_path):
    (tmp_path / "images").mkdir()
    link = tmp_path / "fused.png"
    link.symlink_to(tmp_path / "images" / "fused.png")
    write_image(link, camera(16, 16), 8)
    assert link.is_symlink()
    assert np.abs(read_image(tmp_path / "images" / "fused.png").pixels - camera(16, 16)).max() < 1 / 255


def _estimate_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "scene.png", camera(64, 64), 8)
    return folder


def test_estimate_output_through_a_link_leaves_the_link_intact(tmp_path, mmfuse_cmd):
    folder = _estimate_folder(tmp_path)
    (tmp_path / "results").mkdir()
    link = tmp_path / "latest.csv"
    link.symlink_to(tmp_path / "results" / "estimates.csv")
    done = subprocess.run([*mmfuse_cmd, "estimate", str(folder), "-o", str(link), "-q"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert link.is_symlink()
    rows = (tmp_path / "results" / "estimates.csv").read_text().splitlines()
    assert rows[0].startswith("item,status") and rows[1].startswith("scene,ok")


def test_estimate_output_to_a_fifo_reaches_its_reader(tmp_path, mmfuse_cmd):
    folder = _estimate_folder(tmp_path)
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    thread, received = _read_fifo_in_thread(fifo)
    done = subprocess.run([*mmfuse_cmd, "estimate", str(folder), "-o", str(fifo), "-q"], capture_output=True)
    thread.join(timeout=10)
    assert done.returncode == 0, done.stderr.decode()
    assert received and received[0].decode().splitlines()[1].startswith("scene,ok")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

"""One writer per table: an advisory lock next to a file that a run rewrites as it goes (run.csv).

Two runs sharding one output folder is a supported pattern (each with its own ``--csv``); two runs writing the
same table would each replace the other's rows. :func:`exclusive` takes an ``flock`` on ``.NAME.lock`` beside the
file for the run's duration and refuses, naming the other run, when another process holds it. The lock goes away
with its process, even after ``kill -9``.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LockedError(RuntimeError):
    """Another live process holds the lock; the message names the file and that process."""


def lock_path(path: Path) -> Path:
    """The lock file of ``path``: ``.NAME.lock`` in the same folder."""
    return path.parent / f".{path.name}.lock"


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the lock of ``path`` (a regular file the caller is about to rewrite) while the block runs.

    Raises:
        LockedError: another process holds it.
    """
    target = lock_path(Path(path))
    fd = os.open(target, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise LockedError(
                f"{path}: being written by another mmfuse run ({holder}); give each concurrent run its own --csv"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield
        finally:
            try:
                target.unlink()
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)


__all__ = ["LockedError", "exclusive", "lock_path"]

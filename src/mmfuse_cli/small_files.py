"""Reading the small files mmfuse trusts for settings (sidecars, export-cache records): regular files only, with
a size limit, never blocking.

A sidecar named ``degradation.json`` may be anything on disk: a FIFO (opening it for reading would wait forever
for a writer), a link to ``/dev/zero`` (reading it never ends), or a 100 MB file. :func:`read_small_file` opens
without blocking, checks what it opened, and reads at most ``limit`` bytes, so none of those can hang a run or
fill its memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SMALL_FILE = 1 << 20
"""Default size limit of a settings file: 1 MiB (a sidecar is a few hundred bytes)."""


class SmallFileError(OSError):
    """The file is not a regular file or is larger than the limit; the message names it and says which."""


def read_small_file(path: Path, limit: int = MAX_SMALL_FILE) -> bytes:
    """The bytes of the regular file at ``path`` (a symlink to one is fine), at most ``limit`` bytes.

    Raises:
        FileNotFoundError: nothing there.
        SmallFileError: a FIFO, device, socket or directory; or more than ``limit`` bytes.
        OSError: it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SmallFileError(f"{path}: not a regular file ({file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise SmallFileError(f"{path}: {info.st_size} bytes, larger than the {limit}-byte limit")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise SmallFileError(f"{path}: larger than the {limit}-byte limit")
        return b"".join(chunks)
    finally:
        os.close(fd)


def file_kind(mode: int) -> str:
    """What a ``stat`` mode says a path is, for a message: ``a FIFO``, ``a symbolic link`` (from ``lstat``)..."""
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a plain file"


__all__ = ["MAX_SMALL_FILE", "SmallFileError", "file_kind", "read_small_file"]

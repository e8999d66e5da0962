"""Writing output files without ever replacing what the user named.

Every file mmfuse writes (images, CSV / JSON tables, sidecars, reports, checkpoints) goes through
:func:`atomic_write_bytes`, which decides from what the path is now:

* **a regular file, or nothing yet**: the content goes to a hidden temporary file in the same folder, is
  fsync'ed, and is renamed over the final name, so a crash or a full disk never leaves a truncated file under the
  final name. The new file has the mode a plain ``open(path, "w")`` gives (0o666 minus the umask).
* **a symlink**: it is followed (as far as the kernel would) and its *target* is written as above, the temporary
  file in the target's folder; the link stays a link. A dangling link is written at the path it points to, as
  ``open()`` would, creating that file.
* **a device, FIFO or socket** (``/dev/null``, a named pipe, ``/dev/stdout`` as a terminal): written through,
  opened and written in place, with no rename and no fsync, so the node itself is never replaced.
* **an open descriptor of this process** (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``, whatever it
  refers to, a redirected file included): written to that descriptor, sharing its offset with the process's own
  output, as a shell redirection does.
* **a directory**: :class:`IsADirectoryError` naming the path; nothing is written.

A hard-linked regular file is replaced like any regular file: its other names keep the old content.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path

TEMP_SUFFIX = ".mmfuse-tmp"
"""Suffix of in-flight temporary files, named ``.NAME.HOST-PID.RANDOM.mmfuse-tmp`` (whose they are); only a killed
process (kill -9, power loss) can leave one behind."""

MAX_SYMLINKS = 40
"""Links followed before giving up with ELOOP (Linux's own limit)."""


STALE_FOREIGN_SECONDS = 3600.0
"""A temporary file another machine made (a Ray actor's, on a shared folder) is stale once this old."""


def _owner_tag() -> str:
    """``host-pid`` of this process, put in every temporary file's name: whose it is."""
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _is_stale(path: Path) -> bool:
    """A temporary file is stale when its owner is gone: a process of this host that no longer runs, or, made
    elsewhere (or unnamed, by an older mmfuse), one untouched for :data:`STALE_FOREIGN_SECONDS`."""
    parts = path.name.removesuffix(TEMP_SUFFIX).rsplit(".", 2)
    host, _, pid = parts[-2].rpartition("-") if len(parts) == 3 else ("", "", "")
    if host == socket.gethostname().replace(".", "_") and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False
    try:
        return time.time() - path.lstat().st_mtime > STALE_FOREIGN_SECONDS
    except FileNotFoundError:
        return False


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files killed processes left under ``folder`` (recursively); another live run's
    in-flight files (two runs sharding one output folder) are left alone. Returns how many were removed."""
    count = 0
    for stale in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if not _is_stale(stale):
            continue
        try:
            stale.unlink()
            count += 1
        except FileNotFoundError:
            pass
    return count


def _default_file_mode() -> int:
    """0o666 minus the process umask: what a plain ``open(path, "w")`` would create (mkstemp uses 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()


def atomic_write_bytes(path: Path, data: bytes | bytearray) -> Path:
    """Write ``data`` to ``path``: atomically for a regular (or new) file, through for anything else (see the
    module docstring). A temporary file is removed if anything fails.

    Returns:
        ``path`` as given (a symlink is not replaced by its target).

    Raises:
        IsADirectoryError: ``path`` is (or links to) a directory.
        OSError: the write failed (``filename`` and ``strerror`` say where and why).
    """
    path = Path(path)
    target = resolve_output(path)
    descriptor = _own_descriptor(target)
    if descriptor is not None:
        _write_descriptor(descriptor, data)
    elif _in_place(target, path):
        _write_through(target, data)
    else:
        _replace_atomically(target, data)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """UTF-8 text variant of :func:`atomic_write_bytes`.

    A file name that is not valid UTF-8 (``caf\xe9.png`` from a Latin-1 disk) reaches Python as a string with
    lone surrogates (``os.fsdecode``'s ``surrogateescape``); it is written back as its original bytes, so the
    text round-trips losslessly: ``open(path, encoding="utf-8", errors="surrogateescape")`` reads the same
    string, and ``os.fsencode`` of it is the file's real name."""
    return atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def writes_in_place(path: Path) -> bool:
    """True when :func:`atomic_write_bytes` writes ``path`` through (a device, FIFO, socket or open descriptor)
    instead of replacing it. Writing such a path twice delivers the content twice (a reader of a FIFO sees
    end-of-file after each write), so a caller that rewrites a file periodically should write it only once.

    Raises:
        IsADirectoryError: ``path`` is (or links to) a directory.
    """
    return _in_place(resolve_output(Path(path)), Path(path))


def _in_place(target: Path, path: Path) -> bool:
    """:func:`writes_in_place` of the resolved ``target``; errors name ``path``, the name the user gave."""
    if _in_proc(target.parent):
        return True
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    return not stat.S_ISREG(mode)


def resolve_output(path: Path) -> Path:
    """The absolute path a write to ``path`` lands on: each symlink followed in turn, as the kernel does (a
    dangling link gives the path it points to), stopping at the first name inside ``/proc``, where links
    (``/proc/self/fd/1`` behind ``/dev/stdout``) are open descriptors only the kernel can follow.

    Raises:
        OSError: (ELOOP) more than :data:`MAX_SYMLINKS` links.
    """
    current = os.path.abspath(path)
    for _ in range(MAX_SYMLINKS):
        folder = os.path.realpath(os.path.dirname(current))
        current = os.path.join(folder, os.path.basename(current))
        if _in_proc(Path(folder)) or not os.path.islink(current):
            return Path(current)
        current = os.path.join(folder, os.readlink(current))
    raise OSError(errno.ELOOP, "too many levels of symbolic links", str(path))


def _in_proc(folder: Path) -> bool:
    return folder == Path("/proc") or Path("/proc") in folder.parents


def _own_descriptor(target: Path) -> int | None:
    """N when ``target`` is ``/proc/<this pid>/fd/N`` (what ``/dev/stdout`` and ``/dev/fd/N`` lead to)."""
    if target.parent == Path(f"/proc/{os.getpid()}/fd") and target.name.isdigit():
        return int(target.name)
    return None


def _write_descriptor(descriptor: int, data: bytes | bytearray) -> None:
    """Write to this process's open ``descriptor``, after what Python has buffered for stdout and stderr."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):  # None, closed or broken: nothing of ours to order
            pass
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _write_through(target: Path, data: bytes | bytearray) -> None:
    """Open and write a device, FIFO or socket in place (a FIFO's open waits for a reader)."""
    with open(target, "wb") as handle:
        handle.write(data)


def _replace_atomically(target: Path, data: bytes | bytearray) -> None:
    """Temporary file next to ``target``, fsync'ed, renamed over it."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.{_owner_tag()}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise

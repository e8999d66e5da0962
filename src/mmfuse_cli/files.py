"""Atomic file writes: content goes to a hidden temporary file in the destination folder, is fsync'ed, and is
renamed over the final name, so a crash or a full disk never leaves a truncated file under the final name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".mmfuse-tmp"
"""Suffix of in-flight temporary files; only a killed process (kill -9, power loss) can leave one behind."""


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files a killed run left under ``folder`` (recursively). Returns how many."""
    count = 0
    for stale in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
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


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. The temporary file is removed if anything fails."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """UTF-8 text variant of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))

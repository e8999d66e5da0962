"""Exporting the network once per checkpoint for the fast CPU runtimes, and the on-disk cache of the exports.

The exported graph is :meth:`~mmfuse_cli.model.network.FusionUNet.denoise` on plain tensors: ``z``
``(N, 3, H, W)``, ``pinv1``, ``pinv2`` ``(N, 1, H, W)``, ``cond`` ``(N, cond_dim)`` -> ``e`` ``(N, 3, H, W)``,
``m`` ``(N, 1, H, W)``, with N, H and W dynamic (H, W multiples of the network's ``size_multiple``; the sampler
pads). Everything else of a step (the schedule, the observation correction, padding) stays in torch and is
shared with the torch backend.

Cache: ``$MMFUSE_CACHE`` (default ``$XDG_CACHE_HOME/mmfuse``, else ``~/.cache/mmfuse``), folder ``export/``. An
entry's name is the sha256 of the network's weights and config (the checkpoint's content, so a model changed in
memory gets its own entry), the runtime's name and version, and :data:`EXPORT_VERSION`. Each entry has a JSON
record (sidecar) naming every file it made with its size in bytes and sha256. An entry whose record or files are
missing, unreadable, not regular files (a FIFO, a link to ``/dev/zero``, a directory), of another size, too deeply
nested, or that do not match their record is rebuilt, never trusted and never fatal: nothing but a regular file of
the recorded size is ever opened for hashing, the record is read with a size limit and without blocking
(:func:`~mmfuse_cli.small_files.read_small_file`), and a node that is not a regular file is set aside (removed; a
directory first renamed to ``.NAME.broken-<ns>``) before the entry is written again. Files are written atomically
(:mod:`mmfuse_cli.files`).

An entry is built in a hidden folder ``.KEY.HOST-PID.RANDOM.build`` beside it; the build folders a killed
process left (its pid is gone from this host, or untouched for :data:`STALE_BUILD_SECONDS`) are removed the next
time the cache is used. A cache that cannot be written (read-only, not a folder, full) is an
:class:`ExportCacheError` naming the folder; ``backend="auto"`` then falls back to the next backend
(:func:`mmfuse_cli.engine.backend.make_backend`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from mmfuse_cli.files import atomic_write_bytes, atomic_write_text
from mmfuse_cli.model.network import FusionUNet
from mmfuse_cli.small_files import file_kind, read_small_file

logger = logging.getLogger("mmfuse.export")

EXPORT_VERSION = 1
"""Bump when the exported graph's inputs, outputs or export options change: older entries are then ignored."""
OPSET = 17
INPUT_NAMES = ("z", "pinv1", "pinv2", "cond")
OUTPUT_NAMES = ("e", "m")

MAX_RECORD_BYTES = 64 * 1024
"""Size limit of an entry's JSON record, in bytes (a record is a few hundred)."""
STALE_BUILD_SECONDS = 3600.0
"""A build folder untouched for this many seconds is stale whoever owns it (an export takes seconds)."""
BUILD_SUFFIX = ".build"
BROKEN_MARK = ".broken-"
_CHUNK = 1 << 20


class ExportCacheError(OSError):
    """The export cache folder cannot be written (read-only, not a folder, full disk): ``filename`` is the
    folder, ``strerror`` says what failed; ``str()`` is one line, ``FOLDER: problem``."""

    def __init__(self, folder: Path, cause: OSError):
        reason = cause.strerror or str(cause) or type(cause).__name__
        problem = f"cannot write the export cache ({reason}); set MMFUSE_CACHE to a writable folder"
        super().__init__(cause.errno or 0, problem, str(folder))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def cache_dir() -> Path:
    """The mmfuse cache folder, from the environment as it is now (``MMFUSE_CACHE`` wins)."""
    explicit = os.environ.get("MMFUSE_CACHE")
    if explicit:
        return Path(os.path.expandvars(os.path.expanduser(explicit)))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(os.path.expanduser(base)) / "mmfuse"


def network_sha256(net: FusionUNet) -> str:
    """sha256 of the network's config and weights (names, dtypes, shapes, bytes, in state-dict order)."""
    digest = hashlib.sha256(json.dumps(net.config.__dict__, sort_keys=True).encode())
    for name, tensor in net.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


class _Denoise(nn.Module):
    """:meth:`FusionUNet.denoise` as a module with plain tensor inputs (what the exporter traces)."""

    def __init__(self, net: FusionUNet):
        super().__init__()
        self.net = net

    def forward(self, z, pinv1, pinv2, cond):
        return self.net.denoise(z, pinv1, pinv2, cond)


def export_onnx(net: FusionUNet, path: Path) -> None:
    """Write ``net`` as an ONNX graph with dynamic N, H, W (TorchScript exporter: no onnxscript needed)."""
    k = net.size_multiple
    example = (
        torch.zeros(1, 3, 2 * k, 3 * k),
        torch.zeros(1, 1, 2 * k, 3 * k),
        torch.zeros(1, 1, 2 * k, 3 * k),
        torch.zeros(1, net.config.cond_dim),
    )
    image_axes = {0: "n", 2: "h", 3: "w"}
    axes = {name: image_axes for name in ("z", "pinv1", "pinv2", "e", "m")} | {"cond": {0: "n"}}
    module = _Denoise(net).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            example,
            str(path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            opset_version=OPSET,
        )


Builder = Callable[[Path], list[Path]]
"""Writes an entry's files into a (temporary) folder and returns them; the cache moves them into place."""

T = TypeVar("T")
"""What a cache entry loads as (:func:`cached_entry` returns ``load``'s result)."""


def cached_entry(key: str, build: Builder, load: Callable[[list[Path]], T]) -> T:
    """``load(files)`` of the cache entry ``key``, building (or rebuilding) it with ``build`` when it is missing,
    broken (see the module docstring), does not match its record, or fails to load. Stale build folders are
    removed first.

    Returns:
        whatever ``load`` returns for a valid entry.

    Raises:
        ExportCacheError: the entry must be built and the cache folder cannot be written.
    """
    folder = cache_dir() / "export"
    remove_stale_builds(folder)
    files, problem = _valid_files(folder, key)
    if files is not None:
        try:
            return load(files)
        except Exception as exc:  # a file that hashes right but the runtime rejects: rebuild once
            problem = f"failed to load ({exc})"
    if problem:
        logger.warning("export cache entry %s %s; rebuilding", key, problem)
    try:
        names = _build_entry(folder, key, build)
    except ExportCacheError:
        raise
    except OSError as exc:
        raise ExportCacheError(folder, exc) from exc
    return load([folder / name for name in names])


def _build_entry(folder: Path, key: str, build: Builder) -> list[str]:
    """Build entry ``key`` in a fresh build folder and move it into place, its record last; its file names."""
    _set_aside(folder, want_folder=True)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.{_owner_tag()}.", suffix=BUILD_SUFFIX, dir=folder))
    try:
        digests, sizes = {}, {}
        for path in build(staging):
            final = folder / f"{key}{''.join(path.suffixes) or '.bin'}"
            data = path.read_bytes()
            _set_aside(final)  # a FIFO or a link to a device would be written through, a directory refused
            atomic_write_bytes(final, data)
            digests[final.name], sizes[final.name] = hashlib.sha256(data).hexdigest(), len(data)
        sidecar = folder / f"{key}.json"
        _set_aside(sidecar)
        record = {"key": key, "files": digests, "bytes": sizes}
        atomic_write_text(sidecar, json.dumps(record, indent=1) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return list(digests)


def _valid_files(folder: Path, key: str) -> tuple[list[Path] | None, str | None]:
    """``(files, None)`` when the entry's record parses and every file it names is a regular file of the recorded
    size and sha256; else ``(None, what is wrong)``, the problem ``None`` when nothing is cached at all."""
    sidecar = folder / f"{key}.json"
    try:
        raw = read_small_file(sidecar, MAX_RECORD_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as exc:
        return None, f"has an unreadable record ({exc})"
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested too deep
        return None, "has a record that is not valid JSON"
    entries = _recorded_files(record, key)
    if entries is None:
        return None, "has a record of another format (an older mmfuse's, or altered)"
    for name, (digest, size) in entries.items():
        problem = _check_file(folder / name, size, digest)
        if problem:
            return None, problem
    return [folder / name for name in entries], None


def _recorded_files(record: object, key: str) -> dict[str, tuple[str, int]] | None:
    """``{file name: (sha256, bytes)}`` of a parsed record of entry ``key``, or ``None`` when it is malformed or
    names anything but a file of this entry in the cache folder."""
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    digests, sizes = record.get("files"), record.get("bytes")
    if (
        not isinstance(digests, dict)
        or not isinstance(sizes, dict)
        or not digests
        or digests.keys() != sizes.keys()
    ):
        return None
    entries = {}
    for name, digest in digests.items():
        size = sizes[name]
        own = name.startswith(f"{key}.") and name != f"{key}.json" and os.path.basename(name) == name
        if not own or "\0" in name or not isinstance(digest, str):
            return None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        entries[name] = (digest, size)
    return entries


def _check_file(path: Path, size: int, digest: str) -> str | None:
    """What is wrong with entry file ``path`` (``None``: a regular file of ``size`` bytes with sha256 ``digest``).
    Nothing but a regular file of the recorded size is opened: never a FIFO, a device, a link or a directory."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            return f"has {path.name}, which is {file_kind(info.st_mode)}, not a regular file"
        if info.st_size != size:
            return f"has {path.name} of {info.st_size} bytes, not the {size} recorded"
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the lstat
                return f"has {path.name}, which is not a regular file"
            hashed = hashlib.sha256()
            read = 0
            while read <= size:
                chunk = os.read(fd, min(_CHUNK, size + 1 - read))
                if not chunk:
                    break
                hashed.update(chunk)
                read += len(chunk)
        finally:
            os.close(fd)
    except FileNotFoundError:
        return f"is missing {path.name}"
    except OSError as exc:
        return f"has an unreadable {path.name} ({exc.strerror or exc})"
    if read != size or hashed.hexdigest() != digest:
        return f"has {path.name}, which does not match its record"
    return None


def _set_aside(path: Path, want_folder: bool = False) -> None:
    """Remove what is at ``path`` unless it is what the cache keeps there: a regular file (not a link), or with
    ``want_folder`` a directory (a link to one is fine). A directory in place of a file is renamed to
    ``.NAME.broken-<ns>`` first, then deleted (what cannot be deleted stays for :func:`remove_stale_builds`).

    Raises:
        OSError: it cannot be removed (a read-only cache).
    """
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    keep = os.path.isdir(path) if want_folder else stat.S_ISREG(info.st_mode)
    if keep:
        return
    if stat.S_ISDIR(info.st_mode):
        aside = path.with_name(f".{path.name}{BROKEN_MARK}{time.time_ns()}")
        os.rename(path, aside)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.unlink(path)


def _owner_tag() -> str:
    """``host-pid`` of this process (dots of the host name as ``_``), put in each build folder's name."""
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _build_is_stale(path: Path, now: float) -> bool:
    """A build folder is stale when its owner, a process of this host, no longer runs, or when it is untouched
    for :data:`STALE_BUILD_SECONDS` (another host's, an older mmfuse's without an owner in its name)."""
    parts = path.name.removesuffix(BUILD_SUFFIX).rsplit(".", 2)
    host, _, pid = parts[1].rpartition("-") if len(parts) == 3 else ("", "", "")
    if host == socket.gethostname().replace(".", "_") and pid.isdigit() and not _running(int(pid)):
        return True
    try:
        return now - os.lstat(path).st_mtime > STALE_BUILD_SECONDS
    except OSError:
        return False


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


def remove_stale_builds(folder: Path) -> int:
    """Delete the build folders killed processes left in the export cache ``folder`` (another live process's are
    kept) and entries set aside as broken; never raises (a read-only cache keeps them). Returns how many went."""
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    now, count = time.time(), 0
    for name in names:
        path = folder / name
        stale = name.startswith(".") and (
            BROKEN_MARK in name or (name.endswith(BUILD_SUFFIX) and _build_is_stale(path, now))
        )
        if not stale:
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            count += 1
        except OSError:
            continue
    return count


def entry_key(net: FusionUNet, runtime: str, version: str) -> str:
    """The cache key: weights sha256 (first 24 hex digits), runtime name and version, export version."""
    safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in version)
    return f"{network_sha256(net)[:24]}-{runtime}-{safe}-e{EXPORT_VERSION}"


__all__ = [
    "EXPORT_VERSION",
    "INPUT_NAMES",
    "MAX_RECORD_BYTES",
    "OUTPUT_NAMES",
    "STALE_BUILD_SECONDS",
    "ExportCacheError",
    "cache_dir",
    "cached_entry",
    "entry_key",
    "export_onnx",
    "network_sha256",
    "remove_stale_builds",
]

"""Turning a model NAME or PATH into a verified local file, and checking files against their manifest entry.

Every file is checked against its entry's ``sha256`` and ``size`` after every download and before every load; a
file that does not match is never returned (a downloaded one is also deleted from the cache). Checkpoint headers
are read with :func:`mmfuse_cli.model.checkpoint.read_checkpoint_metadata` (no torch, nothing unpickled).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.model.checkpoint import CHECKPOINT_FORMAT, CheckpointError, read_checkpoint_metadata
from mmfuse_cli.tasks import check_task
from mmfuse_cli.weights.errors import (
    ChecksumMismatchError,
    NotDownloadedError,
    NotRegisteredError,
    UnknownCheckpointError,
    WeightsError,
)
from mmfuse_cli.weights.hub import (
    endpoint_label,
    entry_local_path,
    hub_download,
    is_offline,
    offline_message,
    remove_cached,
)
from mmfuse_cli.weights.manifest import CheckpointEntry, bundled_dir, default_model_for, get_entry

logger = logging.getLogger("mmfuse.weights")

_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------- files


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _metadata(path: Path) -> dict[str, str]:
    """The checkpoint header's string metadata; an unreadable file is a :class:`WeightsError`."""
    try:
        return read_checkpoint_metadata(path)
    except CheckpointError as exc:
        raise WeightsError(str(exc)) from None


def describe_checkpoint_file(path: Path) -> dict[str, Any]:
    """``path``, ``sha256``, ``size`` and the mmfuse metadata (``format``, ``task``, ``config``) of a local file."""
    path = Path(path)
    meta = _metadata(path)
    info: dict[str, Any] = {
        "path": str(path),
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "format": meta.get("format", ""),
        "task": meta.get("task", ""),
    }
    config = meta.get("config")
    if config is not None:
        try:
            info["config"] = json.loads(config)
        except json.JSONDecodeError:
            info["config"] = config
    return info


def check_checkpoint_file(path: Path, task: str | None = None) -> dict[str, str]:
    """Header-level check that ``path`` is an mmfuse checkpoint (for ``task`` when given); returns its metadata."""
    meta = _metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(
            f"{path}: not an mmfuse checkpoint (safetensors metadata format={meta.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r})"
        )
    file_task = meta.get("task", "")
    try:
        check_task(file_task)
    except InvalidValueError as exc:
        raise WeightsError(f"{path}: checkpoint metadata: {exc}") from None
    if task is not None and file_task != task:
        raise WeightsError(f"{path}: this is a '{file_task}' checkpoint, not '{task}'")
    try:
        json.loads(meta.get("config", ""))
    except json.JSONDecodeError:
        raise WeightsError(f"{path}: checkpoint metadata 'config' is not valid JSON") from None
    return meta


def _actual_digest(entry: CheckpointEntry, path: Path) -> str | None:
    """``None`` when ``path`` matches ``entry``; else a description of what was found (size or sha256)."""
    size = path.stat().st_size
    if entry.size and size != entry.size:
        return f"size {size} (expected {entry.size} bytes), sha256 {sha256_file(path)}"
    actual = sha256_file(path)
    return None if actual == entry.sha256 else actual


def check_file(entry: CheckpointEntry, path: Path, *, context: str = "") -> Path:
    """Return ``path`` if its size and sha256 match ``entry``; else raise :class:`ChecksumMismatchError`."""
    if not entry.registered:
        raise NotRegisteredError(unregistered_message(entry))
    actual = _actual_digest(entry, path)
    if actual is not None:
        raise ChecksumMismatchError(
            f"sha256 mismatch for checkpoint '{entry.name}' ({path}): expected {entry.sha256}, got {actual}"
            f"{context}; the file was not used",
            name=entry.name, path=path, expected=entry.sha256, actual=actual,
        )  # fmt: skip
    return path


def unregistered_message(entry: CheckpointEntry) -> str:
    """The one-line message for a placeholder entry (no sha256 yet), with the command that registers it."""
    return (
        f"checkpoint '{entry.name}' has no sha256 in {entry.manifest} yet, so it is never loaded; "
        f"maintainers: python -m mmfuse_cli.weights.tool register <file> --name {entry.name} --task {entry.task}"
    )


# --------------------------------------------------------------------------------------------------- status


@dataclass
class EntryStatus:
    """Result of checking one entry on disk: ``state`` is one of :data:`STATES`."""

    entry: CheckpointEntry
    state: str
    path: Path | None = None
    actual: str = ""

    @property
    def ok(self) -> bool:
        """The file is present and matches its sha256."""
        return self.state == "verified"

    @property
    def failed(self) -> bool:
        """A verification failure (corrupt, missing bundled file, unregistered placeholder)."""
        return self.state in ("CORRUPT", "missing", "unregistered")


STATES = ("verified", "not downloaded", "CORRUPT", "missing", "unregistered")


def verify_entry(entry: CheckpointEntry) -> EntryStatus:
    """Check ``entry``'s file on disk (no network, nothing deleted).

    ``verified``: present and matching; ``not downloaded``: a hub file absent from the cache; ``CORRUPT``: present
    but the size or sha256 differs (``actual`` says what was found); ``missing``: a bundled/local file is absent;
    ``unregistered``: the entry has no sha256 yet.
    """
    path = entry_local_path(entry)
    if path is None:
        return EntryStatus(entry, "not downloaded" if entry.source == "hub" else "missing")
    if not entry.registered:
        return EntryStatus(entry, "unregistered", path)
    actual = _actual_digest(entry, path)
    if actual is not None:
        return EntryStatus(entry, "CORRUPT", path, actual)
    return EntryStatus(entry, "verified", path)


# --------------------------------------------------------------------------------------------------- resolve


def looks_like_path(value: str) -> bool:
    """True when ``value`` is meant as a file path rather than a manifest name."""
    return (
        os.sep in value
        or (os.altsep is not None and os.altsep in value)
        or value.endswith(".safetensors")
        or value.startswith("~")
        or Path(value).is_file()
    )


def resolve_checkpoint(
    name_or_path: str | os.PathLike[str] | None,
    *,
    task: str | None = None,
    offline: bool | None = None,
    progress: bool = True,
    force_download: bool = False,
) -> Path:
    """Turn a manifest NAME or a file PATH into a verified local checkpoint path.

    * ``None`` -> the default checkpoint for ``task``.
    * an existing file -> returned as is (any safetensors checkpoint; its header must say ``task`` if given).
    * a ``bundled`` / ``local`` name -> the file, after checking its sha256.
    * a ``hub`` name -> the cached file if present and matching (no network call at all), else a download of the
      pinned revision into the standard cache (progress bar on stderr when ``progress``), checked before it is
      returned. A mismatching download is deleted from the cache and :class:`ChecksumMismatchError` raised.
      ``offline`` (default: ``HF_HUB_OFFLINE``) never touches the network.

    Raises :class:`WeightsError` subclasses with one-line messages.
    """
    if name_or_path is None:
        if task is None:
            raise WeightsError("no checkpoint given and no task to pick a default for")
        name_or_path = default_model_for(task)
    value = os.fspath(name_or_path)
    if looks_like_path(value):
        path = Path(os.path.expanduser(value))
        if not path.exists():
            raise UnknownCheckpointError(f"{path}: no such checkpoint file")
        if not path.is_file():
            raise UnknownCheckpointError(f"{path}: not a file")
        if task is not None:
            meta = _metadata(path)
            if meta.get("task") and meta["task"] != task:
                raise WeightsError(f"{path}: this is a '{meta['task']}' checkpoint, not '{task}'")
        return path
    entry = get_entry(value)
    if task is not None and entry.task != task:
        raise WeightsError(f"checkpoint '{entry.name}' is a '{entry.task}' model, not '{task}'")
    return fetch_entry(entry, offline=offline, progress=progress, force_download=force_download)


def fetch_entry(
    entry: CheckpointEntry,
    *,
    offline: bool | None = None,
    progress: bool = True,
    force_download: bool = False,
) -> Path:
    """The verified local file of ``entry``, downloading a hub file when needed and allowed."""
    if not entry.registered:
        raise NotRegisteredError(unregistered_message(entry))
    if entry.source != "hub":
        path = entry_local_path(entry)
        if path is None:
            where = bundled_dir() / entry.file if entry.source == "bundled" else Path(entry.path)
            hint = "; reinstall mmfuse" if entry.source == "bundled" else f" (see {entry.manifest})"
            raise WeightsError(f"checkpoint '{entry.name}': file {where} is missing{hint}")
        hint = "; reinstall mmfuse" if entry.source == "bundled" else ""
        return check_file(entry, path, context=hint)
    offline = is_offline() if offline is None else offline
    if force_download and offline:
        raise WeightsError(f"cannot re-download '{entry.name}' in offline mode (unset HF_HUB_OFFLINE)")
    if not force_download:
        cached = entry_local_path(entry)  # a pure file-system look-up: no HTTP at all, not even a HEAD
        if cached is not None:
            actual = _actual_digest(entry, cached)
            if actual is None:
                return cached
            remove_cached(cached)
            message = (
                f"sha256 mismatch for cached checkpoint '{entry.name}' ({cached}): expected {entry.sha256}, "
                f"got {actual}; the file was deleted from the cache and not used"
            )
            if offline:
                raise ChecksumMismatchError(
                    message + f"; run `mmfuse weights pull {entry.name}` with network access",
                    name=entry.name, path=cached, expected=entry.sha256, actual=actual,
                )  # fmt: skip
            logger.warning("%s; downloading it again", message)
        elif offline:
            raise NotDownloadedError(offline_message(entry))
    if progress:
        size = f" ({human_size(entry.size)})" if entry.size else ""
        print(f"downloading checkpoint '{entry.name}'{size} from {endpoint_label()} "
              f"{entry.repo_id}@{entry.revision[:7]}", file=sys.stderr, flush=True)  # fmt: skip
    path = hub_download(entry, progress=progress, force_download=force_download)
    actual = _actual_digest(entry, path)
    if actual is not None:
        remove_cached(path)
        raise ChecksumMismatchError(
            f"sha256 mismatch for checkpoint '{entry.name}' downloaded from {endpoint_label()} "
            f"{entry.repo_id}@{entry.revision}: expected {entry.sha256}, got {actual}; "
            "the file was deleted from the cache and not used",
            name=entry.name, path=path, expected=entry.sha256, actual=actual,
        )  # fmt: skip
    return path


def pull(name: str, *, progress: bool = True, force_download: bool = False) -> Path:
    """``mmfuse weights pull NAME``: make sure the checkpoint is present and verified; return its path."""
    return fetch_entry(get_entry(name), progress=progress, force_download=force_download)


def human_size(size: int) -> str:
    """``1234567`` -> ``'1.2 MB'`` (decimal units, like the Hub)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover

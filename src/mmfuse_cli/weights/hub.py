"""The Hugging Face Hub side: the standard cache, the environment that configures it, and downloads.

Everything is read from the environment at every call: ``HF_HUB_CACHE`` / ``HF_HOME`` (cache), ``HF_ENDPOINT`` (a
mirror or a private Hub), ``HF_HUB_OFFLINE`` (no network: cached files only), ``HF_TOKEN`` (private repos, read by
huggingface_hub itself). :func:`hub_download` fetches an entry's pinned revision; it does not verify the file
(:mod:`mmfuse_cli.weights.resolve` does, and deletes a mismatching one with :func:`remove_cached`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mmfuse_cli.weights.errors import DownloadError, NotDownloadedError
from mmfuse_cli.weights.manifest import CheckpointEntry, bundled_dir

logger = logging.getLogger("mmfuse.weights")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value, read now."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache folder, from the environment as it is now (same rules as huggingface_hub)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(os.path.expanduser(explicit)))
    home = os.environ.get("HF_HOME")
    if not home:
        home = os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "huggingface"
        )
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` as it is now (``None``: huggingface_hub's default, https://huggingface.co)."""
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or None


def endpoint_label() -> str:
    """The Hub endpoint as it is now, for messages (``HF_ENDPOINT`` or https://huggingface.co)."""
    return hub_endpoint() or "https://huggingface.co"


def entry_local_path(entry: CheckpointEntry) -> Path | None:
    """Where the file of ``entry`` is on disk now, without any network access; ``None`` if it is not there."""
    if entry.source == "bundled":
        path = bundled_dir() / entry.file
    elif entry.source == "local":
        path = Path(entry.path)
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            entry.repo_id,
            entry.filename,
            cache_dir=hub_cache_dir(),
            revision=entry.revision,
            repo_type=entry.repo_type,
        )
        if not isinstance(found, str):
            return None
        path = Path(found)
    return path if path.is_file() else None


def remove_cached(path: Path) -> None:
    """Delete a cached hub file: its snapshot pointer and the blob it links to (only inside the cache)."""
    cache = os.path.realpath(hub_cache_dir())
    for victim in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        if os.path.commonpath([cache, victim]) != cache:
            continue  # never delete anything outside the cache
        try:
            os.unlink(victim)
        except FileNotFoundError:
            pass
        except OSError as exc:  # read-only cache: the file is still never returned
            logger.warning("could not delete %s: %s", victim, exc)


# --------------------------------------------------------------------------------------------------- download


def offline_message(entry: CheckpointEntry) -> str:
    """The one-line message for a hub checkpoint that is not cached while offline mode is on."""
    return (
        f"checkpoint '{entry.name}' is not in the local cache ({hub_cache_dir()}) and offline mode is on "
        f"(HF_HUB_OFFLINE): run `mmfuse weights pull {entry.name}` once with network access, or unset HF_HUB_OFFLINE"
    )


def _silent_tqdm() -> type:
    from tqdm.auto import tqdm

    class _Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Silent


def hub_download(entry: CheckpointEntry, *, progress: bool, force_download: bool = False) -> Path:
    """``hf_hub_download`` of ``entry``'s pinned revision into the standard cache (endpoint and cache folder
    read from the environment now). Every huggingface_hub / HTTP failure becomes a one-line :class:`WeightsError`.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    kwargs: dict[str, Any] = {
        "repo_id": entry.repo_id,
        "filename": entry.filename,
        "revision": entry.revision,
        "repo_type": entry.repo_type,
        "cache_dir": str(hub_cache_dir()),
        "endpoint": hub_endpoint(),
        "force_download": force_download,
    }
    if not progress:
        kwargs["tqdm_class"] = _silent_tqdm()
    where = f"{entry.repo_id}@{entry.revision[:7]} on {endpoint_label()}"
    try:
        return Path(hf_hub_download(**kwargs))
    except LocalEntryNotFoundError as exc:  # the HEAD request failed (connection refused, DNS, timeout)
        cause = exc.__cause__ or exc.__context__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': {endpoint_label()} is unreachable{detail}; check the "
            f"network and HF_ENDPOINT, or run `mmfuse weights pull {entry.name}` later"
        ) from None
    except OfflineModeIsEnabled:
        raise NotDownloadedError(offline_message(entry)) from None
    except RevisionNotFoundError:
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': revision {entry.revision} not found in {entry.repo_id} "
            f"on {endpoint_label()} (see {entry.manifest})"
        ) from None
    except GatedRepoError:
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': {entry.repo_id} is gated; accept its terms on the Hub "
            "and set HF_TOKEN (or run `hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': repository {entry.repo_id} not found on "
            f"{endpoint_label()} or not accessible (for a private repo set HF_TOKEN or run `hf auth login`)"
        ) from None
    except EntryNotFoundError:
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': file {entry.filename} not found in {where} (HTTP 404; "
            f"see {entry.manifest})"
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}' from {where}: HTTP {status}"
        ) from None
    except (OSError, ValueError) as exc:  # incomplete transfer ("Consistency check failed"), disk full, ...
        raise DownloadError(
            f"download of checkpoint '{entry.name}' from {where} failed: {_first_line(exc)}; nothing was kept, "
            "try again"
        ) from None
    except Exception as exc:  # httpx/requests transport errors (connection reset, truncated body, timeout)
        raise DownloadError(
            f"download of checkpoint '{entry.name}' from {where} failed: {type(exc).__name__}: {_first_line(exc)}; "
            "nothing was kept, try again"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__

"""The errors of the checkpoint manifest, cache and downloads: one-line messages, fit for the user."""

from __future__ import annotations

from pathlib import Path


class WeightsError(ValueError):
    """A checkpoint could not be resolved, downloaded or verified. The message is one line, fit for the user.

    ``exit_code`` is what the CLI should exit with: 2 for usage errors (unknown name, bad manifest), else 1.
    """

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(_one_line(message))


class ManifestError(WeightsError):
    """A manifest file is unreadable or invalid; the message names the file (and the entry)."""

    exit_code = 2


class UnknownCheckpointError(WeightsError):
    """NAME is neither a manifest entry nor an existing file."""

    exit_code = 2


class ChecksumMismatchError(WeightsError):
    """A file's sha256 (or size) differs from its manifest entry; the file was not used."""

    def __init__(self, message: str, *, name: str, path: Path, expected: str, actual: str):
        super().__init__(message)
        self.name = name
        self.path = path
        self.expected = expected
        self.actual = actual


class NotRegisteredError(WeightsError):
    """A manifest entry has no sha256 yet (a placeholder): its file is never loaded."""


class NotDownloadedError(WeightsError):
    """A hub checkpoint is not in the local cache and may not be downloaded (offline mode or ``path``)."""


class DownloadError(WeightsError):
    """Downloading a hub checkpoint failed (HTTP error, server unreachable, interrupted transfer)."""


def _one_line(text: str) -> str:
    """Collapse a (possibly multi-line) message into a single line."""
    return " ".join(str(text).split())


__all__ = [
    "ChecksumMismatchError",
    "DownloadError",
    "ManifestError",
    "NotDownloadedError",
    "NotRegisteredError",
    "UnknownCheckpointError",
    "WeightsError",
]

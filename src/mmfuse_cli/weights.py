"""The checkpoint manifest (``weights.toml``) and turning a model NAME or PATH into a verified local file.

Three manifest layers, later ones override earlier ones entry by entry (same ``name``) and per task default:

1. the manifest shipped inside the package (``mmfuse_cli/weights.toml``, read with :mod:`importlib.resources`;
   the copy at the repository top level is for reviewers and must stay identical);
2. the user manifest: the file named by ``$MMFUSE_WEIGHTS_MANIFEST`` (which must then exist), else
   ``<config dir>/mmfuse/weights.toml`` when that file exists (``$XDG_CONFIG_HOME`` or ``~/.config`` on Linux,
   ``~/Library/Application Support`` on macOS, ``%APPDATA%`` on Windows).

Each entry has a source: ``bundled`` (a file in ``mmfuse_cli/checkpoints/``), ``local`` (a file path, relative
to the manifest's folder) or ``hub`` (a Hugging Face Hub ``repo_id`` + ``filename`` + ``revision`` pinned to a
40-hex commit). Every file is checked against the entry's ``sha256`` and ``size`` after every download and before
every load; a file that does not match is never returned (a downloaded one is also deleted from the cache).

Hub downloads use :func:`huggingface_hub.hf_hub_download` with the standard cache, read from the environment at
every call: ``HF_HUB_CACHE`` / ``HF_HOME`` (cache), ``HF_ENDPOINT`` (a mirror or a private Hub),
``HF_HUB_OFFLINE`` (no network: cached files only), ``HF_TOKEN`` (private repos). Checkpoints are safetensors
files; nothing here ever unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

logger = logging.getLogger("mmfuse.weights")

TASKS: tuple[str, ...] = ("ivif", "mif")
SOURCES: tuple[str, ...] = ("bundled", "local", "hub")
REPO_TYPES: tuple[str, ...] = ("model", "dataset", "space")
MANIFEST_SCHEMA = 1
CHECKPOINT_FORMAT = "mmfuse.checkpoint"
ENV_USER_MANIFEST = "MMFUSE_WEIGHTS_MANIFEST"
PACKAGE = "mmfuse_cli"
PACKAGE_MANIFEST = "weights.toml"
BUNDLED_DIR = "checkpoints"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ENTRY_KEYS = {
    "name", "task", "description", "license", "sha256", "size", "source",
    "file", "path", "repo_id", "filename", "revision", "repo_type",
}  # fmt: skip
_TOP_KEYS = {"schema", "defaults", "checkpoint"}
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint of a manifest.

    ``file`` is the file name inside ``mmfuse_cli/checkpoints/`` for ``bundled`` entries, ``path`` the absolute
    file path for ``local`` entries, and ``repo_id`` / ``filename`` / ``revision`` / ``repo_type`` locate a
    ``hub`` entry. ``manifest`` names the manifest file that defined the entry (for error messages).
    """

    name: str
    task: str
    source: str
    sha256: str
    size: int
    description: str = ""
    license: str = ""
    file: str = ""
    path: str = ""
    repo_id: str = ""
    filename: str = ""
    revision: str = ""
    repo_type: str = "model"
    manifest: str = ""

    @property
    def registered(self) -> bool:
        """False for a placeholder entry whose sha256 has not been filled in yet."""
        return bool(self.sha256)

    def source_label(self) -> str:
        """Short human description of where the file comes from."""
        if self.source == "hub":
            kind = "" if self.repo_type == "model" else f"{self.repo_type}s/"
            return f"hub:{kind}{self.repo_id}/{self.filename}@{self.revision[:7]}"
        if self.source == "local":
            return f"local:{self.path}"
        return "bundled"

    def as_toml(self) -> str:
        """The entry as a ``[[checkpoint]]`` TOML table (the format :func:`parse_manifest` reads)."""
        lines = ["[[checkpoint]]"]
        fields: list[tuple[str, Any]] = [
            ("name", self.name),
            ("task", self.task),
            ("description", self.description),
            ("license", self.license),
            ("source", self.source),
        ]
        if self.source == "bundled":
            fields.append(("file", self.file))
        elif self.source == "local":
            fields.append(("path", self.path))
        else:
            fields += [("repo_id", self.repo_id), ("filename", self.filename), ("revision", self.revision)]
            if self.repo_type != "model":
                fields.append(("repo_type", self.repo_type))
        fields += [("sha256", self.sha256), ("size", self.size)]
        for key, value in fields:
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # JSON string escapes (\" \\ \n \uXXXX) are valid TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)


@dataclass
class Manifest:
    """Entries by name (in file order) plus the default checkpoint name per task."""

    entries: dict[str, CheckpointEntry] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def merged_with(self, other: Manifest) -> Manifest:
        """``self`` overridden by ``other``: same-name entries and per-task defaults are replaced."""
        entries = dict(self.entries)
        entries.update(other.entries)
        defaults = dict(self.defaults)
        defaults.update(other.defaults)
        merged = Manifest(entries, defaults, self.files + other.files)
        merged.check_defaults()
        return merged

    def check_defaults(self) -> None:
        """Every default must name an entry of its task."""
        for task, name in self.defaults.items():
            entry = self.entries.get(name)
            where = " + ".join(self.files) or "manifest"
            if entry is None:
                raise ManifestError(f"{where}: default for task '{task}' is '{name}', which is not an entry")
            if entry.task != task:
                raise ManifestError(
                    f"{where}: default for task '{task}' is '{name}', which is a '{entry.task}' checkpoint"
                )

    def to_toml(self, header: str = "") -> str:
        """Serialize (schema, defaults, then every entry) with an optional leading comment block."""
        parts = [header.rstrip("\n") + "\n\n" if header.strip() else "", f"schema = {MANIFEST_SCHEMA}\n"]
        if self.defaults:
            parts.append("\n[defaults]\n")
            for task in sorted(
                self.defaults, key=lambda t: (TASKS.index(t) if t in TASKS else len(TASKS), t)
            ):
                parts.append(f"{task} = {_toml_value(self.defaults[task])}\n")
        for entry in self.entries.values():
            parts.append("\n" + entry.as_toml())
        return "".join(parts)


def parse_manifest(text: str, origin: str, base_dir: Path | None = None) -> Manifest:
    """Parse manifest TOML ``text``; ``origin`` (the file name) prefixes every error message.

    ``base_dir`` resolves relative ``path`` values of ``local`` entries (defaults to the current folder).
    Raises :class:`ManifestError` on a syntax error, an unknown key, a missing/invalid field or a duplicate name.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{origin}: invalid TOML: {exc}") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ManifestError(f"{origin}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                            f"(expected schema, [defaults], [[checkpoint]])")  # fmt: skip
    schema = data.get("schema", MANIFEST_SCHEMA)
    if schema != MANIFEST_SCHEMA:
        raise ManifestError(
            f"{origin}: schema = {schema!r} is not supported (this mmfuse reads schema {MANIFEST_SCHEMA})"
        )
    raw_entries = data.get("checkpoint", [])
    if not isinstance(raw_entries, list) or not all(isinstance(e, dict) for e in raw_entries):
        raise ManifestError(f"{origin}: 'checkpoint' must be an array of tables ([[checkpoint]])")
    manifest = Manifest(files=[origin])
    for index, raw in enumerate(raw_entries, start=1):
        entry = _parse_entry(raw, f"{origin}: checkpoint #{index}", origin, base_dir)
        if entry.name in manifest.entries:
            raise ManifestError(f"{origin}: checkpoint '{entry.name}' is defined twice")
        manifest.entries[entry.name] = entry
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ManifestError(f'{origin}: [defaults] must be a table of task = "name"')
    for task, name in defaults.items():
        if task not in TASKS:
            raise ManifestError(f"{origin}: [defaults] has unknown task '{task}' (tasks: {', '.join(TASKS)})")
        if not isinstance(name, str):
            raise ManifestError(f"{origin}: [defaults] {task} must be a checkpoint name (a string)")
        manifest.defaults[task] = name
    return manifest


def _parse_entry(raw: dict[str, Any], where: str, origin: str, base_dir: Path | None) -> CheckpointEntry:
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{origin}: checkpoint '{name}'"
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")

    def text(key: str, required: bool = True) -> str:
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise ManifestError(f"{where}: '{key}' must be a string")
        if required and not value:
            raise ManifestError(f"{where}: missing '{key}'")
        return value

    name = text("name")
    if not _NAME_RE.fullmatch(name):
        raise ManifestError(f"{where}: name must be letters, digits, '.', '_' or '-' (got {name!r})")
    task = text("task")
    if task not in TASKS:
        raise ManifestError(f"{where}: task must be one of {', '.join(TASKS)} (got {task!r})")
    source = text("source")
    if source not in SOURCES:
        raise ManifestError(f"{where}: source must be one of {', '.join(SOURCES)} (got {source!r})")
    sha256 = text("sha256", required=False).lower()
    if sha256 and not _SHA256_RE.fullmatch(sha256):
        raise ManifestError(f"{where}: sha256 must be 64 hex digits (got {sha256!r})")
    size = raw.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{where}: size must be a non-negative integer (bytes)")
    if source == "hub" and not sha256:
        raise ManifestError(f"{where}: a hub entry needs its sha256 (downloads are always verified)")
    kwargs: dict[str, Any] = {
        "name": name, "task": task, "source": source, "sha256": sha256, "size": size,
        "description": text("description", required=False), "license": text("license", required=False),
        "manifest": origin,
    }  # fmt: skip
    if source == "bundled":
        file = text("file", required=False) or f"{name}.safetensors"
        if Path(file).name != file or file in (".", ".."):
            raise ManifestError(f"{where}: 'file' of a bundled entry is a bare file name (got {file!r})")
        kwargs["file"] = file
    elif source == "local":
        path = Path(os.path.expanduser(text("path")))
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        kwargs["path"] = str(path)
    else:
        kwargs["repo_id"] = text("repo_id")
        if kwargs["repo_id"].count("/") > 1 or kwargs["repo_id"].startswith("/"):
            raise ManifestError(f"{where}: repo_id must look like 'org/name' (got {kwargs['repo_id']!r})")
        kwargs["filename"] = text("filename")
        revision = text("revision")
        if not _COMMIT_RE.fullmatch(revision):
            raise ManifestError(
                f"{where}: revision must be a full 40-hex commit id, not a branch or tag (got {revision!r})"
            )
        kwargs["revision"] = revision
        repo_type = text("repo_type", required=False) or "model"
        if repo_type not in REPO_TYPES:
            raise ManifestError(
                f"{where}: repo_type must be one of {', '.join(REPO_TYPES)} (got {repo_type!r})"
            )
        kwargs["repo_type"] = repo_type
    for key in ("file", "path", "repo_id", "filename", "revision", "repo_type"):
        if key in raw and key not in kwargs:
            raise ManifestError(f"{where}: '{key}' does not apply to a {source} entry")
    return CheckpointEntry(**kwargs)


# --------------------------------------------------------------------------------------------------- manifests


def package_manifest_text() -> str:
    """The manifest shipped inside the package (the run-time source of truth)."""
    return resources.files(PACKAGE).joinpath(PACKAGE_MANIFEST).read_text(encoding="utf-8")


def bundled_dir() -> Path:
    """Folder of the bundled checkpoint files (``mmfuse_cli/checkpoints``)."""
    return Path(str(resources.files(PACKAGE).joinpath(BUNDLED_DIR)))


def user_config_dir() -> Path:
    """The platform's per-user configuration folder for mmfuse (not created)."""
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "mmfuse"


def user_manifest_path() -> tuple[Path, bool]:
    """``(path, explicit)``: ``$MMFUSE_WEIGHTS_MANIFEST`` (explicit) or ``<config dir>/weights.toml``."""
    env = os.environ.get(ENV_USER_MANIFEST, "").strip()
    if env:
        return Path(os.path.expanduser(env)), True
    return user_config_dir() / "weights.toml", False


def load_manifest_file(path: Path) -> Manifest:
    """Read and parse one manifest file (``local`` paths are relative to its folder)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc.strerror or exc}") from None
    return parse_manifest(text, str(path), base_dir=Path(path).resolve().parent)


def load_manifest(include_user: bool = True) -> Manifest:
    """The package manifest merged with the user manifest (if any). Re-read at every call."""
    manifest = parse_manifest(package_manifest_text(), f"{PACKAGE}/{PACKAGE_MANIFEST}")
    manifest.check_defaults()
    if include_user:
        path, explicit = user_manifest_path()
        if explicit and not path.is_file():
            raise ManifestError(f"{path}: ${ENV_USER_MANIFEST} names a file that does not exist")
        if path.is_file():
            manifest = manifest.merged_with(load_manifest_file(path))
    return manifest


def list_entries() -> list[CheckpointEntry]:
    """Every known checkpoint (package entries first, then user-only ones)."""
    return list(load_manifest().entries.values())


def get_entry(name: str, manifest: Manifest | None = None) -> CheckpointEntry:
    """The entry called ``name`` or :class:`UnknownCheckpointError` listing the known names."""
    manifest = manifest or load_manifest()
    entry = manifest.entries.get(name)
    if entry is None:
        known = ", ".join(manifest.entries) or "none"
        raise UnknownCheckpointError(
            f"unknown checkpoint '{name}' (known: {known}); pass a path to a .safetensors file "
            f"or add an entry to {user_manifest_path()[0]}"
        )
    return entry


def default_model_for(task: str, manifest: Manifest | None = None) -> str:
    """Name of the default checkpoint for ``task`` (``ivif`` or ``mif``)."""
    if task not in TASKS:
        raise WeightsError(f"unknown task '{task}' (tasks: {', '.join(TASKS)})")
    manifest = manifest or load_manifest()
    name = manifest.defaults.get(task)
    if name is None:
        raise ManifestError(f"no default checkpoint for task '{task}' in {' + '.join(manifest.files)}")
    return name


# --------------------------------------------------------------------------------------------------- hashing


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's string metadata (no tensor is loaded, nothing is unpickled)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:  # safetensors raises SafetensorError / OSError subclasses
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def describe_checkpoint_file(path: Path) -> dict[str, Any]:
    """``path``, ``sha256``, ``size`` and the mmfuse metadata (``format``, ``task``, ``config``) of a local file."""
    path = Path(path)
    meta = read_checkpoint_metadata(path)
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
    meta = read_checkpoint_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(
            f"{path}: not an mmfuse checkpoint (safetensors metadata format={meta.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r})"
        )
    file_task = meta.get("task", "")
    if file_task not in TASKS:
        raise WeightsError(
            f"{path}: checkpoint metadata has task={file_task!r} (expected one of {', '.join(TASKS)})"
        )
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
    return (
        f"checkpoint '{entry.name}' has no sha256 in {entry.manifest} yet, so it is never loaded; "
        f"maintainers: python -m mmfuse_cli.weights_tool register <file> --name {entry.name} --task {entry.task}"
    )


# --------------------------------------------------------------------------------------------------- hub cache


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


def _endpoint_label() -> str:
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


def _remove_cached(path: Path) -> None:
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
            meta = read_checkpoint_metadata(path)
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
            _remove_cached(cached)
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
            raise NotDownloadedError(_offline_message(entry))
    if progress:
        size = f" ({human_size(entry.size)})" if entry.size else ""
        print(f"downloading checkpoint '{entry.name}'{size} from {_endpoint_label()} "
              f"{entry.repo_id}@{entry.revision[:7]}", file=sys.stderr, flush=True)  # fmt: skip
    path = _hub_download(entry, progress=progress, force_download=force_download)
    actual = _actual_digest(entry, path)
    if actual is not None:
        _remove_cached(path)
        raise ChecksumMismatchError(
            f"sha256 mismatch for checkpoint '{entry.name}' downloaded from {_endpoint_label()} "
            f"{entry.repo_id}@{entry.revision}: expected {entry.sha256}, got {actual}; "
            "the file was deleted from the cache and not used",
            name=entry.name, path=path, expected=entry.sha256, actual=actual,
        )  # fmt: skip
    return path


def pull(name: str, *, progress: bool = True, force_download: bool = False) -> Path:
    """``mmfuse weights pull NAME``: make sure the checkpoint is present and verified; return its path."""
    return fetch_entry(get_entry(name), progress=progress, force_download=force_download)


def _offline_message(entry: CheckpointEntry) -> str:
    return (
        f"checkpoint '{entry.name}' is not in the local cache ({hub_cache_dir()}) and offline mode is on "
        f"(HF_HUB_OFFLINE): run `mmfuse weights pull {entry.name}` once with network access, or unset HF_HUB_OFFLINE"
    )


def _silent_tqdm() -> type:
    from tqdm.auto import tqdm

    class _Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Silent


def _hub_download(entry: CheckpointEntry, *, progress: bool, force_download: bool = False) -> Path:
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
    where = f"{entry.repo_id}@{entry.revision[:7]} on {_endpoint_label()}"
    try:
        return Path(hf_hub_download(**kwargs))
    except LocalEntryNotFoundError as exc:  # the HEAD request failed (connection refused, DNS, timeout)
        cause = exc.__cause__ or exc.__context__
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': {_endpoint_label()} is unreachable{detail}; check the "
            f"network and HF_ENDPOINT, or run `mmfuse weights pull {entry.name}` later"
        ) from None
    except OfflineModeIsEnabled:
        raise NotDownloadedError(_offline_message(entry)) from None
    except RevisionNotFoundError:
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': revision {entry.revision} not found in {entry.repo_id} "
            f"on {_endpoint_label()} (see {entry.manifest})"
        ) from None
    except GatedRepoError:
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': {entry.repo_id} is gated; accept its terms on the Hub "
            "and set HF_TOKEN (or run `hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise DownloadError(
            f"cannot download checkpoint '{entry.name}': repository {entry.repo_id} not found on "
            f"{_endpoint_label()} or not accessible (for a private repo set HF_TOKEN or run `hf auth login`)"
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


def human_size(size: int) -> str:
    """``1234567`` -> ``'1.2 MB'`` (decimal units, like the Hub)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover

"""The checkpoint manifest (``weights.toml``): its entries, where the manifest files are, and loading them.

Two manifest layers; the later one overrides the earlier one entry by entry (same ``name``) and per task default:

1. the manifest shipped inside the package (``mmfuse_cli/weights.toml``, read with :mod:`importlib.resources`;
   the copy at the repository top level is for reviewers and must stay identical);
2. the user manifest: the file named by ``$MMFUSE_WEIGHTS_MANIFEST`` (which must then exist), else
   ``<config dir>/mmfuse/weights.toml`` when that file exists (``$XDG_CONFIG_HOME`` or ``~/.config`` on Linux,
   ``~/Library/Application Support`` on macOS, ``%APPDATA%`` on Windows).

Each entry has a source: ``bundled`` (a file in ``mmfuse_cli/checkpoints/``), ``local`` (a file path, relative
to the manifest's folder) or ``hub`` (a Hugging Face Hub ``repo_id`` + ``filename`` + ``revision`` pinned to a
40-hex commit), and the ``sha256`` + ``size`` its file must have.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.tasks import TASKS, check_task
from mmfuse_cli.weights.errors import ManifestError, UnknownCheckpointError, WeightsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SOURCES: tuple[str, ...] = ("bundled", "local", "hub")
REPO_TYPES: tuple[str, ...] = ("model", "dataset", "space")
MANIFEST_SCHEMA = 1
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
        try:
            check_task(task)
        except InvalidValueError as exc:
            raise ManifestError(f"{origin}: [defaults]: {exc}") from None
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
    try:
        check_task(task)
    except InvalidValueError as exc:
        raise ManifestError(f"{where}: {exc}") from None
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
    try:
        check_task(task)
    except InvalidValueError as exc:
        raise WeightsError(str(exc)) from None
    manifest = manifest or load_manifest()
    name = manifest.defaults.get(task)
    if name is None:
        raise ManifestError(f"no default checkpoint for task '{task}' in {' + '.join(manifest.files)}")
    return name

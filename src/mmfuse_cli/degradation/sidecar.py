"""The ``degradation.json`` sidecar that ``mmfuse degrade`` writes next to its outputs and ``mmfuse run`` reads.

Schema (version 1)::

    {
      "schema": "mmfuse.degradation",
      "schema_version": 1,
      "mmfuse_version": "0.1.0",
      "degradation": {"blur": 1.5, "scale": 2, "noise": 0.05},   # blur std in pixels of the clean grid,
                                                                  # noise std in [0, 1] intensity units
      "operator": {...},               # Operator.spec() of the linear part (informational)
      "seed": 0,
      "files": ["a.png", "sub/b.png"],  # outputs, relative to the sidecar's folder
      "estimate": {"images": 12, "noise_spread": 0.002, "blur_spread": 0.1}   # optional: written by
    }                                  # `mmfuse estimate --write-sidecar` (median over the folder, its spread)

Reading is strict: malformed JSON, a wrong schema, unknown fields, absurd values and file entries that escape
the folder (absolute paths, ``..``) are rejected with a :class:`SidecarError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mmfuse_cli import __version__
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.files import atomic_write_text
from mmfuse_cli.small_files import SmallFileError, read_small_file

SIDECAR_NAME = "degradation.json"
SCHEMA = "mmfuse.degradation"
SCHEMA_VERSION = 1
_ALLOWED = {
    "schema",
    "schema_version",
    "mmfuse_version",
    "degradation",
    "operator",
    "seed",
    "files",
    "estimate",
}


class SidecarError(ValueError):
    """A sidecar file is malformed or unsafe; the message names the file."""


@dataclass
class Sidecar:
    degradation: Degradation
    seed: int | None = None
    files: list[str] = field(default_factory=list)
    mmfuse_version: str = __version__
    estimate: dict[str, Any] | None = None  # how the degradation was estimated (images, spreads), if it was

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "mmfuse_version": self.mmfuse_version,
            "degradation": self.degradation.as_dict(),
            "operator": _operator_spec(self.degradation),
            "seed": self.seed,
            "files": sorted(self.files),
            **({"estimate": self.estimate} if self.estimate is not None else {}),
        }


def _operator_spec(degradation: Degradation) -> dict[str, Any]:
    from mmfuse_cli.degradation.operators import build_operator  # torch: only when writing a sidecar

    return build_operator(degradation).spec()


def write_sidecar(folder: Path, sidecar: Sidecar) -> Path:
    path = Path(folder) / SIDECAR_NAME
    atomic_write_text(path, json.dumps(sidecar.to_json(), indent=2) + "\n")
    return path


def _safe_relative(entry: Any, path: Path) -> str:
    if not isinstance(entry, str) or not entry:
        raise SidecarError(f"{path}: file entries must be non-empty strings, got {entry!r}")
    pure = PurePosixPath(entry.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (len(entry) > 1 and entry[1] == ":"):
        raise SidecarError(f"{path}: file entry {entry!r} points outside the folder")
    return pure.as_posix()


def read_sidecar(path: Path) -> Sidecar:
    """Parse and validate a sidecar file.

    Raises:
        SidecarError: with a one-line reason naming ``path``.
    """
    path = Path(path)
    try:
        data = json.loads(read_small_file(path).decode("utf-8"))
    except FileNotFoundError:
        raise SidecarError(f"{path}: no such file") from None
    except SmallFileError as exc:
        raise SidecarError(str(exc)) from None
    except OSError as exc:
        raise SidecarError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except RecursionError:
        raise SidecarError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a number of thousands of digits
        raise SidecarError(f"{path}: not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise SidecarError(f"{path}: expected a JSON object")
    unknown = set(data) - _ALLOWED
    if unknown:
        raise SidecarError(f"{path}: unknown field(s) {', '.join(sorted(unknown))}")
    if data.get("schema") != SCHEMA:
        raise SidecarError(f"{path}: 'schema' must be {SCHEMA!r}, got {data.get('schema')!r}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise SidecarError(f"{path}: unsupported schema_version {data.get('schema_version')!r}")
    block: Any = data.get("degradation")  # raw JSON (or None): Degradation.from_dict checks it is an object
    try:
        degradation = Degradation.from_dict(block)
    except ValueError as exc:
        raise SidecarError(f"{path}: {exc}") from None
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SidecarError(f"{path}: seed must be an integer or null")
    files = data.get("files", [])
    if not isinstance(files, list):
        raise SidecarError(f"{path}: 'files' must be a list")
    estimate = data.get("estimate")
    if estimate is not None and not isinstance(estimate, dict):
        raise SidecarError(f"{path}: 'estimate' must be an object")
    return Sidecar(
        estimate=estimate,
        degradation=degradation,
        seed=seed,
        files=[_safe_relative(f, path) for f in files],
        mmfuse_version=str(data.get("mmfuse_version", "unknown")),
    )

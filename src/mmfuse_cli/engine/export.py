"""Exporting the network once per checkpoint for the fast CPU runtimes, and the on-disk cache of the exports.

The exported graph is :meth:`~mmfuse_cli.model.network.FusionUNet.denoise` on plain tensors: ``z``
``(N, 3, H, W)``, ``pinv1``, ``pinv2`` ``(N, 1, H, W)``, ``cond`` ``(N, cond_dim)`` -> ``e`` ``(N, 3, H, W)``,
``m`` ``(N, 1, H, W)``, with N, H and W dynamic (H, W multiples of the network's ``size_multiple``; the sampler
pads). Everything else of a step (the schedule, the observation correction, padding) stays in torch and is
shared with the torch backend.

Cache: ``$MMFUSE_CACHE`` (default ``$XDG_CACHE_HOME/mmfuse``, else ``~/.cache/mmfuse``), folder ``export/``. An
entry's name is the sha256 of the network's weights and config (the checkpoint's content, so a model changed in
memory gets its own entry), the runtime's name and version, and :data:`EXPORT_VERSION`. Each entry has a JSON
sidecar recording the sha256 of every file it made; an entry whose files are missing, unreadable or do not
match their sidecar is rebuilt, never trusted. Files are written atomically (:mod:`mmfuse_cli.files`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from mmfuse_cli.files import atomic_write_bytes, atomic_write_text
from mmfuse_cli.model.network import FusionUNet
from mmfuse_cli.weights.resolve import sha256_file

logger = logging.getLogger("mmfuse.export")

EXPORT_VERSION = 1
"""Bump when the exported graph's inputs, outputs or export options change: older entries are then ignored."""
OPSET = 17
INPUT_NAMES = ("z", "pinv1", "pinv2", "cond")
OUTPUT_NAMES = ("e", "m")


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
    does not match its sidecar, or fails to load.

    Returns:
        whatever ``load`` returns for a valid entry.
    """
    folder = cache_dir() / "export"
    sidecar = folder / f"{key}.json"
    files = _valid_files(folder, sidecar)
    if files is not None:
        try:
            return load(files)
        except Exception as exc:  # a file that hashes right but the runtime rejects: rebuild once
            logger.warning("export cache entry %s failed to load (%s); rebuilding", key, exc)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".{key}.{os.getpid()}.build"
    staging.mkdir(exist_ok=True)
    try:
        built = build(staging)
        record = {}
        for path in built:
            final = folder / f"{key}{''.join(path.suffixes) or '.bin'}"
            atomic_write_bytes(final, path.read_bytes())
            record[final.name] = sha256_file(final)
        atomic_write_text(sidecar, json.dumps({"key": key, "files": record}, indent=1) + "\n")
    finally:
        for leftover in staging.iterdir():
            leftover.unlink()
        staging.rmdir()
    return load([folder / name for name in record])


def _valid_files(folder: Path, sidecar: Path) -> list[Path] | None:
    """The entry's files if the sidecar parses and every file is there with the recorded sha256, else None."""
    try:
        record = json.loads(sidecar.read_text())["files"]
        files = [folder / name for name in record]
        if not files or any(sha256_file(p) != digest for p, digest in zip(files, record.values())):
            logger.warning("export cache entry %s is stale or corrupt; rebuilding", sidecar.stem)
            return None
        return files
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        logger.warning("export cache entry %s is unreadable; rebuilding", sidecar.stem)
        return None


def entry_key(net: FusionUNet, runtime: str, version: str) -> str:
    """The cache key: weights sha256 (first 24 hex digits), runtime name and version, export version."""
    safe = "".join(c if c.isalnum() or c in ".-" else "-" for c in version)
    return f"{network_sha256(net)[:24]}-{runtime}-{safe}-e{EXPORT_VERSION}"


__all__ = [
    "EXPORT_VERSION",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "cache_dir",
    "cached_entry",
    "entry_key",
    "export_onnx",
    "network_sha256",
]

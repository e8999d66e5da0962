"""The checkpoint file format: one safetensors file per model, nothing pickled.

Network tensors under ``net.*``, sampler parameters under ``sampler.*``, and string metadata with
``format = "mmfuse.checkpoint"`` (:data:`CHECKPOINT_FORMAT`), ``task``, ``config`` (JSON of
:class:`~mmfuse_cli.model.network.ModelConfig`) and provenance fields. :func:`load_checkpoint` builds the right
network from the file alone. :func:`read_checkpoint_metadata` reads the header only and needs no torch, so the
``weights`` commands stay fast; this module is the one reader of that header.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmfuse_cli import __version__
from mmfuse_cli.files import atomic_write_bytes

if TYPE_CHECKING:
    import torch

    from mmfuse_cli.model.network import FusionModel

CHECKPOINT_FORMAT = "mmfuse.checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or not an mmfuse checkpoint; the message names the file."""


def save_checkpoint(model: FusionModel, path: Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a safetensors checkpoint (atomic); ``metadata`` values are stored as strings/JSON."""
    from safetensors.torch import save as save_bytes

    meta = {
        "format": CHECKPOINT_FORMAT,
        "task": model.config.task,
        "config": json.dumps(asdict(model.config)),
    }
    meta["mmfuse_version"] = __version__
    for key, value in (metadata or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(Path(path), save_bytes(tensors, metadata=meta))
    return Path(path)


def read_checkpoint_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors checkpoint (header only; tensors are not loaded)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return dict(handle.metadata() or {})
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as exc:  # safetensors raises SafetensorError and others on bad headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> FusionModel:
    """Build the network described in a checkpoint's metadata and load its tensors (no pickle).

    Raises:
        CheckpointError: unreadable file, not an mmfuse checkpoint, or tensors that do not fit the config.
    """
    import torch
    from safetensors import safe_open

    from mmfuse_cli.model.network import FusionModel, ModelConfig

    meta = read_checkpoint_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT or "config" not in meta:
        raise CheckpointError(f"{path}: not an mmfuse checkpoint (metadata format={meta.get('format')!r})")
    try:
        config = ModelConfig.from_json(meta["config"])
        model = FusionModel(config)
        state = {}
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                state[key] = handle.get_tensor(key)
        model.load_state_dict(state, strict=True)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: checkpoint does not match its config ({str(exc).splitlines()[0]})"
        ) from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name} contains NaN or inf")
    model.metadata = meta
    return model.to(device).eval()


__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "save_checkpoint",
]

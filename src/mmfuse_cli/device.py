"""Choosing the compute device: ``auto`` picks CUDA when present, else the CPU."""

from __future__ import annotations

import torch

from mmfuse_cli.errors import InvalidValueError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a torch device.

    Raises:
        InvalidValueError: (field ``device``) CUDA requested but not available, or an unknown name.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidValueError("device", f"{name} requested but CUDA is not available on this machine")
        return torch.device(name)
    raise InvalidValueError("device", f"unknown device {name!r} (use auto, cpu or cuda)")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"

"""How a :class:`~mmfuse_cli.engine.fuser.Fuser` runs, as one validated object (the library side of the ``run``
flags that concern the model: device, steps, precision, tiling, damping, flip ensemble)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mmfuse_cli.engine.backends import BACKEND_CHOICES
from mmfuse_cli.engine.memory import BASE
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.model.config import ModelConfig
from mmfuse_cli.sampling.sampler import DAMPING_MODES, DampingMode

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
MIN_MEMORY = BASE + 128 * 2**20
"""The smallest budget: the program's own measured base (:data:`mmfuse_cli.engine.memory.BASE`) plus room to work."""
DEFAULT_MAX_MEMORY = 2 * 2**30
MIN_TILE = 64
MAX_STEPS = 50


@dataclass(frozen=True)
class FuseConfig:
    """Options of a :class:`~mmfuse_cli.engine.fuser.Fuser`, validated on construction.

    Attributes:
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        steps: sampler steps T in [1, 50] (``None``: the trained T).
        precision: network precision; ``auto`` = bf16 on CUDA, fp32 on CPU. Reduced precision needs CUDA and
            falls back to fp32 for a batch whose output is not finite.
        tile: tile size in output pixels, >= 64 (``None`` = whole image); tiles overlap by ``overlap`` pixels and
            are blended with linear ramps.
        overlap: tile overlap in output pixels (>= 0).
        halo: context margin in output pixels (>= 0) sampled around each tile's inner sides and cropped off.
        damping: sampler damping mode (``learned`` unless experimenting).
        flip_ensemble: average the network over four flips of its input at every step
            (:mod:`mmfuse_cli.sampling.ensemble`): about 4x the network time for a small gain (docs/BENCHMARKS.md, "Flip self-ensemble").
        backend: where the network runs: ``auto`` (torch on CUDA; on the CPU the fastest installed of
            openvino, onnxruntime, torch), ``torch``, ``openvino`` or ``onnxruntime`` (CPU, fp32; optional extras).
        max_memory: peak memory budget in bytes (>= :data:`MIN_MEMORY`, 608 MiB; ``None``: no bound) that picks tiles automatically
            when a pair would exceed it (:mod:`mmfuse_cli.engine.memory`); ``tile`` overrides it.

    Raises:
        InvalidValueError: naming the field (``steps``, ``precision``, ``tile``, ``overlap``, ``damping``,
            ``backend``, ``max_memory``).
    """

    device: str = "auto"
    steps: int | None = None
    precision: Precision = "auto"
    tile: int | None = None
    overlap: int = 32
    halo: int = 32
    damping: DampingMode = "learned"
    flip_ensemble: bool = False
    backend: str = "auto"
    max_memory: int | None = DEFAULT_MAX_MEMORY

    def __post_init__(self) -> None:
        if self.steps is not None and not (1 <= self.steps <= MAX_STEPS):
            raise InvalidValueError("steps", f"must be in [1, {MAX_STEPS}], got {self.steps}")
        if self.precision not in PRECISIONS:
            raise InvalidValueError(
                "precision", f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.tile is not None and self.tile < MIN_TILE:
            raise InvalidValueError("tile", f"must be >= {MIN_TILE} pixels, got {self.tile}")
        if self.overlap < 0:
            raise InvalidValueError("overlap", f"must be >= 0 pixels, got {self.overlap}")
        if self.halo < 0:
            raise InvalidValueError("halo", f"must be >= 0 pixels, got {self.halo}")
        if self.damping not in DAMPING_MODES:
            raise InvalidValueError(
                "damping", f"must be one of {', '.join(DAMPING_MODES)}, got {self.damping!r}"
            )
        if self.backend not in BACKEND_CHOICES:
            raise InvalidValueError(
                "backend", f"must be one of {', '.join(BACKEND_CHOICES)}, got {self.backend!r}"
            )
        if self.max_memory is not None and self.max_memory < MIN_MEMORY:
            raise InvalidValueError(
                "max_memory", f"must be >= {MIN_MEMORY // 2**20} MiB, got {self.max_memory / 2**20:.0f} MiB"
            )

    def steps_for(self, model: ModelConfig) -> int:
        """The sampler steps T of a run: as configured, else as ``model`` was trained (the one place this is
        decided)."""
        return self.steps or model.steps


__all__ = [
    "DEFAULT_MAX_MEMORY",
    "MAX_STEPS",
    "MIN_MEMORY",
    "MIN_TILE",
    "PRECISIONS",
    "FuseConfig",
    "Precision",
]

"""Which engine runs a batch (``local`` threads, or ``ray`` actors on a Ray cluster) and how: validated once,
and the registry of engines (:data:`ENGINES`) behind the one driver, :func:`mmfuse_cli.batch.driver.drive`.

An engine only fuses the pairs it is handed (:class:`Engine`); the driver does the bookkeeping every engine
shares (output folder, stale temporary files, skip-existing, "not processed" after a fatal error, input order).
No Ray import here: the local path never loads Ray (:mod:`mmfuse_cli.batch.ray_engine` imports it inside its
functions, and is imported only for ``engine="ray"``).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.pairing import Pair
from mmfuse_cli.results.rows import ItemResult

if TYPE_CHECKING:
    from mmfuse_cli.batch.stages import RunOptions
    from mmfuse_cli.degradation.resolve import DegradationResolver
    from mmfuse_cli.engine.config import FuseConfig
    from mmfuse_cli.model.network import FusionModel

MAX_GPUS_PER_ACTOR = 8.0
RAY_MISSING = "--engine ray needs Ray: pip install 'mmfuse[ray]'"


class EngineError(RuntimeError):
    """The engine cannot run at all (Ray not installed, cluster unreachable); a one-line message."""


@dataclass(frozen=True)
class EngineOptions:
    """How a batch is executed.

    Attributes:
        engine: ``local`` (one process, reader / writer threads; the default) or ``ray`` (Ray Data actor pool).
        address: Ray cluster to join (``auto``, ``ray://host:10001``, ``host:6379``); ``None`` = ``RAY_ADDRESS``
            if set, else a Ray started on this machine for the run. Ray engine only.
        actors: size of the actor pool (one loaded model each); ``None`` = one per ``gpus_per_actor`` share of
            the cluster's GPUs, else one per ``threads_per_actor`` CPUs.
        threads_per_actor: torch CPU threads (and Ray CPUs reserved) per actor, >= 1.
        gpus_per_actor: GPUs per actor when the cluster has GPUs, in (0, 8]; 0.5 = two actors share a GPU.

    Raises:
        InvalidValueError: naming the field (``engine``, ``address``, ``actors``, ``threads_per_actor``,
            ``gpus_per_actor``).
    """

    engine: str = "local"
    address: str | None = None
    actors: int | None = None
    threads_per_actor: int = 1
    gpus_per_actor: float = 1.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidValueError("engine", f"must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.engine != "ray" and self.address is not None:
            raise InvalidValueError("address", "is only used by the ray engine")
        if self.actors is not None and self.actors < 1:
            raise InvalidValueError("actors", f"must be >= 1, got {self.actors}")
        if self.threads_per_actor < 1:
            raise InvalidValueError("threads_per_actor", f"must be >= 1, got {self.threads_per_actor}")
        if not (0 < self.gpus_per_actor <= MAX_GPUS_PER_ACTOR):
            raise InvalidValueError(
                "gpus_per_actor", f"must be in (0, {MAX_GPUS_PER_ACTOR:g}], got {self.gpus_per_actor}"
            )


def ray_available() -> bool:
    """Whether Ray Data can be imported (the optional ``mmfuse[ray]`` extra), without importing it."""
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None


Emit = Callable[[ItemResult], None]


class Engine(Protocol):
    """Fuses the pairs the driver hands it: :meth:`process` emits one result per pair, in any order, and returns
    the reason of a fatal failure (one that every later pair would hit too: a full disk), else ``None``."""

    def process(self, todo: list[Pair], emit: Emit) -> str | None: ...


@dataclass(frozen=True)
class EngineContext:
    """What an engine is built from: the verified checkpoint file and its loaded model, how the model runs, the
    run's options and resolver, the engine's options, and where warnings go."""

    checkpoint: Path
    model: FusionModel
    fuse: FuseConfig
    options: RunOptions
    engine: EngineOptions
    resolver: DegradationResolver
    on_warning: Callable[[str], None] | None = None


@dataclass(frozen=True)
class EngineSpec:
    """One engine of the registry: its implementation (``module:Class``, imported only when the engine is used,
    so the local path never loads Ray) and, for an optional one, how to tell it is installed."""

    name: str
    implementation: str
    available: Callable[[], bool] = lambda: True
    missing: str = ""

    def build(self, context: EngineContext) -> Engine:
        """The engine for ``context`` (its class's ``from_context``).

        Raises:
            EngineError: it cannot run here (``missing`` says what to install).
        """
        if not self.available():
            raise EngineError(self.missing)
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name).from_context(context)


ENGINES: dict[str, EngineSpec] = {
    spec.name: spec
    for spec in (
        EngineSpec("local", "mmfuse_cli.batch.pipeline:LocalEngine"),
        EngineSpec(
            "ray", "mmfuse_cli.batch.ray_engine:RayEngine", lambda: ray_available(), RAY_MISSING
        ),  # late-bound
    )
}
"""The engines. ``local``: this process, reader / writer threads; ``ray``: a Ray Data actor pool."""


def make_engine(context: EngineContext) -> Engine:
    """The engine ``context.engine.engine`` names.

    Raises:
        EngineError: it cannot run here (Ray not installed).
    """
    return ENGINES[context.engine.engine].build(context)


__all__ = [
    "ENGINES",
    "RAY_MISSING",
    "Emit",
    "Engine",
    "EngineContext",
    "EngineError",
    "EngineSpec",
    "EngineOptions",
    "make_engine",
    "ray_available",
]

"""Which engine runs a batch (``local`` threads, or ``ray`` actors on a Ray cluster) and how: validated once.

No Ray import here: the local path never loads Ray (:mod:`mmfuse_cli.batch.ray_engine` imports it inside its
functions, and the command imports that module only for ``engine="ray"``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from mmfuse_cli.errors import InvalidValueError

ENGINES = ("local", "ray")
MAX_GPUS_PER_ACTOR = 8.0


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


__all__ = ["ENGINES", "EngineError", "EngineOptions", "ray_available"]

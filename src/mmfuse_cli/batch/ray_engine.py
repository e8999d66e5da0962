"""The Ray engine behind ``mmfuse run --engine ray``: the local engine's stages in a Ray Data actor pool.

The driver (this process, :func:`mmfuse_cli.batch.driver.drive`) decides ``skip_existing`` and hands the remaining pairs (paths
only: inputs and outputs live on a filesystem every node sees) to ``Dataset.map_batches`` with a callable class,
:class:`FuseWorker`: one actor per model copy, each loading the checkpoint once and running
:func:`~mmfuse_cli.batch.stages.run_stages` (the same ``load_pair`` / ``fuse_group`` / ``write_pair`` and
resolver as the local engine) on ``options.batch`` pairs at a time. Actors return one serialised
:class:`~mmfuse_cli.results.rows.ItemResult` per pair; the driver streams them back (``iter_rows``).

Fault tolerance is Ray's: Ray Data creates pool actors with ``max_restarts=-1`` and ``max_task_retries=-1`` (its
defaults, kept), so a killed actor is restarted and its unfinished batch is run again; outputs are written atomically and the model is
deterministic on CPU, so a redone pair rewrites the same bytes.

``import ray`` happens only inside the functions of this module.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mmfuse_cli.batch.engines import RAY_MISSING, Emit, EngineContext, EngineError, EngineOptions
from mmfuse_cli.batch.stages import RunOptions, make_resolver, run_stages
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.pairing import Pair
from mmfuse_cli.results.rows import ItemResult

PAIRS_PER_BLOCK = 4
"""Dataset blocks hold at most this many network batches (and there are at least two blocks per actor): small
blocks spread the work evenly over the actors and bound what a killed actor's retry redoes."""


class FuseWorker:
    """One actor of the pool: a loaded model, the run's resolver, and ``__call__`` for ``map_batches``.

    Args:
        checkpoint: path of the verified checkpoint (readable on every node).
        config: how the model runs (``device="auto"`` uses the GPU Ray assigned to the actor, if any).
        options: the run's options (output folder, format, depth, batch).
        threads: torch CPU threads of this actor.
    """

    def __init__(self, checkpoint: str, config: FuseConfig, options: RunOptions, threads: int):
        import torch

        from mmfuse_cli.engine.fuser import Fuser
        from mmfuse_cli.model.checkpoint import load_checkpoint

        torch.set_num_threads(threads)
        self.options = options
        self.warnings: list[str] = []
        self.fuser = Fuser(load_checkpoint(Path(checkpoint)), config)
        self.resolver = make_resolver(options, self.warnings.append, self.fuser.task)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fuse and write one batch of pairs (columns ``key``, ``a``, ``b``); one JSON result per pair."""
        pairs = [
            Pair(str(k), Path(str(a)), Path(str(b))) for k, a, b in zip(batch["key"], batch["a"], batch["b"])
        ]
        results = run_stages(pairs, self.fuser, self.options, self.resolver)
        warnings, self.warnings[:] = list(self.warnings), []
        encoded = [
            json.dumps({"result": asdict(r), "warnings": warnings if i == 0 else []})
            for i, r in enumerate(results)
        ]
        return {"result": np.array(encoded, dtype=object)}


class RayEngine:
    """The Ray engine: joins (or starts) a Ray cluster for the run and fuses the pairs in an actor pool.

    Args:
        checkpoint: the verified checkpoint file (readable on every node).
        config: how the model runs in each actor.
        options: the run's options.
        engine: address, actors, threads and GPUs per actor.
        on_warning: called once per distinct warning of the actors (a source assumed clean).
    """

    def __init__(
        self,
        checkpoint: Path,
        config: FuseConfig,
        options: RunOptions,
        engine: EngineOptions,
        on_warning: Callable[[str], None] | None = None,
    ):
        self.checkpoint, self.config, self.options, self.engine = checkpoint, config, options, engine
        self.on_warning = on_warning

    @classmethod
    def from_context(cls, context: EngineContext) -> RayEngine:
        return cls(context.checkpoint, context.fuse, context.options, context.engine, context.on_warning)

    def process(self, todo: list[Pair], emit: Emit) -> str | None:
        """Fuse ``todo`` on the cluster, emitting results as they arrive (completion order); the reason of a
        fatal failure, else ``None``.

        Raises:
            EngineError: Ray is not installed or the cluster cannot be reached.
        """
        try:
            import ray
        except ImportError:
            raise EngineError(RAY_MISSING) from None
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(
                    address=self.engine.address,
                    include_dashboard=False,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.engine.address or "local"
                raise EngineError(f"cannot start or join a Ray cluster ({where}): {exc}") from None
        try:
            return _dispatch(
                ray, todo, self.checkpoint, self.config, self.options, self.engine, emit, self.on_warning
            )
        finally:
            if started_here:
                ray.shutdown()


def pool_size(
    resources: dict[str, float], engine: EngineOptions, config: FuseConfig, pairs: int
) -> tuple[int, float]:
    """Actors and GPUs per actor for a cluster with ``resources`` (``ray.cluster_resources()``): one actor per
    ``gpus_per_actor`` of the GPUs (unless ``device="cpu"``), else one per ``threads_per_actor`` CPUs; never more
    actors than pairs. GPUs per actor is 0 on a CPU-only cluster."""
    gpus = resources.get("GPU", 0.0) if config.device != "cpu" else 0.0
    per_gpu = engine.gpus_per_actor if gpus > 0 else 0.0
    auto = int(gpus // per_gpu) if per_gpu else int(resources.get("CPU", 1.0) // engine.threads_per_actor)
    return max(1, min(engine.actors or auto, max(pairs, 1))), per_gpu


def _dispatch(ray, todo, checkpoint, config, options, engine, emit, on_warning) -> str | None:
    """Run ``todo`` through the actor pool, emitting each result; the reason of a fatal failure, else ``None``."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    actors, gpus = pool_size(ray.cluster_resources(), engine, config, len(todo))
    items = [{"key": p.key, "a": str(p.a), "b": str(p.b)} for p in todo]
    blocks = min(len(items), max(2 * actors, math.ceil(len(items) / (PAIRS_PER_BLOCK * options.batch))))
    dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        FuseWorker,
        batch_size=options.batch,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=engine.threads_per_actor,
        num_gpus=gpus or None,
        fn_constructor_kwargs={
            "checkpoint": str(checkpoint),
            "config": config,
            "options": options,
            "threads": engine.threads_per_actor,
        },
    )
    seen: set[str] = set()
    for row in dataset.iter_rows():
        payload = json.loads(row["result"])
        for message in payload["warnings"]:
            if message not in seen and on_warning:
                on_warning(message)
            seen.add(message)
        result = ItemResult(**payload["result"])
        emit(result)
        if result.fatal:
            return result.reason
    return None


__all__ = ["FuseWorker", "RayEngine", "pool_size"]

"""The Ray engine behind ``mmfuse run --engine ray``: the local engine's stages in a Ray Data actor pool.

The driver (this process) pairs the folders, decides ``skip_existing`` and hands the remaining pairs (paths
only: inputs and outputs live on a filesystem every node sees) to ``Dataset.map_batches`` with a callable class,
:class:`FuseWorker`: one actor per model copy, each loading the checkpoint once and running
:func:`~mmfuse_cli.batch.pipeline.process_pairs` (the same ``load_pair`` / ``fuse_group`` / ``write_pair`` and
resolver as the local engine) on ``options.batch`` pairs at a time. Actors return one serialised
:class:`~mmfuse_cli.report.rows.ItemResult` per pair; the driver streams them back (``iter_rows``).

Fault tolerance is Ray's: Ray Data creates pool actors with ``max_restarts=-1`` and ``max_task_retries=-1`` (its
defaults, kept), so a killed actor is restarted and its unfinished batch is run again; outputs are written atomically and the model is
deterministic on CPU, so a redone pair rewrites the same bytes.

``import ray`` happens only inside the functions of this module.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mmfuse_cli.batch.engines import EngineError, EngineOptions
from mmfuse_cli.batch.pipeline import process_pairs
from mmfuse_cli.batch.stages import RunOptions, make_resolver, output_path
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.files import remove_stale_temporaries
from mmfuse_cli.pairing import Pair
from mmfuse_cli.report.rows import ItemResult

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
        results = process_pairs(pairs, self.fuser, self.options, self.resolver)
        warnings, self.warnings[:] = list(self.warnings), []
        encoded = [
            json.dumps({"result": asdict(r), "warnings": warnings if i == 0 else []})
            for i, r in enumerate(results)
        ]
        return {"result": np.array(encoded, dtype=object)}


def run_pairs_ray(
    pairs: list[Pair],
    checkpoint: Path,
    config: FuseConfig,
    options: RunOptions,
    engine: EngineOptions,
    on_result: Callable[[ItemResult], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> list[ItemResult]:
    """Fuse every pair on a Ray cluster; returns one result per pair, in input order.

    The same results as :func:`~mmfuse_cli.batch.pipeline.run_pairs` (timings aside): failures are recorded and
    the run continues; a fatal write error (full disk, read-only folder) stops it and lists the rest as ``not
    processed``. ``on_result`` is called in the driver as results arrive (completion order); ``on_warning`` once
    per distinct warning of the actors (a source assumed clean).

    Raises:
        EngineError: Ray is not installed or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError:
        raise EngineError("the ray engine needs Ray: pip install 'mmfuse[ray]'") from None
    options.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(options.output_dir)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                address=engine.address,
                include_dashboard=False,
                logging_level=logging.ERROR,
                log_to_driver=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot start or join a Ray cluster ({engine.address or 'local'}): {exc}")
    try:
        return _run(ray, pairs, checkpoint, config, options, engine, on_result, on_warning)
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


def _run(ray, pairs, checkpoint, config, options, engine, on_result, on_warning) -> list[ItemResult]:
    results: list[ItemResult] = []

    def emit(result: ItemResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    todo: list[Pair] = []
    for pair in pairs:
        if options.skip_existing and output_path(options, pair.key).exists():
            emit(ItemResult(pair.key, "skipped", "output exists", 0.0, str(output_path(options, pair.key))))
        else:
            todo.append(pair)
    stop_reason = (
        _dispatch(ray, todo, checkpoint, config, options, engine, emit, on_warning) if todo else None
    )
    if stop_reason is None:
        remove_stale_temporaries(
            options.output_dir
        )  # a killed actor's half-written file (its retry rewrote it)
    else:
        done = {r.key for r in results}
        for pair in pairs:
            if pair.key not in done:
                emit(
                    ItemResult(
                        pair.key,
                        "failed",
                        f"not processed: run stopped after a fatal write error ({stop_reason})",
                    )
                )
    order = {pair.key: i for i, pair in enumerate(pairs)}
    return sorted(results, key=lambda r: order.get(r.key, len(order)))


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


def startup_seconds(address: str | None = None) -> float:
    """Seconds to start (or join) Ray and bring up one trivial Ray Data actor: the engine's fixed cost."""
    import ray

    start = time.perf_counter()
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        ray.data.range(1).map_batches(_Identity, concurrency=1, batch_size=1).take_all()
    finally:
        elapsed = time.perf_counter() - start
        ray.shutdown()
    return elapsed


class _Identity:
    def __call__(self, batch):
        return batch


__all__ = ["FuseWorker", "pool_size", "run_pairs_ray", "startup_seconds"]

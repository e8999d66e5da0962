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

Before joining a cluster at ``HOST:PORT`` (or ``ray://HOST:PORT``), :func:`check_reachable` opens a TCP
connection to it, waiting at most :data:`CONNECT_TIMEOUT` seconds: ``ray.init`` itself retries an address nobody
answers at for minutes without a word.

``import ray`` happens only inside the functions of this module.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mmfuse_cli.batch.engines import RAY_MISSING, Emit, EngineContext, EngineError, EngineOptions
from mmfuse_cli.batch.ray_reaper import local_ray_pids, start_reaper
from mmfuse_cli.batch.stages import RunOptions, make_resolver, run_stages
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.pairing import Pair
from mmfuse_cli.results.rows import ItemResult

PAIRS_PER_BLOCK = 4
"""Dataset blocks hold at most this many network batches (and there are at least two blocks per actor): small
blocks spread the work evenly over the actors and bound what a killed actor's retry redoes."""

CONNECT_TIMEOUT = 10.0
"""Seconds :func:`check_reachable` waits for the cluster's address to resolve and accept a TCP connection."""


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
        if self.fuser.fallback_note:  # auto skipped a faster backend here (an unwritable export cache)
            self.warnings.append(self.fuser.fallback_note)
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
        reaper = None
        if started_here:
            check_reachable(self.engine.address or os.environ.get("RAY_ADDRESS"))
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
            reaper = start_reaper(local_ray_pids(ray))  # ends that Ray if this process is killed
        try:
            return _dispatch(
                ray, todo, self.checkpoint, self.config, self.options, self.engine, emit, self.on_warning
            )
        finally:
            if started_here:
                ray.shutdown()
            if reaper is not None:
                reaper.stop()


def check_reachable(address: str | None) -> None:
    """Refuse a cluster address of the form ``HOST:PORT`` or ``ray://HOST:PORT`` that does not accept a TCP
    connection within :data:`CONNECT_TIMEOUT` seconds (name resolution included). ``auto``, ``local``, ``None``
    and other forms are left to Ray.

    Raises:
        EngineError: ``cannot reach the Ray cluster at HOST:PORT: connection refused`` (or unknown host, no answer
            within the timeout, the system's reason).
    """
    target = _host_port(address)
    if target is None:
        return
    host, port, shown = target
    if not 0 < port < 65536:
        raise EngineError(f"cannot reach the Ray cluster at {shown}: port {port} is out of range")
    try:
        _connect(host, port, CONNECT_TIMEOUT)
    except ConnectionRefusedError:
        reason = "connection refused"
    except socket.gaierror:
        reason = "unknown host"
    except TimeoutError:
        reason = f"no answer within {CONNECT_TIMEOUT:g} s"
    except OSError as exc:
        text = exc.strerror or str(exc) or type(exc).__name__
        reason = text[:1].lower() + text[1:]
    else:
        return
    raise EngineError(f"cannot reach the Ray cluster at {shown}: {reason}")


def _host_port(address: str | None) -> tuple[str, int, str] | None:
    """``(host, port, "host:port")`` of a ``HOST:PORT`` or ``ray://HOST:PORT`` address (IPv6 in brackets), else
    ``None``."""
    rest = (address or "").strip()
    if rest.lower() in ("", "auto", "local"):
        return None
    if "://" in rest:
        scheme, _, rest = rest.partition("://")
        if scheme.lower() != "ray":
            return None
    rest = rest.split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.removeprefix("[").removesuffix("]"), int(port), rest


def _connect(host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection to ``host:port`` within ``timeout`` seconds in all, name resolution
    included (``getaddrinfo`` has no timeout of its own: it runs in a daemon thread)."""
    deadline = time.monotonic() + timeout
    found: list[list[tuple]] = []
    failed: list[OSError] = []

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    worker = threading.Thread(target=resolve, name="mmfuse-ray-resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    if failed:
        raise failed[0]
    if not found:
        raise TimeoutError(f"{host}: no answer within {timeout:g} s")
    error: OSError = ConnectionRefusedError()
    for family, kind, proto, _, where in found[0]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{host}: no answer within {timeout:g} s")
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(left)
            try:
                sock.connect(where)
                return
            except OSError as exc:
                error = exc
    raise error


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


__all__ = ["CONNECT_TIMEOUT", "FuseWorker", "RayEngine", "check_reachable", "pool_size"]

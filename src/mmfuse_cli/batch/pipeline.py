"""The local engine of a batch run (:class:`LocalEngine`): streaming, failure-isolated.

The three pure stages of :mod:`mmfuse_cli.batch.stages` per pair: ``load_pair`` (decode both files and resolve
both degradations), ``fuse_group`` (one network batch of pairs sharing sizes and degradations), ``write_pair``
(score, then write atomically). Decoding of upcoming pairs and writing of finished ones run in background threads
while the model works, with bounded queues, so memory stays flat however many pairs there are. Every pair ends as one :class:`~mmfuse_cli.results.rows.ItemResult` (``ok`` / ``failed``
with a reason / ``skipped``); a bad pair never stops the others. Outputs are written atomically, so after a crash
a file under its final name is complete and ``skip_existing`` can resume.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from mmfuse_cli.batch.driver import drive
from mmfuse_cli.batch.engines import Emit, EngineContext
from mmfuse_cli.batch.stages import (
    InputLimits,
    RunOptions,
    describe_exception,
    fuse_group,
    group_pairs,
    load_pair,
    make_resolver,
    write_pair,
)
from mmfuse_cli.degradation.resolve import DegradationResolver
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.pairing import Pair
from mmfuse_cli.results.rows import ItemResult


class LocalEngine:
    """The local engine: decoding of upcoming pairs and writing of finished ones run in background threads while
    the model works in the calling thread, with bounded queues, so memory stays flat however many pairs there
    are. Results are emitted from the calling thread."""

    def __init__(self, fuser: Fuser, options: RunOptions, resolver: DegradationResolver):
        self.fuser = fuser
        self.options = options
        self.resolver = resolver

    @classmethod
    def from_context(cls, context: EngineContext) -> LocalEngine:
        """One :class:`~mmfuse_cli.engine.fuser.Fuser` of the run's model in this process."""
        return cls(Fuser(context.model, context.fuse), context.options, context.resolver)

    def process(self, todo: list[Pair], emit: Emit) -> str | None:
        """Fuse ``todo``, emitting each result; stops after a fatal write error and returns its reason."""
        options = self.options
        stop_reason: list[str] = []

        def record(result: ItemResult) -> None:
            if result.fatal and not stop_reason:
                stop_reason.append(result.reason)
            emit(result)

        pending_writes: deque[tuple[str, Future]] = deque()
        with (
            ThreadPoolExecutor(max(1, options.prefetch // 2), thread_name_prefix="mmfuse-read") as readers,
            ThreadPoolExecutor(options.writer_threads, thread_name_prefix="mmfuse-write") as writers,
        ):

            def drain(limit: int) -> None:
                while len(pending_writes) > limit or (pending_writes and pending_writes[0][1].done()):
                    key, future = pending_writes.popleft()
                    record(_outcome(future, key))

            loaded = _prefetched(todo, options.prefetch, self.resolver, options.limits, readers, record)
            for group in group_pairs(loaded, options.batch):
                if stop_reason:
                    break
                start = time.perf_counter()
                fused = fuse_group(group, self.fuser)
                if isinstance(fused[0], ItemResult):
                    for failure in fused:
                        record(failure)
                    continue
                elapsed = (time.perf_counter() - start) / len(group)
                for g, f in zip(group, fused):
                    pending_writes.append(
                        (g.pair.key, writers.submit(write_pair, g, f, options, g.seconds + elapsed))
                    )
                drain(limit=2 * options.writer_threads)
            drain(limit=0)
        return stop_reason[0] if stop_reason else None


def run_pairs(
    pairs: Iterable[Pair],
    fuser: Fuser,
    options: RunOptions,
    on_result: Callable[[ItemResult], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    resolver: DegradationResolver | None = None,
) -> list[ItemResult]:
    """Fuse every pair with a :class:`~mmfuse_cli.engine.fuser.Fuser` already in hand (a notebook, a benchmark):
    the local engine under the one driver (:func:`~mmfuse_cli.batch.driver.drive`); one result per pair, in input
    order. ``resolver``: default a new one (``on_warning`` gets its one-line warnings)."""
    resolver = resolver or make_resolver(options, on_warning, fuser.task)
    return drive(list(pairs), LocalEngine(fuser, options, resolver), options, on_result)


def _prefetched(
    pairs: list[Pair],
    prefetch: int,
    resolver: DegradationResolver,
    limits: InputLimits,
    pool: ThreadPoolExecutor,
    emit,
):
    """Yield loaded pairs in order, decoding up to ``prefetch`` ahead; emit load failures directly."""
    queue: deque[tuple[Pair, Future]] = deque()
    iterator = iter(pairs)
    exhausted = False
    while True:
        while not exhausted and len(queue) < prefetch:
            pair = next(iterator, None)
            if pair is None:
                exhausted = True
            else:
                queue.append((pair, pool.submit(load_pair, pair, resolver, limits)))
        if not queue:
            return
        pair, future = queue.popleft()
        loaded = _outcome(future, pair.key)
        if isinstance(loaded, ItemResult):
            emit(loaded)
            continue
        yield loaded


def _outcome(future: Future, key: str):
    """A worker thread's result; an exception that escaped it (none should) becomes pair ``key``'s failure."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - nothing in a worker thread may end the run
        return ItemResult(key, "failed", f"internal error ({describe_exception(exc)})")

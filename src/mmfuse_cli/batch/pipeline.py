"""Batch fusion of many pairs (library behind ``mmfuse run``): streaming, resumable, failure-isolated.

Three pure stages per pair: :func:`load_pair` (decode both files and resolve both degradations),
:func:`fuse_group` (one network batch of pairs sharing sizes and degradations), :func:`write_pair` (encode and
write atomically, then score). :func:`run_pairs` is the local engine: decoding of upcoming pairs and writing of
finished ones run in background threads while the model works, with bounded queues, so memory stays flat however
many pairs there are. Every pair ends as one :class:`~mmfuse_cli.report.rows.ItemResult` (``ok`` / ``failed``
with a reason / ``skipped``); a bad pair never stops the others. Outputs are written atomically, so after a crash
a file under its final name is complete and ``skip_existing`` can resume.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from mmfuse_cli.batch.stages import (
    LoadedPair,
    RunOptions,
    describe_exception,
    fuse_group,
    group_pairs,
    load_pair,
    make_resolver,
    output_path,
    write_pair,
)
from mmfuse_cli.degradation.resolve import DegradationResolver
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.files import remove_stale_temporaries
from mmfuse_cli.pairing import Pair
from mmfuse_cli.report.rows import ItemResult


# --- one worker's share, without threads (the Ray engine's actors; batch/ray_engine.py) -------------------
def process_pairs(
    pairs: Iterable[Pair], fuser: Fuser, options: RunOptions, resolver: DegradationResolver
) -> list[ItemResult]:
    """The three stages in sequence for a few pairs: load each, group as :func:`run_pairs` does (consecutive
    pairs sharing sizes and degradations, up to ``options.batch``), fuse, write. One result per pair, in input
    order; skip-existing is the caller's (the Ray driver decides it before dispatching)."""
    pairs = list(pairs)
    results: list[ItemResult] = []
    loaded: list[LoadedPair] = []
    for pair in pairs:
        item = load_pair(pair, resolver)
        if isinstance(item, ItemResult):
            results.append(item)
        else:
            loaded.append(item)
    for group in group_pairs(iter(loaded), options.batch):
        start = time.perf_counter()
        fused = fuse_group(group, fuser)
        if isinstance(fused[0], ItemResult):
            results.extend(fused)  # type: ignore[arg-type]
            continue
        elapsed = (time.perf_counter() - start) / len(group)
        results.extend(write_pair(g, f, options, g.seconds + elapsed) for g, f in zip(group, fused))
    order = {pair.key: i for i, pair in enumerate(pairs)}
    return sorted(results, key=lambda r: order[r.key])


# --- end of the Ray engine's entry point ------------------------------------------------------------------


def run_pairs(
    pairs: Iterable[Pair],
    fuser: Fuser,
    options: RunOptions,
    on_result: Callable[[ItemResult], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    resolver: DegradationResolver | None = None,
) -> list[ItemResult]:
    """Fuse every pair; returns one result per pair, in input order of completion.

    Failures (unreadable file, size mismatch, bad sidecar, non-finite output, write error) are recorded and the
    run continues. ``on_result`` is called from the calling thread as each pair finishes; ``on_warning`` with a
    one-line message when a source is assumed clean (once per side). ``resolver``: one made by
    :func:`make_resolver` (e.g. to check the top folders' sidecars before starting); default: a new one.
    """
    options.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(options.output_dir)
    results: list[ItemResult] = []
    stop_reason: list[str] = []

    def emit(result: ItemResult) -> None:
        results.append(result)
        if result.fatal and not stop_reason:
            stop_reason.append(result.reason)
        if on_result:
            on_result(result)

    pairs = list(pairs)

    resolver = resolver or make_resolver(options, on_warning, fuser.task)
    pending_writes: deque[tuple[str, Future]] = deque()
    with (
        ThreadPoolExecutor(max(1, options.prefetch // 2), thread_name_prefix="mmfuse-read") as readers,
        ThreadPoolExecutor(options.writer_threads, thread_name_prefix="mmfuse-write") as writers,
    ):

        def drain(limit: int) -> None:
            while len(pending_writes) > limit or (pending_writes and pending_writes[0][1].done()):
                key, future = pending_writes.popleft()
                emit(_outcome(future, key))

        for group in group_pairs(_prefetched(pairs, options, resolver, readers, emit), options.batch):
            if stop_reason:
                break
            start = time.perf_counter()
            fused = fuse_group(group, fuser)
            if isinstance(fused[0], ItemResult):
                for failure in fused:
                    emit(failure)  # type: ignore[arg-type]
                continue
            elapsed = (time.perf_counter() - start) / len(group)
            for g, f in zip(group, fused):
                pending_writes.append(
                    (g.pair.key, writers.submit(write_pair, g, f, options, g.seconds + elapsed))
                )
            drain(limit=2 * options.writer_threads)
        drain(limit=0)
    if stop_reason:
        done = {r.key for r in results}
        for pair in pairs:
            if pair.key not in done:
                emit(
                    ItemResult(
                        pair.key,
                        "failed",
                        f"not processed: run stopped after a fatal write error ({stop_reason[0]})",
                    )
                )
    return results


def _prefetched(
    pairs: Iterable[Pair], options: RunOptions, resolver: DegradationResolver, pool: ThreadPoolExecutor, emit
):
    """Yield loaded pairs in order, decoding up to ``options.prefetch`` ahead; emit skips/failures directly."""
    queue: deque[tuple[Pair, Future | None]] = deque()
    iterator = iter(pairs)

    def fill() -> bool:
        try:
            pair = next(iterator)
        except StopIteration:
            return False
        if options.skip_existing and output_path(options, pair.key).exists():
            queue.append((pair, None))
        else:
            queue.append((pair, pool.submit(load_pair, pair, resolver)))
        return True

    exhausted = False
    while True:
        while not exhausted and len(queue) < options.prefetch:
            exhausted = not fill()
        if not queue:
            return
        pair, future = queue.popleft()
        if future is None:
            emit(ItemResult(pair.key, "skipped", "output exists", 0.0, str(output_path(options, pair.key))))
            continue
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

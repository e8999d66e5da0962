"""The one driver of a batch run, whatever the engine: the bookkeeping every engine shares, done once.

:func:`drive` makes the output folder, clears stale temporary files a killed run left there, answers
skip-existing, hands the remaining pairs to the engine (:class:`~mmfuse_cli.batch.engines.Engine`), lists the
pairs a fatal failure left undone as ``not processed``, and returns one result per pair in input order.
"""

from __future__ import annotations

from collections.abc import Callable

from mmfuse_cli.batch.engines import Engine
from mmfuse_cli.batch.stages import RunOptions, output_path
from mmfuse_cli.files import remove_stale_temporaries
from mmfuse_cli.pairing import Pair
from mmfuse_cli.results.rows import ItemResult


def drive(
    pairs: list[Pair],
    engine: Engine,
    options: RunOptions,
    on_result: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Run ``pairs`` through ``engine``; ``on_result`` is called as each pair ends (completion order).

    Returns:
        One :class:`~mmfuse_cli.results.rows.ItemResult` per pair (``ok``, ``failed`` with a reason, or
        ``skipped``), in the order of ``pairs``.
    """
    options.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(options.output_dir)
    results: list[ItemResult] = []

    def emit(result: ItemResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    todo: list[Pair] = []
    for pair in pairs:
        target = output_path(options, pair.key)
        if options.skip_existing and target.exists():
            emit(ItemResult(pair.key, "skipped", "output exists", 0.0, str(target)))
        else:
            todo.append(pair)
    stop_reason = engine.process(todo, emit) if todo else None
    if stop_reason is None:
        remove_stale_temporaries(
            options.output_dir
        )  # a killed Ray actor's half-written file (its retry rewrote it)
    else:
        done = {r.key for r in results}
        for pair in pairs:
            if pair.key not in done:
                reason = f"not processed: run stopped after a fatal write error ({stop_reason})"
                emit(ItemResult(pair.key, "failed", reason))
    return in_input_order(results, pairs)


def in_input_order(results: list[ItemResult], pairs: list[Pair]) -> list[ItemResult]:
    """``results`` sorted as their pairs are in ``pairs`` (results of no listed pair last, as they came)."""
    order = {pair.key: i for i, pair in enumerate(pairs)}
    return sorted(results, key=lambda r: order.get(r.key, len(order)))


__all__ = ["drive", "in_input_order"]

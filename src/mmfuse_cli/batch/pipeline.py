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

import errno
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse_cli.degradation.resolve import DegradationResolver, ResolvedSource, ResolveError, SourceRequest
from mmfuse_cli.engine.fuser import FusedPair, Fuser, FusionError
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.files import remove_stale_temporaries
from mmfuse_cli.io import ImageError, LoadedImage, read_image, write_image
from mmfuse_cli.metrics import no_reference_metrics
from mmfuse_cli.pairing import Pair
from mmfuse_cli.report.rows import ItemResult

OUTPUT_FORMATS = ("png", "tif", "jpg", "bmp")
EIGHT_BIT_FORMATS = ("jpg", "bmp")
FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
"""Write errors that will hit every later pair too (full disk, read-only or forbidden folder): the run stops."""


@dataclass
class RunOptions:
    """Options of a batch run.

    Attributes:
        output_dir: where fused images go (``<key>.<format>``), plus ``sources/a``, ``sources/b`` when
            ``save_sources``.
        source_a, source_b: what the user stated about each source (see :mod:`mmfuse_cli.degradation.resolve`:
            nothing stated = the ``degradation.json`` sidecar next to each input file, else clean).
        out_format: output extension without dot (``png``, ``tif``, ``jpg``, ``bmp``; case and a leading dot
            are accepted).
        bit_depth: 8 or 16, or ``None`` for the larger of the two inputs' depths (8 for jpg/bmp).
        batch: pairs per network call (pairs are grouped when sizes and degradations agree), >= 1.
        skip_existing: do not recompute pairs whose fused output already exists.
        metrics: compute no-reference metrics (EN, SD, SF, AG) of each fused image for the report.
        prefetch: how many pairs are decoded ahead of the model.

    Raises:
        InvalidValueError: naming the field (``out_format``, ``bit_depth``, ``batch``, ``prefetch``,
            ``writer_threads``).
    """

    output_dir: Path
    source_a: SourceRequest = field(default_factory=SourceRequest)
    source_b: SourceRequest = field(default_factory=SourceRequest)
    out_format: str = "png"
    bit_depth: int | None = None
    batch: int = 1
    save_sources: bool = False
    skip_existing: bool = False
    metrics: bool = True
    prefetch: int = 4
    writer_threads: int = 2

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir)
        self.out_format = self.out_format.lower().lstrip(".")
        if self.out_format not in OUTPUT_FORMATS:
            raise InvalidValueError(
                "out_format", f"must be one of {', '.join(OUTPUT_FORMATS)}, got {self.out_format!r}"
            )
        if self.bit_depth not in (None, 8, 16):
            raise InvalidValueError("bit_depth", f"must be 8 or 16, got {self.bit_depth}")
        if self.bit_depth == 16 and self.out_format in EIGHT_BIT_FORMATS:
            raise InvalidValueError("bit_depth", f"16-bit samples cannot be stored as {self.out_format}")
        for name in ("batch", "prefetch", "writer_threads"):
            if getattr(self, name) < 1:
                raise InvalidValueError(name, f"must be >= 1, got {getattr(self, name)}")


@dataclass
class LoadedPair:
    """A pair decoded and resolved: both files' pixels and the degradation each is fused with."""

    pair: Pair
    a: LoadedImage
    b: LoadedImage
    source_a: ResolvedSource
    source_b: ResolvedSource
    seconds: float


def output_path(options: RunOptions, key: str, kind: str = "fused") -> Path:
    """Where the fused image (``kind="fused"``) or a restored source (``"a"``, ``"b"``) of pair ``key`` goes."""
    base = options.output_dir if kind == "fused" else options.output_dir / "sources" / kind
    return base / f"{key}.{options.out_format}"


def make_resolver(
    options: RunOptions, on_warning: Callable[[str], None] | None = None
) -> DegradationResolver:
    """The run's one :class:`DegradationResolver` (what was stated about each source, then sidecars, then clean)."""
    return DegradationResolver(options.source_a, options.source_b, on_warning)


def load_pair(pair: Pair, resolver: DegradationResolver) -> LoadedPair | ItemResult:
    """Stage 1: decode both files and decide both degradations; a ``failed`` result says what went wrong."""
    start = time.perf_counter()
    try:
        a = read_image(pair.a)
        b = read_image(pair.b)
        source_a = resolver.resolve("a", pair.a, a.pixels, a.bit_depth)
        source_b = resolver.resolve("b", pair.b, b.pixels, b.bit_depth)
    except (ImageError, ResolveError, ValueError) as exc:
        return ItemResult(pair.key, "failed", str(exc), time.perf_counter() - start)
    except OSError as exc:
        return ItemResult(
            pair.key,
            "failed",
            f"{exc.filename or pair.a}: {exc.strerror or exc}",
            time.perf_counter() - start,
        )
    return LoadedPair(pair, a, b, source_a, source_b, time.perf_counter() - start)


def fuse_group(group: list[LoadedPair], fuser: Fuser) -> list[FusedPair] | list[ItemResult]:
    """Stage 2: fuse pairs that share sizes and degradations in one network batch; on failure one ``failed``
    result per pair (naming its first file), in order."""
    start = time.perf_counter()
    first = group[0]
    try:
        return fuser.fuse_batch(
            [g.a.pixels for g in group],
            [g.b.pixels for g in group],
            first.source_a.degradation,
            first.source_b.degradation,
        )
    except (FusionError, ValueError, RuntimeError) as exc:
        elapsed = time.perf_counter() - start
        return [
            ItemResult(g.pair.key, "failed", f"{g.pair.a}: {exc}", g.seconds + elapsed / len(group))
            for g in group
        ]


def write_pair(loaded: LoadedPair, fused: FusedPair, options: RunOptions, seconds: float) -> ItemResult:
    """Stage 3: write the fused image (and restored sources) atomically, then score it; ``seconds`` so far."""
    start = time.perf_counter()
    key = loaded.pair.key
    depth = options.bit_depth or max(loaded.a.bit_depth, loaded.b.bit_depth)
    if options.out_format in ("jpg", "bmp"):
        depth = 8
    target = output_path(options, key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if options.save_sources:
            for kind, pixels in (("a", fused.a), ("b", fused.b)):
                src_path = output_path(options, key, kind)
                src_path.parent.mkdir(parents=True, exist_ok=True)
                write_image(src_path, pixels, depth)
        write_image(target, fused.fused, depth)  # last: its presence marks the pair as done
    except (OSError, ImageError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        fatal = isinstance(exc, OSError) and exc.errno in FATAL_WRITE_ERRORS
        elapsed = seconds + time.perf_counter() - start
        return ItemResult(key, "failed", f"{target}: cannot write ({reason})", elapsed, fatal=fatal)
    # what the model was told about each source (flags, sidecar or clean; the pixel grid included)
    extra: dict = {
        "a": str(loaded.pair.a),
        "b": str(loaded.pair.b),
        "a_degradation": loaded.source_a.degradation.describe(),
        "b_degradation": loaded.source_b.degradation.describe(),
    }
    if options.metrics:
        extra.update(no_reference_metrics(fused.fused))
    return ItemResult(key, "ok", "", seconds + time.perf_counter() - start, str(target), extra)


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
    for group in _batches(iter(loaded), options.batch):
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

    resolver = resolver or make_resolver(options, on_warning)
    pending_writes: deque[Future] = deque()
    with (
        ThreadPoolExecutor(max(1, options.prefetch // 2), thread_name_prefix="mmfuse-read") as readers,
        ThreadPoolExecutor(options.writer_threads, thread_name_prefix="mmfuse-write") as writers,
    ):

        def drain(limit: int) -> None:
            while len(pending_writes) > limit or (pending_writes and pending_writes[0].done()):
                emit(pending_writes.popleft().result())

        for group in _batches(_prefetched(pairs, options, resolver, readers, emit), options.batch):
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
                pending_writes.append(writers.submit(write_pair, g, f, options, g.seconds + elapsed))
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
        loaded = future.result()
        if isinstance(loaded, ItemResult):
            emit(loaded)
            continue
        yield loaded


def _batches(loaded: Iterator[LoadedPair], size: int) -> Iterator[list[LoadedPair]]:
    """Group consecutive pairs that share sizes and degradations, up to ``size`` per group."""
    group: list[LoadedPair] = []
    for item in loaded:
        if group and (len(group) >= size or _signature(group[0]) != _signature(item)):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _signature(item: LoadedPair) -> tuple:
    """Pairs with equal signatures can share a network batch: sizes and whole degradations (bit depths too)."""
    return (
        item.a.pixels.shape[:2],
        item.b.pixels.shape[:2],
        item.source_a.degradation,
        item.source_b.degradation,
    )

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

import dataclasses
import errno
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmfuse_cli.degradation.resolve import DegradationResolver, ResolvedSource, ResolveError, SourceRequest
from mmfuse_cli.engine.fuser import FusedPair, Fuser
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.files import remove_stale_temporaries
from mmfuse_cli.io import ImageError, LoadedImage, read_image, write_image
from mmfuse_cli.metrics import NO_REFERENCE, no_reference_metrics
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
        source_a, source_b = resolver.resolve_pair(
            pair.a, a.pixels, a.bit_depth, pair.b, b.pixels, b.bit_depth
        )
        a, b, cropped = _crop_to_common_grid(a, b, source_a.degradation.scale, source_b.degradation.scale)
        if cropped:
            source_b = dataclasses.replace(source_b, notes=(*source_b.notes, cropped))
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


def _crop_to_common_grid(a: LoadedImage, b: LoadedImage, scale_a: int, scale_b: int):
    """Odd sizes: ``a`` at x2 of 320 x 240 pixels and ``b`` of 641 x 481 share the 640 x 480 grid once ``b`` loses
    its last row and column. The common grid is the smaller of the two, on multiples of both scales; an image that
    overhangs it by less than twice the larger scale (output pixels) is cropped to it. Returns both images and a
    note ("" when nothing was cut); larger differences are left for the size check to report."""
    unit = math.lcm(scale_a, scale_b)
    (ha, wa), (hb, wb) = a.pixels.shape[:2], b.pixels.shape[:2]
    grid = (min(ha * scale_a, hb * scale_b) // unit * unit, min(wa * scale_a, wb * scale_b) // unit * unit)
    tolerance = 2 * max(scale_a, scale_b)
    notes, out = [], []
    for name, image, scale in (("a", a, scale_a), ("b", b, scale_b)):
        h, w = image.pixels.shape[:2]
        th, tw = grid[0] // scale, grid[1] // scale
        overhang = (h * scale - grid[0], w * scale - grid[1])
        if (th, tw) != (h, w) and all(0 <= o < tolerance for o in overhang) and th > 0 and tw > 0:
            image = dataclasses.replace(image, pixels=image.pixels[:th, :tw])
            notes.append(f"{name} cropped from {w}x{h} to {tw}x{th} (odd size)")
        out.append(image)
    return out[0], out[1], "; ".join(notes)


def fuse_group(group: list[LoadedPair], fuser: Fuser) -> list[FusedPair] | list[ItemResult]:
    """Stage 2: fuse pairs that share sizes and degradations in one network batch; on any failure (sizes no scale
    explains, a non-finite output, out of memory, a backend's error) one ``failed`` result per pair naming both
    files, in order. Never raises."""
    start = time.perf_counter()
    first = group[0]
    try:
        return fuser.fuse_batch(
            [g.a.pixels for g in group],
            [g.b.pixels for g in group],
            first.source_a.degradation,
            first.source_b.degradation,
        )
    except Exception as exc:  # noqa: BLE001 - these pairs' failure, never the run's
        elapsed = time.perf_counter() - start
        reason = _describe(exc)
        return [
            ItemResult(
                g.pair.key, "failed", f"{g.pair.a} + {g.pair.b}: {reason}", g.seconds + elapsed / len(group)
            )
            for g in group
        ]


def write_pair(loaded: LoadedPair, fused: FusedPair, options: RunOptions, seconds: float) -> ItemResult:
    """Stage 3: score the fused image, then write it (and the restored sources) atomically; ``seconds`` so far.

    Never raises: a scoring failure fails the pair before anything is written; a write failure fails it with the
    file named (``fatal`` when every later pair would hit it too: a full disk, a read-only folder).
    """
    start = time.perf_counter()
    key = loaded.pair.key
    depth = options.bit_depth or max(loaded.a.bit_depth, loaded.b.bit_depth)
    if options.out_format in EIGHT_BIT_FORMATS:
        depth = 8
    target = output_path(options, key)
    # what the model was told about each source (flags, sidecar or clean; the pixel grid included)
    extra: dict = {
        "a": str(loaded.pair.a),
        "b": str(loaded.pair.b),
        "a_degradation": loaded.source_a.degradation.describe(),
        "b_degradation": loaded.source_b.degradation.describe(),
        **loaded.source_a.row("a"),
        **loaded.source_b.row("b"),
    }
    notes = "; ".join((*loaded.source_a.notes, *loaded.source_b.notes))
    if notes:
        extra["notes"] = notes
    try:
        if options.metrics:
            extra.update(score_fused(fused.fused))
    except Exception as exc:  # noqa: BLE001 - one pair's failure, never the run's
        return ItemResult(
            key, "failed", f"{target}: cannot score ({_describe(exc)})", seconds + time.perf_counter() - start
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if options.save_sources:
            for kind, pixels in (("a", fused.a), ("b", fused.b)):
                src_path = output_path(options, key, kind)
                src_path.parent.mkdir(parents=True, exist_ok=True)
                write_image(src_path, pixels, depth)
        write_image(target, fused.fused, depth)  # last: its presence marks the pair as done
    except Exception as exc:  # noqa: BLE001 - one pair's failure, never the run's
        reason = getattr(exc, "strerror", None) or _describe(exc)
        fatal = isinstance(exc, OSError) and exc.errno in FATAL_WRITE_ERRORS
        elapsed = seconds + time.perf_counter() - start
        return ItemResult(key, "failed", f"{target}: cannot write ({reason})", elapsed, fatal=fatal)
    return ItemResult(key, "ok", "", seconds + time.perf_counter() - start, str(target), extra)


def score_fused(fused: np.ndarray) -> dict[str, float]:
    """The no-reference metrics (EN, SD, SF, AG) of a fused image; NaN (an empty cell) for an image smaller than
    2 x 2, on which they are not defined."""
    if min(fused.shape[:2]) < 2:
        return dict.fromkeys(NO_REFERENCE, math.nan)
    return no_reference_metrics(fused)


def _describe(exc: BaseException) -> str:
    """One line for an unexpected exception: its message, or its type when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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
    pending_writes: deque[tuple[str, Future]] = deque()
    with (
        ThreadPoolExecutor(max(1, options.prefetch // 2), thread_name_prefix="mmfuse-read") as readers,
        ThreadPoolExecutor(options.writer_threads, thread_name_prefix="mmfuse-write") as writers,
    ):

        def drain(limit: int) -> None:
            while len(pending_writes) > limit or (pending_writes and pending_writes[0][1].done()):
                key, future = pending_writes.popleft()
                emit(_outcome(future, key))

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
        return ItemResult(key, "failed", f"internal error ({_describe(exc)})")


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

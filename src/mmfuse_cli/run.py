"""Batch fusion of many pairs (library behind ``mmfuse run``): streaming, resumable, failure-isolated.

Decoding of upcoming pairs and encoding/writing of finished ones run in background threads while the model
works, with bounded queues, so memory stays flat however many pairs there are. Every pair ends as one
:class:`~mmfuse_cli.reporting.ItemResult` (``ok`` / ``failed`` with a reason / ``skipped``); a bad pair never
stops the others. Outputs are written atomically, so after a crash a file under its final name is complete
and ``skip_existing`` can resume.
"""

from __future__ import annotations

import errno
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from mmfuse_cli.degradation import Degradation
from mmfuse_cli.files import remove_stale_temporaries
from mmfuse_cli.fuse import FusedPair, Fuser, FusionError, check_sizes
from mmfuse_cli.io import ImageError, LoadedImage, read_image, write_image
from mmfuse_cli.metrics import no_reference_metrics
from mmfuse_cli.pairing import Pair
from mmfuse_cli.pixel_grid import grid_claim_holds
from mmfuse_cli.reporting import ItemResult
from mmfuse_cli.sidecar import SIDECAR_NAME, SidecarError, read_sidecar

OUTPUT_FORMATS = ("png", "tif", "jpg", "bmp")
FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
"""Write errors that will hit every later pair too (full disk, read-only or forbidden folder): the run stops."""


@dataclass
class RunOptions:
    """Options of a batch run.

    Attributes:
        output_dir: where fused images go (``<key>.<format>``), plus ``sources/a``, ``sources/b`` when
            ``save_sources``.
        deg_a, deg_b: degradations of the two sources; ``None`` = look for a ``degradation.json`` sidecar next
            to each input file, else assume clean.
        out_format: output extension without dot.
        bit_depth: 8 or 16, or ``None`` for the larger of the two inputs' depths (8 for jpg/bmp).
        batch: pairs per network call (pairs are grouped when sizes and degradations agree).
        skip_existing: do not recompute pairs whose fused output already exists.
        metrics: compute no-reference metrics (EN, SD, SF, AG) of each fused image for the report.
        prefetch: how many pairs are decoded ahead of the model.
        input_bits: bit depth the model is told the inputs were rounded to (``None`` = each file's own depth;
            0 = treat the inputs as exact values, trusting the data as much as for noiseless float input).
        grid_a, grid_b: pixel grid of each source (``Degradation.grid``), set over whatever the flags or the
            sidecar say; ``None`` = as they say (1 unless a sidecar has ``"grid"``).
    """

    output_dir: Path
    deg_a: Degradation | None = None
    deg_b: Degradation | None = None
    out_format: str = "png"
    bit_depth: int | None = None
    batch: int = 1
    save_sources: bool = False
    skip_existing: bool = False
    metrics: bool = True
    prefetch: int = 4
    writer_threads: int = 2
    input_bits: int | None = None
    grid_a: int | None = None
    grid_b: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Loaded:
    pair: Pair
    a: LoadedImage
    b: LoadedImage
    deg_a: Degradation
    deg_b: Degradation
    seconds: float


class SidecarCache:
    """Reads each folder's ``degradation.json`` once (thread-safe); errors are cached too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, Degradation | SidecarError | None] = {}

    def degradation_for(self, image_path: Path) -> Degradation | None:
        folder = image_path.parent
        with self._lock:
            if folder not in self._cache:
                path = folder / SIDECAR_NAME
                try:
                    self._cache[folder] = read_sidecar(path).degradation if path.exists() else None
                except SidecarError as exc:
                    self._cache[folder] = exc
            value = self._cache[folder]
        if isinstance(value, SidecarError):
            raise value
        return value


def output_path(options: RunOptions, key: str, kind: str = "fused") -> Path:
    base = options.output_dir if kind == "fused" else options.output_dir / "sources" / kind
    return base / f"{key}.{options.out_format}"


def _with_grid(degradation: Degradation, grid: int | None) -> Degradation:
    return degradation if grid is None else replace(degradation, grid=grid)


def _check_grid_claim(path: Path, pixels, degradation: Degradation) -> None:
    """Refuse a pixel grid that an undegraded file visibly does not have: projecting onto it would blur the file.
    (Degraded files cannot be checked: blur and noise hide the blocks; see :func:`grid_claim_holds`.)"""
    if degradation.grid > 1 and degradation.is_clean and not grid_claim_holds(pixels, degradation.grid):
        g = degradation.grid
        raise ValueError(f"{path}: a {g}x{g} pixel grid was stated, but this undegraded file is not stored as {g}x{g} blocks")


def _load(pair: Pair, options: RunOptions, sidecars: SidecarCache) -> _Loaded | ItemResult:
    start = time.perf_counter()
    try:
        deg_a = _with_grid(options.deg_a or sidecars.degradation_for(pair.a) or Degradation(), options.grid_a)
        deg_b = _with_grid(options.deg_b or sidecars.degradation_for(pair.b) or Degradation(), options.grid_b)
        a = read_image(pair.a)
        b = read_image(pair.b)
        check_sizes(a.pixels.shape, b.pixels.shape, deg_a, deg_b)
        _check_grid_claim(pair.a, a.pixels, deg_a)
        _check_grid_claim(pair.b, b.pixels, deg_b)
    except (ImageError, SidecarError, FusionError, ValueError) as exc:
        return ItemResult(pair.key, "failed", str(exc), time.perf_counter() - start)
    except OSError as exc:
        return ItemResult(pair.key, "failed", f"{exc.filename or pair.a}: {exc.strerror or exc}", time.perf_counter() - start)
    return _Loaded(pair, a, b, deg_a, deg_b, time.perf_counter() - start)


def _write(loaded: _Loaded, fused: FusedPair, options: RunOptions, seconds: float) -> ItemResult:
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
        "a_degradation": loaded.deg_a.describe(),
        "b_degradation": loaded.deg_b.describe(),
    }
    if options.metrics:
        extra.update(no_reference_metrics(fused.fused))
    return ItemResult(key, "ok", "", seconds + time.perf_counter() - start, str(target), extra)


def run_pairs(
    pairs: Iterable[Pair],
    fuser: Fuser,
    options: RunOptions,
    on_result: Callable[[ItemResult], None] | None = None,
) -> list[ItemResult]:
    """Fuse every pair; returns one result per pair, in input order of completion.

    Failures (unreadable file, size mismatch, bad sidecar, non-finite output, write error) are recorded and the
    run continues. ``on_result`` is called from the calling thread as each pair finishes.
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

    sidecars = SidecarCache()
    pending_writes: deque[Future] = deque()
    with ThreadPoolExecutor(max(1, options.prefetch // 2), thread_name_prefix="mmfuse-read") as readers, ThreadPoolExecutor(
        options.writer_threads, thread_name_prefix="mmfuse-write"
    ) as writers:

        def drain(limit: int) -> None:
            while len(pending_writes) > limit or (pending_writes and pending_writes[0].done()):
                emit(pending_writes.popleft().result())

        for group in _batches(_prefetched(pairs, options, sidecars, readers, emit), options.batch):
            if stop_reason:
                break
            start = time.perf_counter()
            try:
                first = group[0]
                fused = fuser.fuse_batch(
                    [g.a.pixels for g in group],
                    [g.b.pixels for g in group],
                    first.deg_a,
                    first.deg_b,
                    bits=_model_bits(first, options),
                )
            except (FusionError, ValueError, RuntimeError) as exc:
                elapsed = time.perf_counter() - start
                for g in group:
                    emit(ItemResult(g.pair.key, "failed", f"{g.pair.a}: {exc}", g.seconds + elapsed / len(group)))
                continue
            elapsed = (time.perf_counter() - start) / len(group)
            for g, f in zip(group, fused):
                pending_writes.append(writers.submit(_write, g, f, options, g.seconds + elapsed))
            drain(limit=2 * options.writer_threads)
        drain(limit=0)
    if stop_reason:
        done = {r.key for r in results}
        for pair in pairs:
            if pair.key not in done:
                emit(ItemResult(pair.key, "failed", f"not processed: run stopped after a fatal write error ({stop_reason[0]})"))
    return results


def _prefetched(pairs: Iterable[Pair], options: RunOptions, sidecars: SidecarCache, pool: ThreadPoolExecutor, emit):
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
            queue.append((pair, pool.submit(_load, pair, options, sidecars)))
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


def _batches(loaded: Iterator[_Loaded], size: int) -> Iterator[list[_Loaded]]:
    """Group consecutive pairs that share sizes and degradations, up to ``size`` per group."""
    group: list[_Loaded] = []
    for item in loaded:
        if group and (len(group) >= size or _signature(group[0]) != _signature(item)):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def _model_bits(item: _Loaded, options: RunOptions) -> tuple[int, int]:
    """The bit depths the model is told for a pair: ``--input-bits`` if given, else those of its files."""
    if options.input_bits is not None:
        return options.input_bits, options.input_bits
    return item.a.bit_depth, item.b.bit_depth


def _signature(item: _Loaded) -> tuple:
    return (item.a.pixels.shape[:2], item.b.pixels.shape[:2], item.deg_a, item.deg_b, item.a.bit_depth, item.b.bit_depth)

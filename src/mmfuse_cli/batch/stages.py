"""The pure stages of a batch run, shared by every engine (local threads, Ray actors).

:func:`load_pair` decodes both files and resolves both degradations; :func:`fuse_group` runs one network batch of
pairs that share sizes and degradations (grouped by :func:`group_pairs`); :func:`write_pair` scores the fused image
and writes it atomically. Each turns any failure into one :class:`~mmfuse_cli.results.rows.ItemResult` of its
pair, never an exception. :class:`RunOptions` is validated once, here.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmfuse_cli.degradation.resolve import DegradationResolver, ResolvedSource, ResolveError, SourceRequest
from mmfuse_cli.engine.fuser import FusedPair, Fuser
from mmfuse_cli.engine.memory import minimum_peak
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.io import ImageError, LoadedImage, check_pixel_limit, read_image, read_image_size, write_image
from mmfuse_cli.metrics import NO_REFERENCE, no_reference_metrics
from mmfuse_cli.pairing import Pair
from mmfuse_cli.results.rows import ItemResult
from mmfuse_cli.tasks import DEFAULT_TASK, Task

OUTPUT_FORMATS = ("png", "tif", "jpg", "bmp")
EIGHT_BIT_FORMATS = ("jpg", "bmp")
FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
"""Write errors that will hit every later pair too (full disk, read-only or forbidden folder): the run stops."""


@dataclass(frozen=True)
class InputLimits:
    """What a pair may ask for before it is decoded (read from the files' headers).

    Attributes:
        max_pixels: the largest image, width x height (0: none; ``None``: the process limit,
            :func:`mmfuse_cli.limits.current_pixel_limit`).
        max_memory: the run's memory budget in bytes (``None``: none): a pair whose modelled peak exceeds it even
            in the smallest tiles (:func:`mmfuse_cli.engine.memory.minimum_peak`) is refused, not attempted.
    """

    max_pixels: int | None = None
    max_memory: int | None = None

    def check(self, pair: Pair) -> None:
        """Raise :class:`ImageError` (naming the file) when either image is too large to attempt."""
        sizes = []
        for path in (pair.a, pair.b):
            check_pixel_limit(path, self.max_pixels)
            sizes.append(read_image_size(path).pixels)
        if self.max_memory is not None:
            need = minimum_peak(max(sizes))
            if need > self.max_memory:
                raise ImageError(
                    f"{pair.a} + {pair.b}: needs about {need / 2**30:.1f} GiB even in the smallest tiles, above "
                    f"the memory budget of {self.max_memory / 2**30:.1f} GiB (--max-memory)"
                )


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
        limits: what a pair may ask for before it is decoded (:class:`InputLimits`).

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
    limits: InputLimits = field(default_factory=InputLimits)

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
    options: RunOptions, on_warning: Callable[[str], None] | None = None, task: Task = DEFAULT_TASK
) -> DegradationResolver:
    """The run's one :class:`DegradationResolver` (what was stated about each source, then sidecars, then the
    estimate; ``task``: the model's, whose idea of sharp a blur estimate is measured against)."""
    return DegradationResolver(options.source_a, options.source_b, on_warning, task)


def load_pair(
    pair: Pair, resolver: DegradationResolver, limits: InputLimits | None = None
) -> LoadedPair | ItemResult:
    """Stage 1: check both headers against ``limits``, decode both files and decide both degradations; a
    ``failed`` result says what went wrong."""
    start = time.perf_counter()
    limits = limits or InputLimits()
    try:
        limits.check(pair)
        a = read_image(pair.a, limits.max_pixels)
        b = read_image(pair.b, limits.max_pixels)
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
        reason = describe_exception(exc)
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
            key,
            "failed",
            f"{target}: cannot score ({describe_exception(exc)})",
            seconds + time.perf_counter() - start,
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
        reason = getattr(exc, "strerror", None) or describe_exception(exc)
        fatal = isinstance(exc, OSError) and exc.errno in FATAL_WRITE_ERRORS
        elapsed = seconds + time.perf_counter() - start
        return ItemResult(key, "failed", f"{target}: cannot write ({reason})", elapsed, fatal=fatal)
    return ItemResult(key, "ok", "", seconds + time.perf_counter() - start, str(target), extra)


def run_stages(
    pairs: list[Pair], fuser: Fuser, options: RunOptions, resolver: DegradationResolver
) -> list[ItemResult]:
    """The three stages in sequence for a few pairs, without threads (one Ray actor's share): load each, group as
    the local engine does (consecutive pairs sharing sizes and degradations, up to ``options.batch``), fuse,
    write. One result per pair, in input order."""
    results: list[ItemResult] = []
    loaded: list[LoadedPair] = []
    for pair in pairs:
        item = load_pair(pair, resolver, options.limits)
        if isinstance(item, ItemResult):
            results.append(item)
        else:
            loaded.append(item)
    for group in group_pairs(iter(loaded), options.batch):
        start = time.perf_counter()
        fused = fuse_group(group, fuser)
        if isinstance(fused[0], ItemResult):
            results.extend(fused)
            continue
        elapsed = (time.perf_counter() - start) / len(group)
        results.extend(write_pair(g, f, options, g.seconds + elapsed) for g, f in zip(group, fused))
    order = {pair.key: i for i, pair in enumerate(pairs)}
    return sorted(results, key=lambda r: order[r.key])


def score_fused(fused: np.ndarray) -> dict[str, float]:
    """The no-reference metrics (EN, SD, SF, AG) of a fused image; NaN (an empty cell) for an image smaller than
    2 x 2, on which they are not defined."""
    if min(fused.shape[:2]) < 2:
        return dict.fromkeys(NO_REFERENCE, math.nan)
    return no_reference_metrics(fused)


def describe_exception(exc: BaseException) -> str:
    """One line for an unexpected exception: its message, or its type when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def group_pairs(loaded: Iterator[LoadedPair], size: int) -> Iterator[list[LoadedPair]]:
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

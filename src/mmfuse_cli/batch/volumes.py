"""Volume pairs of ``mmfuse run``: NIfTI files and DICOM series, fused slice by slice on b's grid.

A pair is a volume pair when either side is a volume (:func:`is_volume_pair`); ``batch/run.py`` routes those
here, one pair at a time, through the same :class:`~mmfuse_cli.engine.fuser.Fuser` the local engine uses, and
their rows go to run.csv as the images' do. One pair (:func:`fuse_volume_pair`):

1. :func:`~mmfuse_cli.batch.volume_prep.prepare_volumes`: read both, check the geometry, a onto b's grid, both
   to [0, 1], one degradation per source for the whole volume;
2. b's slices (its third voxel axis) in chunks of :data:`CHUNK_SLICES` (or ``--batch``, if larger): a is
   resampled for the chunk only, so memory holds the two volumes, the output and one chunk; a slice with no body
   in either source is blank (fused 0, not sent to the network); the others go through
   :meth:`~mmfuse_cli.engine.fuser.Fuser.fuse_batch` ``--batch`` slices at a time with the two shared
   degradations;
3. the fused volume is written as NIfTI on b's grid (:func:`~mmfuse_cli.volume_io.write_nifti`: b's affine,
   qform / sform and codes; float32 in [0, 1], or with ``volume_dtype="b"`` b's stored dtype in b's units through
   its intensity window), restored sources first with ``save_sources``, the fused volume last;
4. the row: what each source was told and where it came from, the intensity rule and each window, both
   geometries, the slice counts, the mean no-reference metrics of the fused slices.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmfuse_cli.batch.stages import FATAL_WRITE_ERRORS, RunOptions, describe_exception, score_fused
from mmfuse_cli.batch.volume_prep import PreparedVolumes, prepare_volumes
from mmfuse_cli.degradation.resolve import DegradationResolver
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.files import remove_stale_temporaries
from mmfuse_cli.pairing import Pair
from mmfuse_cli.results.rows import ItemResult
from mmfuse_cli.volume_io import is_volume_path, write_nifti
from mmfuse_cli.volume_io.intensity import INTENSITY_RULE

CHUNK_SLICES = 8
"""b's slices resampled, mapped and held at a time."""
VOLUME_DTYPES = ("float32", "b")
"""How a fused volume is stored: float32 in [0, 1], or b's stored dtype in b's units."""


def is_volume_pair(pair: Pair) -> bool:
    """Either side is a volume (a NIfTI file, a DICOM series folder or file)."""
    return is_volume_path(pair.a) or is_volume_path(pair.b)


def volume_output_path(options: RunOptions, pair: Pair, kind: str = "fused") -> Path:
    """Where the fused volume (``kind="fused"``) or a restored source (``"a"``, ``"b"``) of ``pair`` goes:
    ``<key>.nii`` when b is a ``.nii`` file, else ``<key>.nii.gz``."""
    suffix = ".nii" if pair.b.name.lower().endswith(".nii") else ".nii.gz"
    base = options.output_dir if kind == "fused" else options.output_dir / "sources" / kind
    return base / f"{pair.key}{suffix}"


def run_volume_pairs(
    pairs: list[Pair],
    fuser: Fuser,
    options: RunOptions,
    resolver: DegradationResolver,
    emit: Callable[[ItemResult], None],
    volume_dtype: str = "float32",
    on_warning: Callable[[str], None] | None = None,
) -> list[ItemResult]:
    """Fuse ``pairs`` one after the other, emitting each result; skip-existing as for images; after a fatal write
    error (a full disk) the rest are ``not processed``; each distinct warning once. One result per pair, in
    order."""
    options.output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(options.output_dir)
    results: list[ItemResult] = []
    stop_reason = ""
    warned: set[str] = set()

    def warn(message: str) -> None:
        if on_warning is not None and message not in warned:
            warned.add(message)
            on_warning(message)

    for pair in pairs:
        target = volume_output_path(options, pair)
        if stop_reason:
            reason = f"not processed: run stopped after a fatal write error ({stop_reason})"
            result = ItemResult(pair.key, "failed", reason)
        elif options.skip_existing and target.exists():
            result = ItemResult(pair.key, "skipped", "output exists", 0.0, str(target))
        else:
            result = fuse_volume_pair(pair, fuser, options, resolver, volume_dtype, warn)
            if result.fatal:
                stop_reason = result.reason
        results.append(result)
        emit(result)
    return results


def fuse_volume_pair(
    pair: Pair,
    fuser: Fuser,
    options: RunOptions,
    resolver: DegradationResolver,
    volume_dtype: str = "float32",
    on_warning: Callable[[str], None] | None = None,
) -> ItemResult:
    """Fuse one volume pair and write it (module docstring); ``on_warning``: the whole volume's warnings. Never
    raises: any failure is the pair's row, naming the file(s)."""
    start = time.perf_counter()
    if not (is_volume_path(pair.a) and is_volume_path(pair.b)):
        image = pair.b if is_volume_path(pair.a) else pair.a
        reason = f"{image}: not a volume, but its partner {pair.a if image == pair.b else pair.b} is one"
        return ItemResult(pair.key, "failed", reason)
    try:
        prepared = prepare_volumes(pair, resolver, options.limits.max_pixels, on_warning)
    except (ValueError, OSError) as exc:
        return ItemResult(pair.key, "failed", _reason(exc), time.perf_counter() - start)
    try:
        fused, sources, counts, metrics = fuse_slices(prepared, fuser, options.batch, options.save_sources)
    except Exception as exc:  # noqa: BLE001 - this pair's failure, never the run's
        reason = f"{pair.a} + {pair.b}: {describe_exception(exc)}"
        return ItemResult(pair.key, "failed", reason, time.perf_counter() - start)
    extra = _row(prepared, counts, volume_dtype)
    if options.metrics:
        extra.update(metrics)
    target = volume_output_path(options, pair)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for kind, restored in sources.items():
            path = volume_output_path(options, pair, kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_nifti(path, restored, prepared.b)
        if volume_dtype == "b":  # b's units, b's dtype
            fused, dtype = prepared.window_b.restore(fused), prepared.b.stored_dtype
        else:
            dtype = np.dtype(np.float32)
        write_nifti(target, fused, prepared.b, dtype)  # last: its presence marks the pair as done
    except Exception as exc:  # noqa: BLE001 - this pair's failure, never the run's
        reason = getattr(exc, "strerror", None) or describe_exception(exc)
        fatal = isinstance(exc, OSError) and exc.errno in FATAL_WRITE_ERRORS
        elapsed = time.perf_counter() - start
        return ItemResult(pair.key, "failed", f"{target}: cannot write ({reason})", elapsed, fatal=fatal)
    return ItemResult(pair.key, "ok", "", time.perf_counter() - start, str(target), extra)


def fuse_slices(
    prepared: PreparedVolumes, fuser: Fuser, batch: int = 1, save_sources: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int], dict[str, float]]:
    """Every slice of b's grid fused: the fused volume ``(X, Y, Z)`` float32 in [0, 1], the restored sources
    (``{"a": ..., "b": ...}`` with ``save_sources``, else empty), the counts (``slices``, ``blank_slices``,
    ``fused_slices``) and the mean no-reference metrics over the fused slices.

    Raises:
        FusionError (and whatever the backend raises): the pair cannot be fused.
    """
    shape = prepared.b.shape
    fused = np.zeros(shape, dtype=np.float32)
    sources = {k: np.zeros(shape, dtype=np.float32) for k in ("a", "b")} if save_sources else {}
    deg_a, deg_b = prepared.source_a.degradation, prepared.source_b.degradation
    chunk = max(CHUNK_SLICES, batch)
    scores: list[dict[str, float]] = []
    for first in range(0, shape[2], chunk):
        stop = min(shape[2], first + chunk)
        a, b, body = prepared.slices(first, stop)
        live = [int(i) for i in np.flatnonzero(body)]
        for start in range(0, len(live), batch):
            ks = live[start : start + batch]
            out = fuser.fuse_batch(
                [np.ascontiguousarray(a[:, :, k]) for k in ks],
                [np.ascontiguousarray(b[:, :, k]) for k in ks],
                deg_a,
                deg_b,
            )
            for k, pair in zip(ks, out):
                fused[:, :, first + k] = pair.fused
                if save_sources:
                    sources["a"][:, :, first + k] = pair.a
                    sources["b"][:, :, first + k] = pair.b
                scores.append(score_fused(pair.fused))
    counts = {"slices": shape[2], "blank_slices": shape[2] - len(scores), "fused_slices": len(scores)}
    metrics = {name: float(np.mean([s[name] for s in scores])) for name in (scores[0] if scores else {})}
    return fused, sources, counts, metrics


def _row(prepared: PreparedVolumes, counts: dict[str, int], volume_dtype: str) -> dict[str, object]:
    """The run.csv columns of a fused volume pair (before its metrics)."""
    pair, a, b = prepared.pair, prepared.source_a, prepared.source_b
    dtype = str(prepared.b.stored_dtype) if volume_dtype == "b" else "float32"
    extra: dict[str, object] = {
        "a": str(pair.a),
        "b": str(pair.b),
        "a_degradation": a.degradation.describe(),
        "b_degradation": b.degradation.describe(),
        **a.row("a"),
        **b.row("b"),
        "intensity_rule": INTENSITY_RULE,
        **prepared.window_a.row("a"),
        **prepared.window_b.row("b"),
        **prepared.geometry_row(),
        **counts,
        "volume_dtype": dtype,
    }
    notes = "; ".join((*prepared.notes, *a.notes, *b.notes))
    if notes:
        extra["notes"] = notes
    return extra


def _reason(exc: BaseException) -> str:
    """A failure before fusing, one line (an OSError names its file)."""
    if isinstance(exc, OSError) and not isinstance(exc, ValueError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return describe_exception(exc)


__all__ = [
    "CHUNK_SLICES",
    "VOLUME_DTYPES",
    "fuse_slices",
    "fuse_volume_pair",
    "is_volume_pair",
    "run_volume_pairs",
    "volume_output_path",
]

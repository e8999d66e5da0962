"""Estimating the degradation of every image of one or two folders (library behind ``mmfuse estimate``).

One folder: each image's noise std (per channel as stored) and blur std, at scale 1. Two folders (paired by stem,
as ``mmfuse run`` pairs them): the scale of each source from the pair's sizes too, and the blur read at that
scale. :func:`folder_degradation` summarises a folder as the median of its images, with the interquartile spread,
which ``--write-sidecar`` stores as the folder's ``degradation.json`` so that ``run`` picks it up.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mmfuse_cli.degradation.estimate import estimate_parameter, infer_scales
from mmfuse_cli.degradation.grid import detect_grid
from mmfuse_cli.degradation.sidecar import Sidecar, write_sidecar
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.io import ImageError, read_image
from mmfuse_cli.pairing import list_images, pair_folders
from mmfuse_cli.results.rows import ItemResult
from mmfuse_cli.tasks import DEFAULT_TASK, Task, check_task


@dataclass(frozen=True)
class EstimateJob:
    """Options of one ``estimate`` run: one folder, or two paired by stem (``b_dir``); ``task``: the model whose
    idea of sharp a blur estimate is measured against (``ivif``, ``mif``), as ``mmfuse run --task``.

    Raises:
        InvalidValueError: (field ``task``) not a task.
    """

    a_dir: Path
    b_dir: Path | None = None
    recursive: bool = False
    task: Task = DEFAULT_TASK

    def __post_init__(self) -> None:
        check_task(self.task)  # validation only: the dataclass is frozen, and the value is already the task


def estimate_image(path: Path, scale: int = 1, side: str = "", task: Task = DEFAULT_TASK) -> ItemResult:
    """One image's estimates (the same as ``mmfuse run``'s) as a result row: ``noise``, ``noise_spread``, ``blur``,
    ``blur_spread``, ``scale``, ``grid`` (the pixel grid it is visibly stored on), ``width``, ``height``, ``bits`` (prefixed ``a_`` / ``b_`` when ``side`` is given); never raises."""
    start = time.perf_counter()
    prefix = f"{side}_" if side else ""
    try:
        image = read_image(path)
    except (ImageError, OSError) as exc:
        return ItemResult(path.stem, "failed", str(exc), time.perf_counter() - start)
    grid = detect_grid(image.pixels)
    noise = estimate_parameter("noise", image.pixels, image.bit_depth, grid=grid)
    blur = estimate_parameter(
        "blur", image.pixels, noise=noise.value or 0.0, scale=scale, task=task, grid=grid
    )
    h, w = image.pixels.shape[:2]
    row = {
        f"{prefix}file": str(path),
        f"{prefix}width": w,
        f"{prefix}height": h,
        f"{prefix}bits": image.bit_depth,
        f"{prefix}scale": scale,
        f"{prefix}grid": grid,
        f"{prefix}noise": noise.value,
        f"{prefix}noise_spread": noise.spread,
        f"{prefix}blur": blur.value,
        f"{prefix}blur_spread": blur.spread,
    }
    notes = [n for n in (noise.note, blur.note) if n]
    if notes:
        row[f"{prefix}notes"] = "; ".join(notes)
    return ItemResult(path.stem, "ok", "", time.perf_counter() - start, str(path), row)


def iter_estimates(job: EstimateJob) -> Iterator[ItemResult]:
    """One result per image (one folder) or per pair (two folders), in sorted order."""
    if job.b_dir is None:
        for path in list_images(job.a_dir, job.recursive):
            result = estimate_image(path, task=job.task)
            result.key = path.relative_to(job.a_dir).with_suffix("").as_posix()
            yield result
        return
    pairing = pair_folders(job.a_dir, job.b_dir, job.recursive)
    for key, reason in pairing.problems():
        yield ItemResult(key, "failed", reason)
    for pair in pairing.pairs:
        yield _estimate_pair(pair.key, pair.a, pair.b, job.task)


def _estimate_pair(key: str, path_a: Path, path_b: Path, task: Task) -> ItemResult:
    start = time.perf_counter()
    try:
        shape_a, shape_b = read_image(path_a).pixels.shape, read_image(path_b).pixels.shape
    except (ImageError, OSError) as exc:
        return ItemResult(key, "failed", str(exc), time.perf_counter() - start)
    scales = infer_scales(shape_a, shape_b)
    if scales is None:
        reason = (
            f"{path_a} ({shape_a[1]}x{shape_a[0]}) and {path_b} ({shape_b[1]}x{shape_b[0]}): "
            "no integer scale explains the two sizes"
        )
        return ItemResult(key, "failed", reason, time.perf_counter() - start)
    a, b = estimate_image(path_a, scales[0], "a", task), estimate_image(path_b, scales[1], "b", task)
    failed = [r.reason for r in (a, b) if r.failed]
    if failed:
        return ItemResult(key, "failed", "; ".join(failed), time.perf_counter() - start)
    return ItemResult(key, "ok", "", time.perf_counter() - start, str(path_a), {**a.extra, **b.extra})


def estimate_folders(
    job: EstimateJob, on_item: Callable[[ItemResult], None] | None = None
) -> list[ItemResult]:
    """Every result of the job; ``on_item`` sees each as it is made."""
    results = []
    for result in iter_estimates(job):
        results.append(result)
        if on_item:
            on_item(result)
    return results


def folder_degradation(results: list[ItemResult], side: str = "") -> tuple[Degradation, dict]:
    """The median degradation of a folder's images (``side``: ``a`` / ``b`` of paired results) and what it came
    from: ``{"images": n, "noise_spread": IQR, "blur_spread": IQR}``.

    Raises:
        ValueError: no image could be estimated.
    """
    prefix = f"{side}_" if side else ""
    ok = [r.extra for r in results if r.status == "ok"]
    if not ok:
        raise ValueError("no image could be estimated")
    summary: dict = {"images": len(ok)}
    values = {}
    for name in ("noise", "blur"):
        column = [row[f"{prefix}{name}"] for row in ok if row.get(f"{prefix}{name}") is not None]
        values[name] = statistics.median(column) if column else 0.0
        summary[f"{name}_spread"] = round(_iqr(column), 4)
    scales = [row[f"{prefix}scale"] for row in ok]
    scale = statistics.mode(scales)
    summary["scale_agreement"] = round(scales.count(scale) / len(scales), 3)
    grid = statistics.mode(row.get(f"{prefix}grid", 1) for row in ok)
    degradation = Degradation(
        blur=round(values["blur"], 3), scale=scale, noise=round(values["noise"], 4), grid=grid
    )
    return degradation, summary


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def write_folder_sidecar(folder: Path, results: list[ItemResult], side: str = "") -> tuple[Path, Sidecar]:
    """Write ``folder``'s ``degradation.json`` from its estimates (median; the spread under ``estimate``)."""
    degradation, summary = folder_degradation(results, side)
    prefix = f"{side}_" if side else ""
    files = [
        Path(r.extra[f"{prefix}file"]).relative_to(folder).as_posix()
        for r in results
        if r.status == "ok" and Path(r.extra[f"{prefix}file"]).is_relative_to(folder)
    ]
    sidecar = Sidecar(degradation=degradation, files=files, estimate=summary)
    return write_sidecar(folder, sidecar), sidecar


__all__ = ["EstimateJob", "estimate_folders", "estimate_image", "folder_degradation", "write_folder_sidecar"]

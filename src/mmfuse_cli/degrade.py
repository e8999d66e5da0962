"""Synthesize degraded copies of clean images (library behind ``mmfuse degrade``).

Each image is degraded independently: blur -> r x r downsample -> additive Gaussian noise -> clip, per
channel for colour images, in the image's own bit depth. The noise of each file is seeded from the run seed
and the file's relative path, so outputs are byte-identical for a seed whatever the order or subset processed.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmfuse_cli.io import ImageError, read_image, write_image
from mmfuse_cli.operators import Degradation, degrade_tensor
from mmfuse_cli.pairing import list_images
from mmfuse_cli.reporting import ItemResult
from mmfuse_cli.sidecar import Sidecar, write_sidecar


def file_seed(seed: int, relative_key: str) -> int:
    """Per-file noise seed: a stable mix of the run seed and the file's relative path (no Python hash())."""
    return (int(seed) * 1_000_003 + zlib.crc32(relative_key.encode("utf-8"))) % (2**63 - 1)


def degrade_array(pixels: np.ndarray, degradation: Degradation, seed: int) -> np.ndarray:
    """Degrade one image.

    Args:
        pixels: float32 [0, 1], ``(H, W)`` or ``(H, W, 3)``; H and W divisible by ``degradation.scale``.
        seed: noise seed.

    Returns:
        float32 [0, 1], ``(H / r, W / r[, 3])``.

    Raises:
        ValueError: the size is not divisible by the scale.
    """
    x = torch.from_numpy(np.ascontiguousarray(pixels))
    x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    gen = torch.Generator().manual_seed(seed)
    y = degrade_tensor(x, degradation, generator=gen)[0]
    return (y[0] if pixels.ndim == 2 else y.permute(1, 2, 0)).numpy()


@dataclass
class DegradeJob:
    """Options of one ``degrade`` run."""

    input_dir: Path
    output_dir: Path
    degradation: Degradation
    seed: int = 0
    recursive: bool = False
    bit_depth: int | None = None  # None = same as each input


def degrade_folder(job: DegradeJob, on_item: Callable[[ItemResult], None] | None = None) -> list[ItemResult]:
    """Degrade every image of ``job.input_dir`` into ``job.output_dir`` (same relative names) + a sidecar.

    A file that cannot be read or written is reported as failed; the others still finish. The sidecar lists
    the files written successfully.
    """
    job.output_dir.mkdir(parents=True, exist_ok=True)
    results: list[ItemResult] = []
    written: list[str] = []
    for result in _iter_degrade(job):
        results.append(result)
        if result.status == "ok":
            written.append(Path(result.output).relative_to(job.output_dir).as_posix())
        if on_item:
            on_item(result)
    write_sidecar(job.output_dir, Sidecar(degradation=job.degradation, seed=job.seed, files=written))
    return results


def _iter_degrade(job: DegradeJob) -> Iterator[ItemResult]:
    for path in list_images(job.input_dir, job.recursive):
        rel = path.relative_to(job.input_dir)
        key = rel.as_posix()
        target = job.output_dir / rel
        start = time.perf_counter()
        try:
            image = read_image(path)
            degraded = degrade_array(image.pixels, job.degradation, file_seed(job.seed, key))
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, degraded, job.bit_depth or image.bit_depth)
        except (ImageError, ValueError) as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            yield ItemResult(key, "failed", message, time.perf_counter() - start)
            continue
        except OSError as exc:
            yield ItemResult(key, "failed", f"{target}: cannot write ({exc.strerror or exc})", time.perf_counter() - start)
            continue
        yield ItemResult(key, "ok", "", time.perf_counter() - start, str(target))

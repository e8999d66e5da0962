"""Degrading a folder of clean images (library behind ``mmfuse degrade``).

Each image is degraded independently (:func:`mmfuse_cli.degradation.synth.degrade_array`) in its own bit depth,
written under the same relative name, and the folder gets a ``degradation.json`` sidecar listing the files
written. A file that cannot be read or written is a failed result; the others still finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mmfuse_cli.degradation.sidecar import Sidecar, write_sidecar
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.degradation.synth import degrade_array, file_seed
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.io import ImageError, read_image, write_image
from mmfuse_cli.pairing import list_images
from mmfuse_cli.results.rows import ItemResult


@dataclass
class DegradeJob:
    """Options of one ``degrade`` run.

    Raises:
        InvalidValueError: (``output``) the output folder is the input folder: the degraded images would replace
            the clean ones.
    """

    input_dir: Path
    output_dir: Path
    degradation: Degradation
    seed: int = 0
    recursive: bool = False
    bit_depth: int | None = None  # None = same as each input

    def __post_init__(self) -> None:
        if Path(self.output_dir).resolve() == Path(self.input_dir).resolve():
            raise InvalidValueError(
                "output", f"must not be the input folder {self.input_dir}: it would overwrite the inputs"
            )


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
    for path in list_images(job.input_dir, job.recursive, exclude=job.output_dir):
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
            yield ItemResult(
                key, "failed", f"{target}: cannot write ({exc.strerror or exc})", time.perf_counter() - start
            )
            continue
        yield ItemResult(key, "ok", "", time.perf_counter() - start, str(target))

"""A run as one typed object: :class:`RunJob` says everything ``mmfuse run`` was asked to do, validated once.

The command maps its flags onto a :class:`RunJob` and calls :func:`mmfuse_cli.batch.run.run`; nothing about a run
is decided in the command. A value's walk to the sampler: ``--a-noise 0.05`` -> ``SourceRequest(noise=0.05)``
(``RunJob.options.source_a``) -> the run's :class:`~mmfuse_cli.degradation.resolve.DegradationResolver` -> the
pair's :class:`~mmfuse_cli.degradation.spec.Degradation` -> its observation's operator and noise level in the
sampler.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse_cli.batch.engines import EngineOptions
from mmfuse_cli.batch.stages import RunOptions
from mmfuse_cli.batch.volumes import VOLUME_DTYPES
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.pairing import Pair, input_stem, pair_folders, parse_pair_lines
from mmfuse_cli.tasks import Task, check_task
from mmfuse_cli.volume_io import is_dicom_series

STDIN = "-"


@dataclass(frozen=True)
class PairSource:
    """Where a run's pairs come from: two folders paired by file stem (``recursive``: sub-folders too, keeping
    the tree; images, NIfTI files and DICOM series folders), two files or DICOM series folders (one pair, keyed
    by a's stem), or a file of ``a_path<TAB>b_path`` lines (:data:`STDIN`: standard input).

    Raises:
        ValueError: both or neither given.
    """

    a_dir: Path | None = None
    b_dir: Path | None = None
    pairs_file: str | None = None
    recursive: bool = False

    def __post_init__(self) -> None:
        if self.pairs_file is not None:
            if self.a_dir is not None or self.b_dir is not None:
                raise ValueError("give either A_DIR B_DIR or --pairs, not both")
        elif self.a_dir is None or self.b_dir is None:
            raise ValueError("need two folders (A_DIR B_DIR) or --pairs FILE|-")

    @property
    def single(self) -> bool:
        """Two inputs that are one pair: files, or DICOM series folders (not folders of inputs)."""
        return any(p is not None and (p.is_file() or is_dicom_series(p)) for p in (self.a_dir, self.b_dir))

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders whose sidecars are checked before any pair: the two input folders (the folders holding
        them, for two files or series; none for a pairs file)."""
        inputs = tuple(f for f in (self.a_dir, self.b_dir) if f is not None)
        return tuple(f.parent for f in inputs) if self.single else inputs

    @property
    def paired_folders(self) -> tuple[Path, ...]:
        """The two folders paired by stem (none for two files or series, or a pairs file)."""
        return () if self.single else self.folders

    def collect(self, exclude: Path | None = None) -> tuple[list[Pair], list[tuple[str, str]]]:
        """The pairs, and the files that have no partner (key, reason); nothing under ``exclude`` (the run's output
        folder, when it lies inside an input folder) is an input.

        Raises:
            ValueError: two folders without a single image; OSError: an unreadable pairs file or folder.
        """
        if self.pairs_file is not None:
            if self.pairs_file == STDIN:
                return parse_pair_lines(sys.stdin), []
            with open(self.pairs_file, encoding="utf-8", errors="surrogateescape") as handle:
                return parse_pair_lines(handle), []
        assert self.a_dir is not None and self.b_dir is not None  # __post_init__
        if self.single:
            return [self._single_pair()], []
        pairing = pair_folders(self.a_dir, self.b_dir, self.recursive, exclude, volumes=True)
        if not pairing.pairs and not pairing.problems():
            raise ValueError(f"no images or volumes found in {self.a_dir} and {self.b_dir}")
        return pairing.pairs, pairing.problems()

    def _single_pair(self) -> Pair:
        """The one pair of two files or series; a folder of inputs beside one is refused."""
        a, b = self.a_dir, self.b_dir
        assert a is not None and b is not None
        for path, other in ((a, b), (b, a)):
            if not (path.is_file() or is_dicom_series(path)):
                what = "a folder of inputs" if path.is_dir() else "missing"
                raise ValueError(
                    f"{path} is {what} but {other} is one input: give two files (or series) or two folders"
                )
        return Pair(input_stem(a), a, b)


@dataclass(frozen=True)
class RunJob:
    """One ``mmfuse run``.

    Attributes:
        pairs: where the pairs come from.
        options: outputs, what was stated about each source, batching, resume (:class:`RunOptions`).
        fuse: how the model runs (:class:`~mmfuse_cli.engine.config.FuseConfig`).
        engine: which engine runs the batch (:class:`~mmfuse_cli.batch.engines.EngineOptions`).
        task: ``ivif`` or ``mif``; ``None``: the checkpoint's (a run naming no checkpoint: the default task's).
        model: checkpoint NAME (``mmfuse weights list``) or PATH; ``None``: the task's default checkpoint.
        csv_path: the run's table of rows; ``None``: ``OUTPUT/run.csv``.
        html_report: also write the HTML report in ``OUTPUT/report``.
        json_lines: one JSON object per pair on stdout.
        download_progress: show a progress bar when a checkpoint is downloaded.
        volume_dtype: how fused volumes are stored: ``float32`` (in [0, 1]) or ``b`` (b's stored dtype, in b's
            units through its intensity window).

    Raises:
        InvalidValueError: (``task``) an unknown task; (``volume_dtype``) not ``float32`` or ``b``.
    """

    pairs: PairSource
    options: RunOptions
    fuse: FuseConfig = field(default_factory=FuseConfig)
    engine: EngineOptions = field(default_factory=EngineOptions)
    task: Task | None = None
    model: str | None = None
    csv_path: Path | None = None
    html_report: bool = False
    json_lines: bool = False
    download_progress: bool = True
    volume_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.task is not None:
            check_task(self.task)
        if self.volume_dtype not in VOLUME_DTYPES:
            raise InvalidValueError(
                "volume_dtype", f"must be one of {', '.join(VOLUME_DTYPES)}, got {self.volume_dtype!r}"
            )

    @property
    def csv_file(self) -> Path:
        """Where the run's rows are written."""
        return self.csv_path or self.options.output_dir / "run.csv"


__all__ = ["STDIN", "PairSource", "RunJob"]

"""``mmfuse run`` as one library call: :func:`run` takes a :class:`~mmfuse_cli.batch.job.RunJob` and returns a
:class:`RunSummary`. The task, the checkpoint, the resolver, the engine and the reports are decided here, once.

Order: collect the pairs; resolve and load the checkpoint (the task is the checkpoint's, checked against the
job's); make the run's resolver and check the input folders' sidecars (a malformed one stops the run before any
pair); build the engine from the registry; then the driver runs the pairs, every row goes to run.csv (and stdout
with ``json_lines``), and the HTML report is written when asked.

Volume pairs (NIfTI files, DICOM series: :mod:`mmfuse_cli.batch.volumes`) are checked for the medical extra
before any work, and fused after the image pairs, one at a time, in this process, through the local engine's
:class:`~mmfuse_cli.engine.fuser.Fuser` (a Fuser of the run's model when the engine has none); their rows join
the others in input order.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse_cli.batch.driver import drive, in_input_order
from mmfuse_cli.batch.engines import Engine, EngineContext, make_engine
from mmfuse_cli.batch.job import RunJob
from mmfuse_cli.batch.stages import RunOptions, make_resolver, output_path
from mmfuse_cli.batch.volumes import is_volume_pair, run_volume_pairs, volume_output_path
from mmfuse_cli.degradation.resolve import DegradationResolver
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.files import writes_in_place
from mmfuse_cli.locks import exclusive
from mmfuse_cli.metrics import HIGHER_IS_BETTER
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.model.network import FusionModel
from mmfuse_cli.pairing import Pair
from mmfuse_cli.report.build import REPORT_DIR, ReportResult, prepare_report, write_report
from mmfuse_cli.report.page_data import ReportError
from mmfuse_cli.results.rows import EXIT_ITEMS_FAILED, ItemResult, RowSink, exit_code, read_rows
from mmfuse_cli.tasks import DEFAULT_TASK, Task
from mmfuse_cli.volume_io import require_medical
from mmfuse_cli.weights.resolve import resolve_checkpoint


@dataclass
class RunEvents:
    """Where a run reports as it goes (each optional).

    Attributes:
        on_start: ``(pairs to fuse, the model's task)`` once the run is set up, before the first pair.
        on_result: each pair's result as it ends (completion order); files without a partner come first.
        on_warning: one-line warnings (a source assumed clean, a report note).
        on_thumb: once per thumbnail of the HTML report.
    """

    on_start: Callable[[int, Task], None] | None = None
    on_result: Callable[[ItemResult], None] | None = None
    on_warning: Callable[[str], None] | None = None
    on_thumb: Callable[[], None] | None = None


@dataclass
class RunSummary:
    """What a run did: one result per pair in input order (files without a partner first), where the rows went,
    and what could not be written at the end (``csv_error``, ``report_error``: one line each, or ``None``)."""

    task: Task
    results: list[ItemResult]
    csv_path: Path
    csv_error: str | None = None
    report: ReportResult | None = None
    report_error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for status in ("ok", "skipped", "failed"):
            self.counts[status] = sum(r.status == status for r in self.results)

    @property
    def exit_code(self) -> int:
        """0: every pair fused or skipped; 1: a pair failed, or run.csv or the HTML report could not be written."""
        if self.csv_error or self.report_error:
            return EXIT_ITEMS_FAILED
        return exit_code(self.results)


def load_model(job: RunJob) -> tuple[Path, FusionModel]:
    """The verified checkpoint file the job names (its task's default when it names none) and its model.

    Raises:
        WeightsError: unknown name, download or verification failure; CheckpointError: unreadable file;
        ValueError: the checkpoint is for another task than ``job.task``.
    """
    task = job.task or (DEFAULT_TASK if job.model is None else None)
    checkpoint = resolve_checkpoint(job.model, task=task, progress=job.download_progress)
    model = load_checkpoint(checkpoint)
    if job.task is not None and model.config.task != job.task:
        raise ValueError(f"checkpoint {checkpoint} is for task {model.config.task!r}, not {job.task!r}")
    return checkpoint, model


def run(job: RunJob, events: RunEvents | None = None) -> RunSummary:
    """Restore and fuse every pair of ``job``; write the fused images, run.csv and (if asked) the HTML report.

    Interrupted (SIGINT, or SIGTERM in the main thread), run.csv is written with the pairs finished so far before
    ``KeyboardInterrupt`` propagates.

    Raises (before any pair is fused, nothing written): ValueError (no pairs, bad input; volume inputs without
    the medical extra: :class:`~mmfuse_cli.volume_io.MedicalDependencyError`), InvalidValueError (an
    output that would overwrite an input or another output, a value the backend cannot use: naming its field),
    OSError (an unreadable pairs file), WeightsError / CheckpointError (the checkpoint), ResolveError (a malformed
    folder sidecar), EngineError (the engine cannot run), LockedError (another run is writing the same run.csv).
    """
    events = events or RunEvents()
    pairs, unpaired = job.pairs.collect(exclude=job.options.output_dir)
    check_outputs(job, pairs)
    volumes = [pair for pair in pairs if is_volume_pair(pair)]
    require_medical([path for pair in volumes for path in (pair.a, pair.b)])
    checkpoint, model = load_model(job)
    resolver = make_resolver(job.options, events.on_warning, model.config.task)
    for folder in job.pairs.folders:
        resolver.check_folder(folder)
    context = EngineContext(checkpoint, model, job.fuse, job.options, job.engine, resolver, events.on_warning)
    engine = make_engine(context) if len(volumes) < len(pairs) else None
    fuser = (getattr(engine, "fuser", None) or Fuser(model, job.fuse)) if volumes else None
    note = getattr(fuser or getattr(engine, "fuser", None), "fallback_note", None)
    if note and events.on_warning:  # `auto` passed over a backend (an unwritable export cache): said once
        events.on_warning(note)
    job.options.output_dir.mkdir(parents=True, exist_ok=True)
    with _table_lock(job.csv_file):
        previous = read_rows(job.csv_file) if job.options.skip_existing else {}
        work = _Work(engine, fuser, resolver, pairs, volumes)
        results, sink = _fuse(job, events, work, unpaired, model.config.task, previous)
        summary = RunSummary(model.config.task, results, job.csv_file)
        summary.csv_error = _write_rows(sink, [_row(r, previous) for r in results])
    if job.html_report and summary.csv_error is None:
        summary.report, summary.report_error = _html_report(job, events)
    return summary


def check_outputs(job: RunJob, pairs: list[Pair]) -> None:
    """Refuse a run whose outputs would overwrite its inputs or each other: the output folder is an input folder,
    a fused image or restored source lands on an input file, or two outputs share a path (``-r --save-sources``
    with an input sub-folder named ``sources/a``).

    Raises:
        InvalidValueError: (field ``output``) naming the path and what it would overwrite.
    """
    options = job.options
    out = options.output_dir.resolve()
    for folder in job.pairs.paired_folders:
        if folder.resolve() == out:
            raise InvalidValueError(
                "output", f"must not be the input folder {folder}: the outputs would overwrite the inputs"
            )
    inputs = {path.resolve() for pair in pairs for path in (pair.a, pair.b)}
    kinds = ("fused", "a", "b") if options.save_sources else ("fused",)
    written: dict[Path, str] = {}
    for pair in pairs:
        for kind in kinds:
            where = volume_output_path(options, pair, kind) if is_volume_pair(pair) else None
            target = (where or output_path(options, pair.key, kind)).resolve()
            what = f"pair {pair.key!r}'s " + ("fused image" if kind == "fused" else f"restored source {kind}")
            if target in inputs:
                raise InvalidValueError(
                    "output", f"{target} is an input file and would be overwritten by {what}"
                )
            if target in written:
                raise InvalidValueError("output", f"{target} would be both {written[target]} and {what}")
            written[target] = what


@dataclass(frozen=True)
class _Work:
    """What fuses a run's pairs: the engine (``None`` without image pairs), the Fuser of the volume pairs
    (``None`` without them), the run's resolver, all pairs and the volume pairs among them."""

    engine: Engine | None
    fuser: Fuser | None
    resolver: DegradationResolver
    pairs: list[Pair]
    volumes: list[Pair]

    def run(
        self, options: RunOptions, on_result: Callable[[ItemResult], None], volume_dtype: str, on_warning
    ):
        """Image pairs through the engine, then volume pairs; one result per pair, in input order."""
        volumes = set(self.volumes)
        images = [pair for pair in self.pairs if pair not in volumes]
        results = drive(images, self.engine, options, on_result) if self.engine is not None else []
        if self.volumes:
            assert self.fuser is not None
            if not any(r.fatal for r in results):
                results += run_volume_pairs(
                    self.volumes, self.fuser, options, self.resolver, on_result, volume_dtype, on_warning
                )
            else:
                for pair in self.volumes:
                    result = ItemResult(
                        pair.key, "failed", "not processed: run stopped after a fatal write error"
                    )
                    on_result(result)
                    results.append(result)
        return in_input_order(results, self.pairs)


def _fuse(job, events, work: _Work, unpaired, task, previous) -> tuple[list[ItemResult], RowSink]:
    """Drive the pairs, each row to the sink as it ends; on an interrupt, write what is finished and re-raise."""
    sink = RowSink(json_stdout=job.json_lines, csv_path=job.csv_file)

    def on_result(result: ItemResult) -> None:
        sink.emit(_row(result, previous), result.as_row())  # stdout: what this run did
        if events.on_result:
            events.on_result(result)

    orphans = [ItemResult(key, "failed", reason) for key, reason in unpaired]
    if events.on_start:
        events.on_start(len(work.pairs), task)
    for orphan in orphans:
        on_result(orphan)
    with _terminate_as_interrupt():
        try:
            return orphans + work.run(job.options, on_result, job.volume_dtype, events.on_warning), sink
        except KeyboardInterrupt:
            _write_rows(sink, sink.rows)
            raise


def _row(result: ItemResult, previous: dict[str, dict[str, str]]) -> dict:
    """The run.csv row of ``result``; a pair skipped because it was done keeps its row of the earlier run, if any
    (stdout's JSON line says ``skipped``: what this run did)."""
    if result.status == "skipped" and result.key in previous:
        return dict(previous[result.key])
    return result.as_row()


@contextmanager
def _table_lock(path: Path) -> Iterator[None]:
    """One run at a time writes a regular run.csv (:func:`mmfuse_cli.locks.exclusive`); a device or FIFO needs
    none."""
    try:
        through = writes_in_place(path)
    except OSError:
        through = False
    with nullcontext() if through else exclusive(path):
        yield


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` in the main thread while the block runs, as SIGINT does, so that an
    interrupted run still writes its rows (no-op outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _write_rows(sink: RowSink, rows: list[dict]) -> str | None:
    """run.csv with ``rows``; the error line when it cannot be written."""
    sink.rows = list(rows)
    try:
        sink.close()
    except OSError as exc:
        return f"{sink.csv_path}: cannot write the report ({exc.strerror or exc})"
    return None


def _html_report(job: RunJob, events: RunEvents) -> tuple[ReportResult | None, str | None]:
    """The run's HTML report in ``OUTPUT/report``: its result, or the error line."""
    try:
        prepared = prepare_report(job.options.output_dir, job.csv_file)
        report = write_report(
            prepared, job.options.output_dir / REPORT_DIR, HIGHER_IS_BETTER, on_thumb=events.on_thumb
        )
    except (ReportError, OSError) as exc:
        return None, f"cannot write the HTML report: {exc}"
    for note in report.notes:
        if events.on_warning:
            events.on_warning(note)
    return report, None


__all__ = ["RunEvents", "RunSummary", "load_model", "run"]

"""``mmfuse evaluate FUSED [FUSED2 ...] --a A --b B``: objective fusion metrics per pair, plus their mean; with
several fused folders (one per method), one table with a ``method`` column and a summary per method."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mmfuse_cli.batch.compare import method_jobs, method_row, method_summary_rows
from mmfuse_cli.batch.evaluate import EvalJob, evaluate_folders, match_folders, mean_row, result_row
from mmfuse_cli.commands._errors import flag_message
from mmfuse_cli.commands._evaluate_summary import summary_tables
from mmfuse_cli.commands._limits import apply_max_pixels, max_pixels_option
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.files import atomic_write_text
from mmfuse_cli.metrics import REGISTRY, resolve_names
from mmfuse_cli.results.console import progress_bar, report_error, report_warning, stderr_console
from mmfuse_cli.results.rows import EXIT_ITEMS_FAILED, EXIT_USAGE, RowSink, exit_code, json_line, rows_to_csv

FLAGS = {"convention": "--convention", "against": "--against", "a_clean": "--a-clean / --b-clean"}


def evaluate(
    fused_dirs: list[Path] = typer.Argument(
        ...,
        help="Folder(s) of fused images, one per method (colour is scored on its luminance).",
        metavar="FUSED",
        show_default=False,
    ),
    a_dir: Path = typer.Option(
        ..., "--a", "--ir", help="Folder of source A images (infrared / CT, PET, SPECT)."
    ),
    b_dir: Path = typer.Option(..., "--b", "--vis", help="Folder of source B images (visible / MRI)."),
    a_clean: Path | None = typer.Option(
        None, "--a-clean", help="Clean references of A (adds PSNR_A, SSIM_A ...)."
    ),
    b_clean: Path | None = typer.Option(
        None, "--b-clean", help="Clean references of B (give both or neither)."
    ),
    metrics: str = typer.Option(
        "default",
        "-m",
        "--metrics",
        help="Comma-separated metric names, case-insensitive; or default, all, liu.",
    ),
    convention: str = typer.Option(
        "cdd", "--convention", help="Toolbox definitions: cdd, tang, vifb or liu."
    ),
    against: str = typer.Option(
        "auto",
        "--against",
        help="Source metrics against the given sources or the clean ones: auto, given, clean.",
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the rows to this file instead of stdout."
    ),
    json_out: bool = typer.Option(False, "--json", help="JSON Lines instead of CSV."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Match files in sub-folders too."),
    max_pixels: int | None = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no table (errors still print)."),
) -> None:
    """Score every fused image against its sources (matched by file stem); rows + mean as CSV or JSON Lines.
    Several fused folders: one row per pair and method, a mean and std row per method, a summary table."""
    console = stderr_console(quiet)
    apply_max_pixels(console, max_pixels)
    fused_dir = fused_dirs[0]
    try:
        folders = {"fused": fused_dir, "a": a_dir, "b": b_dir}
        folders.update({k: v for k, v in (("a_clean", a_clean), ("b_clean", b_clean)) if v is not None})
        names = resolve_names(metrics)
        if not names:
            raise ValueError("--metrics names no metric (give names such as Qabf,VIF, or default, all, liu)")
        job = EvalJob(folders, names, convention, against, recursive)
        if output is not None and not output.parent.is_dir():
            raise ValueError(f"{output.parent}: output folder does not exist")
        if len(fused_dirs) > 1:
            methods = method_jobs(job, fused_dirs)
        items, unfused = match_folders(job)
    except InvalidValueError as exc:
        report_error(console, flag_message(exc, FLAGS))
        raise typer.Exit(EXIT_USAGE)
    except (ValueError, OSError) as exc:
        report_error(console, str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    sink = RowSink(json_stdout=json_out and output is None)
    if len(fused_dirs) > 1:
        _evaluate_methods(methods, sink, console, output, json_out, quiet)
    if not items:
        report_error(console, f"{fused_dir}: no images to evaluate")
        raise typer.Exit(EXIT_ITEMS_FAILED)
    if unfused:
        shown = ", ".join(unfused[:5]) + (" ..." if len(unfused) > 5 else "")
        report_warning(
            console,
            f"{len(unfused)} source pair(s) have no fused image in {fused_dir}, not evaluated: {shown}",
        )
    with progress_bar(console, len(items), f"evaluate ({len(job.columns)} metrics)") as bar:

        def on_item(result):
            if result.failed:
                report_error(console, result.reason)
            sink.emit(result_row(result, job))
            bar.advance()

        results = evaluate_folders(job, on_item, items)
    sink.emit(mean_row(results, job))
    try:
        _write_rows(sink.rows, output, json_out)
    except OSError as exc:
        report_error(console, f"{output}: cannot write ({exc.strerror or exc})")
        raise typer.Exit(EXIT_ITEMS_FAILED) from None
    if not quiet:
        for table in _tables(sink.rows, job, console.width):
            console.print(table)
    raise typer.Exit(exit_code(results))


def _write_rows(rows: list[dict[str, Any]], output: Path | None, json_out: bool) -> None:
    if output is not None:
        text = "".join(json_line(r) + "\n" for r in rows) if json_out else rows_to_csv(rows)
        atomic_write_text(output, text)
    elif not json_out:
        sys.stdout.write(rows_to_csv(rows))
        sys.stdout.flush()


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.4f}"


def _tables(rows: list[dict[str, Any]], job: EvalJob, width: int) -> list[Table]:
    """The rows as rich tables on stderr: as many metric columns per table as fit ``width`` (item column
    repeated), the mean row last and bold."""
    labels = [_label(row) for row in rows]
    item_w = max(len("item"), *(len(x) for x in labels)) + 3
    headers = {n: f"{n} {'↑' if REGISTRY[n].higher_is_better else '↓'}" for n in job.columns}
    widths = {n: max(len(headers[n]), *(len(_fmt(r[n])) for r in rows)) + 3 for n in job.columns}
    chunks: list[list[str]] = [[]]
    used = item_w + 1  # + the table's left border
    for name in job.columns:
        if chunks[-1] and used + widths[name] > width - 1:
            chunks.append([])
            used = item_w + 1
        chunks[-1].append(name)
        used += widths[name]
    title = f"fusion metrics: {job.convention} convention, vs {job.reference} sources"
    tables: list[Table] = []
    for chunk in chunks:
        table = Table(title=title if not tables else None)
        table.add_column("item", no_wrap=True)
        for name in chunk:
            table.add_column(headers[name], justify="right", no_wrap=True)
        for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
            table.add_row(
                label,
                *(_fmt(row[n]) for n in chunk),
                style="bold" if row["item"] == "mean" else None,
                end_section=i == len(rows) - 2,
            )
        tables.append(table)
    return tables


def _label(row: dict[str, Any]) -> str:
    if row["item"] == "mean":
        return f"mean ({row['reason']})"
    return row["item"] + (" (failed)" if row["status"] == "failed" else "")


def _evaluate_methods(
    methods, sink: RowSink, console, output: Path | None, json_out: bool, quiet: bool
) -> None:
    """Score each method's folder; rows with a method column, a mean and std row per method; the summary table
    on stderr. Exits: 0, or 1 when any pair of any method failed (or a folder had nothing to score)."""
    failed = False
    for name, job in methods:
        items, unfused = match_folders(job)
        folder = job.folders["fused"]
        if not items:
            report_error(console, f"{folder}: no images to evaluate (method {name})")
            failed = True
            continue
        if unfused:
            report_warning(
                console, f"{len(unfused)} source pair(s) have no fused image in {folder}, not evaluated"
            )
        with progress_bar(console, len(items), f"evaluate {name} ({len(job.columns)} metrics)") as bar:
            results = []
            for item in items:
                (result,) = evaluate_folders(job, items=[item])
                if result.failed:
                    report_error(console, f"{name}: {result.reason}")
                sink.emit(method_row(name, item, result, job))
                results.append(result)
                bar.advance()
        failed = failed or exit_code(results) != 0
        for row in method_summary_rows(name, results, job):
            sink.emit(row)
    try:
        _write_rows(sink.rows, output, json_out)
    except OSError as exc:
        report_error(console, f"{output}: cannot write ({exc.strerror or exc})")
        raise typer.Exit(EXIT_ITEMS_FAILED) from None
    if not quiet and methods:
        for table in summary_tables(sink.rows, methods[0][1], console.width):
            console.print(table)
    raise typer.Exit(EXIT_ITEMS_FAILED if failed or not sink.rows else 0)

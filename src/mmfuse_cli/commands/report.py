"""``mmfuse report OUT``: a static HTML page of a run (or of an evaluate comparison) in ``OUT/report/``."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from mmfuse_cli.metrics import REGISTRY
from mmfuse_cli.report.build import ReportResult, locate, prepare_report, write_report
from mmfuse_cli.report.console import progress_bar, report_error, report_warning, stderr_console
from mmfuse_cli.report.page_data import ReportError
from mmfuse_cli.report.rows import EXIT_ITEMS_FAILED, EXIT_USAGE

DIRECTIONS = {name: metric.higher_is_better for name, metric in REGISTRY.items()}
"""Metric name -> higher is better, for the page's best / worst and bold bests."""


def html_report(
    console: Console, run_dir: Path | None, table: Path | None, report_dir: Path, title: str = ""
) -> ReportResult:
    """Build the page with a progress bar over the thumbnails; print where it went and any notes."""
    prepared = prepare_report(run_dir, table)
    with progress_bar(console, len(prepared.images), "report thumbnails") as bar:
        result = write_report(prepared, report_dir, DIRECTIONS, title, on_thumb=bar.advance)
    for note in result.notes:
        report_warning(console, note)
    if not console.quiet:
        what = "row(s)" if result.kind == "compare" else "pair(s)"
        console.print(
            f"report: {result.rows} {what}, {result.failures} failed, {result.thumbs} thumbnail(s)"
            + (f", {result.missing} image(s) missing" if result.missing else "")
            + f" -> {result.index}",
            soft_wrap=True,
        )
    return result


def report(
    target: Path = typer.Argument(
        ..., help="A run's output folder (reads OUT/run.csv), or a run.csv / evaluate CSV or JSON Lines file."
    ),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Report folder (default: OUT/report, or report/ next to the table)."
    ),
    title: Optional[str] = typer.Option(None, "--title", help="Page title (default: the folder or file)."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Write OUT/report/index.html: every pair's images, degradations and metrics; sortable table, best / worst,
    histograms, before/after slider. From an evaluate table with a method column: the comparison page."""
    console = stderr_console(quiet)
    try:
        run_dir, table, default_dir = locate(target)
        result = html_report(console, run_dir, table, output or default_dir, title or "")
    except ReportError as exc:
        report_error(console, str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        report_error(console, f"{exc.filename or output}: cannot write the report ({exc.strerror or exc})")
        raise typer.Exit(EXIT_ITEMS_FAILED) from None
    if open_page:
        webbrowser.open(result.index.resolve().as_uri())

"""``mmfuse report OUT``: a static HTML page of a run (or of an evaluate comparison) in ``OUT/report/``."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from mmfuse_cli.commands._limits import apply_max_pixels, max_pixels_option
from mmfuse_cli.metrics import HIGHER_IS_BETTER
from mmfuse_cli.report.build import ReportResult, locate, prepare_report, write_report
from mmfuse_cli.report.page_data import ReportError
from mmfuse_cli.results.console import progress_bar, report_error, report_warning, stderr_console
from mmfuse_cli.results.rows import EXIT_ITEMS_FAILED, EXIT_USAGE


def html_report(
    console: Console, run_dir: Path | None, table: Path | None, report_dir: Path, title: str = ""
) -> ReportResult:
    """Build the page with a progress bar over the thumbnails; print where it went and any notes."""
    prepared = prepare_report(run_dir, table)
    with progress_bar(console, len(prepared.images), "report thumbnails") as bar:
        result = write_report(prepared, report_dir, HIGHER_IS_BETTER, title, on_thumb=bar.advance)
    for note in result.notes:
        report_warning(console, note)
    if not console.quiet:
        console.print(result.summary_line(), soft_wrap=True)
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
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Write OUT/report/index.html: every pair's images, degradations and metrics; sortable table, best / worst,
    histograms, before/after slider. From an evaluate table with a method column: the comparison page."""
    console = stderr_console(quiet)
    apply_max_pixels(console, max_pixels)  # thumbnails of larger images are left out
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

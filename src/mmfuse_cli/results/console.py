"""Human output on stderr: the console, one-line errors and warnings, the progress bar."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def stderr_console(quiet: bool = False) -> Console:
    """Console on stderr; colours and live progress only when stderr is a terminal."""
    return Console(stderr=True, quiet=quiet, highlight=False)


def report_error(console: Console, message: str) -> None:
    """One line on stderr, prefixed ``error:``. Printed even when quiet (errors are never silenced)."""
    print(f"error: {message}", file=sys.stderr, flush=True)


def report_warning(console: Console, message: str) -> None:
    if not console.quiet:
        print(f"warning: {message}", file=sys.stderr, flush=True)


@contextmanager
def progress_bar(console: Console, total: int, description: str) -> Iterator[Any]:
    """A rich progress bar on stderr; a no-op advance() when quiet or not a terminal."""
    if console.quiet or not console.is_terminal:

        class _Null:
            def advance(self, n: int = 1) -> None:
                pass

        yield _Null()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)

        class _Bar:
            def advance(self, n: int = 1) -> None:
                progress.advance(task, n)

        yield _Bar()

"""``mmfuse estimate DIR [DIR]``: each image's noise, blur (and, for two folders, scale) estimates."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from mmfuse_cli.commands._errors import flag_message
from mmfuse_cli.commands._limits import apply_max_pixels, max_pixels_option
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.results.console import progress_bar, report_error, stderr_console
from mmfuse_cli.results.rows import EXIT_ITEMS_FAILED, EXIT_USAGE, RowSink, exit_code
from mmfuse_cli.tasks import DEFAULT_TASK, check_task


def estimate(
    a_dir: Path = typer.Argument(..., help="Folder of images (source a when a second folder is given)."),
    b_dir: Optional[Path] = typer.Argument(None, help="Folder of the paired source-b images (same stems)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the rows as CSV to this file."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per image (or pair) on stdout."),
    write_sidecar: bool = typer.Option(
        False,
        "--write-sidecar",
        help="Write each folder's degradation.json (the median over its images) for `mmfuse run` to pick up.",
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    task: str = typer.Option(
        DEFAULT_TASK,
        "--task",
        help="ivif or mif: the model whose idea of sharp the blur is measured against.",
    ),
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no table."),
) -> None:
    """Estimate every image's noise std (per channel, [0, 1] units) and blur std (pixels), and the scale of each
    source of a pair from their sizes; print a table (or CSV / JSON), optionally pin them in a sidecar."""
    from mmfuse_cli.batch.estimate import (
        EstimateJob,
        estimate_folders,
        folder_degradation,
        write_folder_sidecar,
    )

    console = stderr_console(quiet)
    apply_max_pixels(console, max_pixels)
    for folder in (a_dir, b_dir):
        if folder is not None and not folder.is_dir():
            report_error(console, f"{folder}: not a directory")
            raise typer.Exit(EXIT_USAGE)
    try:
        job = EstimateJob(a_dir, b_dir, recursive, check_task(task))
    except InvalidValueError as exc:
        report_error(console, flag_message(exc, {"task": "--task"}))
        raise typer.Exit(EXIT_USAGE) from None
    sink = RowSink(json_stdout=json_out, csv_path=output)
    with progress_bar(console, 0, "estimate") as bar:

        def on_item(result) -> None:
            if result.failed:
                report_error(console, f"{result.key}: {result.reason}")
            sink.emit(result.as_row())
            bar.advance()

        results = estimate_folders(job, on_item)
    try:
        sink.close()
    except OSError as exc:
        report_error(console, f"{output}: cannot write the table ({exc.strerror or exc})")
        raise typer.Exit(EXIT_ITEMS_FAILED) from None
    sides = [("", a_dir)] if b_dir is None else [("a", a_dir), ("b", b_dir)]
    failed = False
    if not quiet and not json_out:
        print(_table(results, [s for s, _ in sides]))
    for side, folder in sides:
        try:
            degradation, summary = folder_degradation(results, side)
        except ValueError as exc:
            report_error(console, f"{folder}: {exc}")
            continue
        line = {"folder": str(folder), **degradation.as_dict(), **summary}
        if write_sidecar:
            try:
                path, _ = write_folder_sidecar(folder, results, side)
            except OSError as exc:
                report_error(console, f"{folder}: cannot write the sidecar ({exc.strerror or exc})")
                failed = True
                continue
            line["sidecar"] = str(path)
        print(json.dumps(line) if json_out else _summary(line), file=sys.stderr if json_out else sys.stdout)
    raise typer.Exit(EXIT_ITEMS_FAILED if failed else exit_code(results))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _with_spread(value: Any, spread: Any) -> str:
    """``0.0487 ±0.0126``; ``-`` where nothing could be estimated (the note says why)."""
    return "-" if value is None else f"{_fmt(value)} ±{_fmt(spread)}"


def _table(results, sides: list[str]) -> str:
    """A plain-text table: item, then per side size, noise (spread), blur (spread), scale."""
    header = ["item"]
    for side in sides:
        p = f"{side} " if side else ""
        header += [f"{p}size", f"{p}noise", f"{p}blur", f"{p}scale"]
    lines = [header]
    for r in results:
        if r.failed:
            lines.append([r.key, "failed: " + r.reason])
            continue
        row = [r.key]
        for side in sides:
            p = f"{side}_" if side else ""
            e = r.extra
            row += [
                f"{e[p + 'width']}x{e[p + 'height']}",
                _with_spread(e[p + "noise"], e[p + "noise_spread"]),
                _with_spread(e[p + "blur"], e[p + "blur_spread"]),
                str(e[p + "scale"]),
            ]
        lines.append(row)
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _summary(line: dict) -> str:
    text = (
        f"{line['folder']}: noise {line['noise']:g} (spread {line['noise_spread']:g}), "
        f"blur {line['blur']:g} (spread {line['blur_spread']:g}), scale {line['scale']} "
        f"over {line['images']} image(s)"
    )
    return text + (f" -> {line['sidecar']}" if "sidecar" in line else "")

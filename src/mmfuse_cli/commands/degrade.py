"""``mmfuse degrade IN -o OUT``: synthesize degraded copies of clean images."""

from __future__ import annotations

from pathlib import Path

import typer

from mmfuse_cli.commands._errors import flag_message
from mmfuse_cli.commands._limits import apply_max_pixels, max_pixels_option
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.pairing import list_images
from mmfuse_cli.results.console import progress_bar, report_error, stderr_console
from mmfuse_cli.results.rows import EXIT_USAGE, RowSink, exit_code


def degrade(
    input_dir: Path = typer.Argument(..., help="Folder of clean images."),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Folder for the degraded images and degradation.json."
    ),
    blur: float = typer.Option(0.0, "--blur", help="Gaussian blur std in pixels (0 = none)."),
    noise: float = typer.Option(
        0.0, "--noise", help="Additive Gaussian noise std in [0, 1] intensity units."
    ),
    scale: int = typer.Option(1, "--scale", help="Integer downsampling factor (r x r average pooling)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed; same seed -> byte-identical outputs."),
    recursive: bool = typer.Option(
        False, "--recursive", "-r", help="Descend into sub-folders, keeping the tree."
    ),
    bit_depth: int | None = typer.Option(None, "--bit-depth", help="Force 8 or 16 bits (default: as input)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per image on stdout."),
    max_pixels: int | None = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Degrade every image: blur -> downsample -> noise -> clip; write same names + degradation.json."""
    from mmfuse_cli.batch.degrade import (  # torch: imported on use, keeps --help fast
        DegradeJob,
        degrade_folder,
    )

    console = stderr_console(quiet)
    apply_max_pixels(console, max_pixels)
    try:
        degradation = Degradation(blur=blur, scale=scale, noise=noise)
        if bit_depth not in (None, 8, 16):
            raise ValueError(f"--bit-depth must be 8 or 16, got {bit_depth}")
        if not input_dir.is_dir():
            raise ValueError(f"{input_dir}: not a directory")
        job = DegradeJob(input_dir, output, degradation, seed, recursive, bit_depth)
        output.mkdir(parents=True, exist_ok=True)
        total = len(list_images(input_dir, recursive, exclude=output))
    except InvalidValueError as exc:
        report_error(console, flag_message(exc, {"output": "-o"}))
        raise typer.Exit(EXIT_USAGE)
    except (ValueError, OSError) as exc:
        report_error(console, str(exc))
        raise typer.Exit(EXIT_USAGE)
    sink = RowSink(json_stdout=json_out)
    with progress_bar(console, total, f"degrade ({degradation.describe()})") as bar:

        def on_item(result):
            if result.failed:
                report_error(console, result.reason)
            sink.emit(result.as_row())
            bar.advance()

        try:
            results = degrade_folder(job, on_item)
        except OSError as exc:
            report_error(console, f"{output}: {exc.strerror or exc}")
            raise typer.Exit(1)
    done = sum(r.status == "ok" for r in results)
    if not quiet:
        console.print(f"degraded {done}/{len(results)} image(s) into {output} ({degradation.describe()})")
        grid, checked = _stored_pixel_grid(input_dir, recursive)
        if grid > 1:
            console.print(
                f"note: the inputs are stored as {grid}x{grid} pixel blocks ({checked} checked): "
                f"`mmfuse run --a-grid {grid}` (or --b-grid {grid}) restores them on their blocks",
                soft_wrap=True,
                markup=False,
            )
    raise typer.Exit(exit_code(results))


def _stored_pixel_grid(folder: Path, recursive: bool, sample: int = 8) -> tuple[int, int]:
    """(g, n): the pixel grid shared by the first ``n <= sample`` readable images of ``folder`` (1 if they differ)."""
    from mmfuse_cli.degradation.grid import detect_pixel_grid
    from mmfuse_cli.io import ImageError, read_image

    grids = []
    for path in list_images(folder, recursive)[:sample]:
        try:
            grids.append(detect_pixel_grid(read_image(path).pixels))
        except (ImageError, OSError):
            continue
    return (grids[0] if grids and len(set(grids)) == 1 else 1), len(grids)

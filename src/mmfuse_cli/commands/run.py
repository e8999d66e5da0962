"""``mmfuse run A_DIR B_DIR -o OUT``: restore and fuse every pair; write fused images and run.csv."""

from __future__ import annotations

import math
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from mmfuse_cli.commands._errors import flag_message
from mmfuse_cli.commands._limits import apply_max_pixels, max_pixels_option
from mmfuse_cli.degradation.resolve import AUTO, SourceRequest
from mmfuse_cli.degradation.spec import MAX_GRID
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.results.console import progress_bar, report_error, report_warning, stderr_console
from mmfuse_cli.results.rows import EXIT_USAGE

EXIT_INTERRUPTED = 130
"""Interrupted by SIGINT or SIGTERM (128 + SIGINT, as a shell reports a Ctrl-C)."""

if TYPE_CHECKING:
    from mmfuse_cli.batch.job import RunJob
    from mmfuse_cli.batch.run import RunSummary

# library field -> the flag that sets it (FuseConfig, RunOptions)
FLAGS = {
    "steps": "--steps",
    "precision": "--precision",
    "tile": "--tile",
    "device": "--device",
    "out_format": "--format",
    "bit_depth": "--bit-depth",
    "batch": "--batch",
    "bits": "--input-bits",
    "backend": "--backend",
    "max_memory": "--max-memory",
    "task": "--task",
    "output": "-o",
    # EngineOptions (--engine ray)
    "engine": "--engine",
    "address": "--address",
    "actors": "--actors",
    "gpus_per_actor": "--gpus-per-actor",
    "volume_dtype": "--volume-dtype",
}


def parse_memory(text: str | None) -> int | None:
    """``--max-memory`` as bytes: ``2G``, ``1.5GB``, ``800M``, ``800MiB`` (binary units; a bare number is MiB);
    ``0`` (also ``-0``) or ``none``: no bound. A finite size at least the program's own base
    (:data:`mmfuse_cli.engine.memory.BASE`) plus room to work (:data:`mmfuse_cli.engine.config.MIN_MEMORY`).

    Raises:
        InvalidValueError: (field ``max_memory``) not a finite, non-negative size.
    """
    if text is None:
        return None
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    factor = units.get(value[-1:], None)
    number = value[:-1] if factor else value
    if value in ("none", "off"):
        return None
    try:
        amount = float(number)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or amount < 0:
        raise InvalidValueError(
            "max_memory", f"must be a size such as 2G or 800M (0 = no bound), got {text!r}"
        )
    if amount == 0:
        return None
    return int(amount * (factor or 2**20))


def _number(text: str | None, side: str, name: str, kind: type) -> float | int | str | None:
    """``--a-blur 1.5`` -> 1.5, ``auto`` -> ``"auto"``, absent -> ``None``; anything else names its flag."""
    if text is None or text.strip().lower() == AUTO:
        return None if text is None else AUTO
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise InvalidValueError(f"--{side}-{name}", f"must be {what} or auto, got {text!r}") from None


def _source(side: str, blur, noise, scale, grid, bits, assume_clean: bool = False) -> SourceRequest:
    """The user's statement about source ``side``; an out-of-range value is re-raised naming its flag
    (``blur`` of source ``a`` is ``--a-blur``)."""
    blur, noise = _number(blur, side, "blur", float), _number(noise, side, "noise", float)
    scale = _number(scale, side, "scale", int)
    try:
        return SourceRequest(blur, noise, scale, grid, bits, assume_clean)
    except InvalidValueError as exc:
        flag = FLAGS["bits"] if exc.field == "bits" else f"--{side}-{exc.field}"
        raise InvalidValueError(flag, exc.problem) from None


def run(
    a_dir: Optional[Path] = typer.Argument(
        None,
        help="Folder of IR / functional (CT, PET, SPECT) images or volumes (NIfTI, DICOM series folders); or one file or series.",
    ),
    b_dir: Optional[Path] = typer.Argument(
        None,
        help="Folder of visible / MRI images or volumes (paired by file stem); or one file or series (its grid is the output's).",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Output folder for fused images and run.csv."),
    pairs_file: Optional[str] = typer.Option(
        None, "--pairs", help="Read 'a_path<TAB>b_path' lines from FILE or - (stdin)."
    ),
    task: Optional[str] = typer.Option(None, "--task", help="ivif or mif (default: the checkpoint's task)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="Checkpoint NAME (see mmfuse weights list) or PATH."
    ),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampler steps T (default: as trained, 3)."),
    a_blur: Optional[str] = typer.Option(
        None, "--a-blur", help="Blur std (pixels) of source a, or auto [default: sidecar, else estimated]."
    ),
    a_noise: Optional[str] = typer.Option(
        None,
        "--a-noise",
        help="Noise std ([0, 1] units, per channel as stored) of source a, or auto [default: sidecar, else estimated].",
    ),
    a_scale: Optional[str] = typer.Option(
        None,
        "--a-scale",
        help="Downsampling factor of source a, or auto [default: sidecar, else from the sizes].",
    ),
    b_blur: Optional[str] = typer.Option(None, "--b-blur", help="The same for source b."),
    b_noise: Optional[str] = typer.Option(None, "--b-noise", help="The same for source b."),
    b_scale: Optional[str] = typer.Option(None, "--b-scale", help="The same for source b."),
    assume_clean: bool = typer.Option(
        False,
        "--assume-clean",
        help="What no flag or sidecar states is none (no blur, noise or scale), instead of estimated.",
    ),
    a_grid: Optional[int] = typer.Option(
        None,
        "--a-grid",
        min=1,
        max=MAX_GRID,
        help="Source a is stored enlarged by pixel replication in NxN blocks (Harvard PET/SPECT: 2); keep them.",
    ),
    b_grid: Optional[int] = typer.Option(
        None, "--b-grid", min=1, max=MAX_GRID, help="The same for source b."
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu or cuda."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 on CUDA, fp32 on CPU), fp32, fp16, bf16."
    ),
    flip_ensemble: bool = typer.Option(
        False,
        "--flip-ensemble",
        help="Average the network over 4 flips of its input at every step: about 4x the time for a small gain (docs/BENCHMARKS.md).",
    ),
    batch: int = typer.Option(1, "--batch", help="Pairs per network call (same-size pairs are grouped)."),
    tile: Optional[int] = typer.Option(
        None, "--tile", help="Process in overlapping tiles of SIZE output pixels (overrides --max-memory)."
    ),
    max_memory: str = typer.Option(
        "2G",
        "--max-memory",
        help="Memory budget (2G, 800M; 0 = none): larger pairs are cut into blended tiles automatically.",
    ),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="auto (CPU: fastest installed of openvino, onnxruntime, torch; CUDA: torch), torch, openvino, onnxruntime.",
    ),
    out_format: str = typer.Option("png", "--format", help="Output format: png, tif, jpg or bmp."),
    bit_depth: Optional[int] = typer.Option(
        None,
        "--bit-depth",
        help="8 or 16 (default: the deeper of the two inputs' depths; always 8 for jpg/bmp).",
    ),
    input_bits: Optional[int] = typer.Option(
        None,
        "--input-bits",
        help="Bit depth the model assumes the inputs were rounded to (default: each file's; 0 = exact, trust the data fully).",
    ),
    save_sources: bool = typer.Option(
        False, "--save-sources", help="Also write restored sources to OUT/sources/{a,b}."
    ),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip pairs whose output exists (resume)."
    ),
    recursive: bool = typer.Option(
        False, "--recursive", "-r", help="Pair sub-folders too, keeping the tree."
    ),
    csv_path: Optional[Path] = typer.Option(
        None, "--csv", help="The run's table of rows (default OUT/run.csv)."
    ),
    report_alias: Optional[Path] = typer.Option(None, "--report", hidden=True, help="Old name of --csv."),
    html_report: bool = typer.Option(
        False, "--html-report", help="Also write OUT/report/index.html (as `mmfuse report OUT`)."
    ),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per pair on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    engine: str = typer.Option(
        "local", "--engine", help="local (this process) or ray (an actor pool on a Ray cluster; mmfuse[ray])."
    ),
    address: Optional[str] = typer.Option(
        None, "--address", help="Ray cluster to join (default: RAY_ADDRESS, else a Ray started for the run)."
    ),
    actors: Optional[int] = typer.Option(
        None, "--actors", help="Ray actors, one model each (default: one per GPU share, else one per CPU)."
    ),
    gpus_per_actor: float = typer.Option(
        1.0, "--gpus-per-actor", help="GPUs per Ray actor on a GPU cluster (0.5: two actors per GPU)."
    ),
    volume_dtype: str = typer.Option(
        "float32",
        "--volume-dtype",
        help="Fused volumes: float32 (in [0, 1]) or b (b's stored dtype, in b's units through its intensity window).",
    ),
    max_pixels: Optional[int] = max_pixels_option(),
) -> None:
    """Restore and fuse every pair of A_DIR and B_DIR (or --pairs), writing OUT/<stem>.<format> and run.csv.

    Volumes (NIfTI files, DICOM series folders; pip install 'mmfuse[medical]') are fused slice by slice on b's
    grid and written as OUT/<stem>.nii.gz (.nii when b is a .nii file)."""
    console = stderr_console(quiet)
    pixel_limit = apply_max_pixels(console, max_pixels)
    try:
        job = _job({**locals(), "max_pixels": pixel_limit})
    except InvalidValueError as exc:
        report_error(console, flag_message(exc, FLAGS))
        raise typer.Exit(EXIT_USAGE) from None
    except ValueError as exc:
        report_error(console, str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    summary = _run(job, console)
    if summary.csv_error:
        report_error(console, summary.csv_error)
        raise typer.Exit(summary.exit_code)
    if not quiet:
        done, skipped, failed = (summary.counts[s] for s in ("ok", "skipped", "failed"))
        console.print(f"fused {done} pair(s), skipped {skipped}, failed {failed} -> {output}")
    if summary.report_error:
        report_error(console, summary.report_error)
    elif summary.report is not None and not quiet:
        console.print(summary.report.summary_line(), soft_wrap=True)
    raise typer.Exit(summary.exit_code)


def _job(flags: dict) -> RunJob:
    """The flags of :func:`run` as one :class:`~mmfuse_cli.batch.job.RunJob` (each value validated where it enters
    its object; an :class:`InvalidValueError` names the field, which :data:`FLAGS` maps to the flag)."""
    from mmfuse_cli.batch.engines import EngineOptions
    from mmfuse_cli.batch.job import PairSource, RunJob
    from mmfuse_cli.batch.stages import InputLimits, RunOptions
    from mmfuse_cli.engine.config import FuseConfig

    f = flags
    memory = parse_memory(f["max_memory"])
    options = RunOptions(
        output_dir=f["output"],
        source_a=_source(
            "a", f["a_blur"], f["a_noise"], f["a_scale"], f["a_grid"], f["input_bits"], f["assume_clean"]
        ),
        source_b=_source(
            "b", f["b_blur"], f["b_noise"], f["b_scale"], f["b_grid"], f["input_bits"], f["assume_clean"]
        ),
        out_format=f["out_format"],
        bit_depth=f["bit_depth"],
        batch=f["batch"],
        save_sources=f["save_sources"],
        skip_existing=f["skip_existing"],
        limits=InputLimits(f["max_pixels"], memory),
    )
    fuse = FuseConfig(
        device=f["device"],
        steps=f["steps"],
        precision=f["precision"],
        tile=f["tile"],
        flip_ensemble=f["flip_ensemble"],
        backend=f["backend"],
        max_memory=memory,
    )
    return RunJob(
        pairs=PairSource(f["a_dir"], f["b_dir"], f["pairs_file"], f["recursive"]),
        options=options,
        fuse=fuse,
        engine=EngineOptions(f["engine"], f["address"], f["actors"], gpus_per_actor=f["gpus_per_actor"]),
        task=f["task"],
        model=f["model"],
        csv_path=f["csv_path"] or f["report_alias"],
        html_report=f["html_report"],
        json_lines=f["json_out"],
        download_progress=not f["quiet"],
        volume_dtype=f["volume_dtype"],
    )


def _run(job: RunJob, console) -> RunSummary:
    """:func:`mmfuse_cli.batch.run.run` with a progress bar and one ``error:`` line per failed pair; a failure
    before any pair (a bad checkpoint, sidecar, engine or value) is one line and exit code 2."""
    from mmfuse_cli.batch.engines import EngineError
    from mmfuse_cli.batch.run import RunEvents, run
    from mmfuse_cli.degradation.resolve import ResolveError
    from mmfuse_cli.locks import LockedError
    from mmfuse_cli.model.checkpoint import CheckpointError
    from mmfuse_cli.weights.errors import WeightsError

    with ExitStack() as stack:
        bars = []

        def on_start(total: int, task: str) -> None:
            bars.append(stack.enter_context(progress_bar(console, total, f"fuse ({task})")))

        def on_result(result) -> None:
            if result.failed:
                report_error(console, f"{result.key}: {result.reason}")
            if bars:
                bars[0].advance()

        events = RunEvents(on_start, on_result, lambda message: report_warning(console, message))
        try:
            return run(job, events)
        except (WeightsError, EngineError, LockedError) as exc:
            report_error(console, str(exc))
            raise typer.Exit(getattr(exc, "exit_code", EXIT_USAGE)) from None
        except KeyboardInterrupt:
            report_error(console, f"interrupted: {job.csv_file} lists the pairs finished so far")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except InvalidValueError as exc:
            report_error(console, flag_message(exc, FLAGS))
            raise typer.Exit(EXIT_USAGE) from None
        except (ValueError, ResolveError, CheckpointError, NotADirectoryError) as exc:
            report_error(console, str(exc))
            raise typer.Exit(EXIT_USAGE) from None
        except OSError as exc:
            report_error(console, f"{exc.filename or job.options.output_dir}: {exc.strerror or exc}")
            raise typer.Exit(EXIT_USAGE) from None

"""``mmfuse run A_DIR B_DIR -o OUT``: restore and fuse every pair; write fused images and run.csv."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mmfuse_cli.commands._errors import flag_message
from mmfuse_cli.degradation.resolve import AUTO, SourceRequest
from mmfuse_cli.degradation.spec import MAX_GRID
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.pairing import Pair, pair_folders, parse_pair_lines
from mmfuse_cli.report.console import progress_bar, report_error, report_warning, stderr_console
from mmfuse_cli.report.rows import EXIT_ITEMS_FAILED, EXIT_USAGE, ItemResult, RowSink, exit_code
from mmfuse_cli.tasks import TASKS

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
    # EngineOptions (--engine ray)
    "engine": "--engine",
    "address": "--address",
    "actors": "--actors",
    "gpus_per_actor": "--gpus-per-actor",
}
RAY_MISSING = "--engine ray needs Ray: pip install 'mmfuse[ray]'"


def parse_memory(text: str | None) -> int | None:
    """``--max-memory`` as bytes: ``2G``, ``1.5GB``, ``800M``, ``800MiB`` (binary units; a bare number is MiB);
    ``0`` or ``none``: no bound.

    Raises:
        InvalidValueError: (field ``max_memory``) not a size.
    """
    if text is None:
        return None
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    if value in ("0", "none", "off"):
        return None
    units = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    factor = units.get(value[-1:], None)
    number = value[:-1] if factor else value
    try:
        amount = float(number)
    except ValueError:
        raise InvalidValueError("max_memory", f"must be a size such as 2G or 800M, got {text!r}") from None
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
        return SourceRequest.from_values(blur, noise, scale, grid, bits, assume_clean)
    except InvalidValueError as exc:
        flag = FLAGS["bits"] if exc.field == "bits" else f"--{side}-{exc.field}"
        raise InvalidValueError(flag, exc.problem) from None


def run(
    a_dir: Optional[Path] = typer.Argument(None, help="Folder of IR / functional (CT, PET, SPECT) images."),
    b_dir: Optional[Path] = typer.Argument(
        None, help="Folder of visible / MRI images (paired by file stem)."
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
        help="Average the network over 4 flips of its input at every step: about 4x the time, +0.03-0.25 dB.",
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
    report: Optional[Path] = typer.Option(None, "--report", help="CSV report path (default OUT/run.csv)."),
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
) -> None:
    """Restore and fuse every pair of A_DIR and B_DIR (or --pairs), writing OUT/<stem>.<format> and run.csv."""
    # torch and the model are imported here, not at module level, so `mmfuse --help` stays fast
    from mmfuse_cli.batch.engines import EngineError, EngineOptions, ray_available
    from mmfuse_cli.batch.pipeline import run_pairs
    from mmfuse_cli.batch.stages import RunOptions, make_resolver
    from mmfuse_cli.degradation.resolve import ResolveError
    from mmfuse_cli.engine.config import FuseConfig
    from mmfuse_cli.engine.fuser import Fuser
    from mmfuse_cli.model.checkpoint import CheckpointError, load_checkpoint
    from mmfuse_cli.weights.errors import WeightsError
    from mmfuse_cli.weights.resolve import resolve_checkpoint

    console = stderr_console(quiet)
    try:
        if task is not None and task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
        options = RunOptions(
            output_dir=output,
            source_a=_source("a", a_blur, a_noise, a_scale, a_grid, input_bits, assume_clean),
            source_b=_source("b", b_blur, b_noise, b_scale, b_grid, input_bits, assume_clean),
            out_format=out_format,
            bit_depth=bit_depth,
            batch=batch,
            save_sources=save_sources,
            skip_existing=skip_existing,
        )
        engine_options = EngineOptions(engine, address, actors, gpus_per_actor=gpus_per_actor)
        if engine_options.engine == "ray" and not ray_available():
            raise EngineError(RAY_MISSING)
        config = FuseConfig(
            device=device,
            steps=steps,
            precision=precision,  # type: ignore[arg-type]
            tile=tile,
            flip_ensemble=flip_ensemble,
            backend=backend,
            max_memory=parse_memory(max_memory),
        )
        pairs, problems = _collect_pairs(a_dir, b_dir, pairs_file, recursive)
        checkpoint = resolve_checkpoint(
            model, task=task or ("ivif" if model is None else None), progress=not quiet
        )
        fusion_model = load_checkpoint(checkpoint)
        if task is not None and fusion_model.config.task != task:
            raise ValueError(
                f"checkpoint {checkpoint} is for task {fusion_model.config.task!r}, not {task!r}"
            )
        resolver = make_resolver(
            options, lambda message: report_warning(console, message), fusion_model.config.task
        )
        for folder in (a_dir, b_dir):
            if folder is not None:
                resolver.check_folder(folder)  # a malformed top-level sidecar stops the run before any pair
        fuser = Fuser(fusion_model, config) if engine_options.engine == "local" else None
        output.mkdir(parents=True, exist_ok=True)
    except (WeightsError, EngineError) as exc:
        report_error(console, str(exc))
        raise typer.Exit(getattr(exc, "exit_code", EXIT_USAGE)) from None
    except InvalidValueError as exc:
        report_error(console, flag_message(exc, FLAGS))
        raise typer.Exit(EXIT_USAGE) from None
    except (ValueError, ResolveError, CheckpointError, NotADirectoryError) as exc:
        report_error(console, str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        report_error(console, f"{exc.filename or output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_USAGE) from None

    sink = RowSink(json_stdout=json_out, csv_path=report or output / "run.csv")
    for key, reason in problems:
        report_error(console, f"{key}: {reason}")
        sink.emit(ItemResult(key, "failed", reason).as_row())
    with progress_bar(console, len(pairs), f"fuse ({fusion_model.config.task})") as bar:

        def on_result(result: ItemResult) -> None:
            if result.failed:
                report_error(console, f"{result.key}: {result.reason}")
            sink.emit(result.as_row())
            bar.advance()

        if fuser is not None:
            results = run_pairs(pairs, fuser, options, on_result, resolver=resolver)
        else:
            results = _run_ray(pairs, checkpoint, config, options, engine_options, on_result, console)
            # rows arrive in the cluster's completion order: run.csv lists them sorted by item
            sink.rows.sort(key=lambda row: str(row["item"]))
    try:
        sink.close()
    except OSError as exc:
        report_error(console, f"{sink.csv_path}: cannot write the report ({exc.strerror or exc})")
        raise typer.Exit(EXIT_ITEMS_FAILED) from None
    done = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    failed = len(results) - done - skipped + len(problems)
    if not quiet:
        console.print(f"fused {done} pair(s), skipped {skipped}, failed {failed} -> {output}")
    if html_report and not _write_html_report(console, output, sink.csv_path):
        raise typer.Exit(EXIT_ITEMS_FAILED)
    raise typer.Exit(EXIT_ITEMS_FAILED if problems else exit_code(results))


def _write_html_report(console, output: Path, csv_path) -> bool:
    """``--html-report``: the page of this run in OUT/report; False (after one error line) when it failed."""
    from mmfuse_cli.commands.report import html_report
    from mmfuse_cli.report.page_data import ReportError

    try:
        html_report(console, output, csv_path, output / "report")
    except (ReportError, OSError) as exc:
        report_error(console, f"cannot write the HTML report: {exc}")
        return False
    return True


def _run_ray(pairs, checkpoint, config, options, engine_options, on_result, console) -> list[ItemResult]:
    """``--engine ray``: the same stages in a Ray Data actor pool (imported here: the local path never loads Ray)."""
    from mmfuse_cli.batch.engines import EngineError
    from mmfuse_cli.batch.ray_engine import run_pairs_ray

    try:
        return run_pairs_ray(
            pairs,
            checkpoint,
            config,
            options,
            engine_options,
            on_result,
            on_warning=lambda message: report_warning(console, message),
        )
    except EngineError as exc:
        report_error(console, str(exc))
        raise typer.Exit(EXIT_USAGE) from None


def _collect_pairs(a_dir, b_dir, pairs_file, recursive) -> tuple[list[Pair], list[tuple[str, str]]]:
    if pairs_file is not None:
        if a_dir is not None or b_dir is not None:
            raise ValueError("give either A_DIR B_DIR or --pairs, not both")
        if pairs_file == "-":
            return parse_pair_lines(sys.stdin), []
        with open(pairs_file, encoding="utf-8") as handle:
            return parse_pair_lines(handle), []
    if a_dir is None or b_dir is None:
        raise ValueError("need two folders (A_DIR B_DIR) or --pairs FILE|-")
    pairing = pair_folders(a_dir, b_dir, recursive)
    if not pairing.pairs and not pairing.problems():
        raise ValueError(f"no images found in {a_dir} and {b_dir}")
    return pairing.pairs, pairing.problems()

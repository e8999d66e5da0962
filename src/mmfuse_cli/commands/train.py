"""``mmfuse train``: reproduce a checkpoint (resumable; see docs/TRAINING.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from mmfuse_cli.commands._errors import flag_message
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.results.console import report_error, stderr_console
from mmfuse_cli.results.rows import EXIT_USAGE
from mmfuse_cli.tasks import check_task
from mmfuse_cli.training.config import TrainConfig

DEFAULTS = TrainConfig()
"""Every flag's default is the :class:`~mmfuse_cli.training.config.TrainConfig` field's (one home per default)."""

FLAGS = {
    "task": "--task",
    "src_loss": "--src-loss",
    "crop": "--crop",
    "kind_weights": "--kind-weight",
    "folders": "--a / --b",
    "single_fraction": "--single-fraction",
    "single_fusion_weight": "--single-fusion-weight",
}


def train(
    task: str = typer.Option(..., "--task", help="ivif (IR + visible) or mif (functional/CT + MRI)."),
    data: Path = typer.Option(
        Path(DEFAULTS.data), "--data", help="Data root laid out as docs/TRAINING.md (Data layout) says."
    ),
    a_dirs: Optional[list[Path]] = typer.Option(
        None,
        "--a",
        help="Folder of clean source-a images to train on instead of --data's splits (repeatable).",
    ),
    b_dirs: Optional[list[Path]] = typer.Option(
        None, "--b", help="Folder of the matching clean source-b images, paired by stem (one per --a)."
    ),
    singles: Optional[list[Path]] = typer.Option(
        None,
        "--singles",
        help="Folder of single clean images (e.g. natural photographs: natural/train/gray of the data root) made into "
        "pairs for --single-fraction of the crops (repeatable; see docs/TRAINING.md).",
    ),
    single_fraction: float = typer.Option(
        DEFAULTS.single_fraction, "--single-fraction", help="Share of the crops drawn from --singles (0-1)."
    ),
    single_fusion_weight: float = typer.Option(
        DEFAULTS.single_fusion_weight,
        "--single-fusion-weight",
        help="Weight of the --singles crops in the fused-image loss terms (0-1): 0 = they train restoration only, "
        "and the fusion rule is learnt from real sensor pairs alone.",
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder (state, log, model). Default runs/TASK."),
    steps: int = typer.Option(DEFAULTS.steps, "--steps", help="Optimizer steps."),
    batch: int = typer.Option(DEFAULTS.batch, "--batch", help="Crops per step."),
    crop: int = typer.Option(DEFAULTS.crop, "--crop", help="Crop size in pixels (multiple of 8)."),
    crop_align: int = typer.Option(
        DEFAULTS.crop_align,
        "--crop-align",
        min=1,
        help="Crop corners on multiples of N: 2 keeps the 2x2 grid of pixel-replicated images (Harvard PET/SPECT), "
        "and the model then assumes that grid on every input (see docs/TRAINING.md).",
    ),
    zoom_fraction: float = typer.Option(
        DEFAULTS.zoom_fraction,
        "--zoom-fraction",
        min=0.0,
        max=1.0,
        help="Share of crops enlarged by x1.25..--max-zoom before degrading, so that band-limited (resized) "
        "images are among the clean targets (see docs/TRAINING.md).",
    ),
    max_zoom: float = typer.Option(
        DEFAULTS.max_zoom, "--max-zoom", min=1.25, max=4.0, help="Largest enlargement of --zoom-fraction."
    ),
    lr: float = typer.Option(DEFAULTS.lr, "--lr", help="Adam learning rate."),
    seed: int = typer.Option(DEFAULTS.seed, "--seed", help="Seed of all randomness (deterministic on CPU)."),
    sampler_steps: Optional[int] = typer.Option(
        None, "--sampler-steps", help="Sampler steps T unrolled in training [default: 3, or as --init-from]."
    ),
    base_channels: Optional[int] = typer.Option(
        None, "--base-channels", help="U-Net width at full resolution [default: 16, or as --init-from]."
    ),
    levels: Optional[int] = typer.Option(
        None, "--levels", help="U-Net resolution levels [default: 4, or as --init-from]."
    ),
    blocks_per_level: Optional[int] = typer.Option(
        None, "--blocks-per-level", help="Residual blocks per U-Net level [default: 1, or as --init-from]."
    ),
    bottom_blocks: Optional[int] = typer.Option(
        None,
        "--bottom-blocks",
        min=0,
        help="Extra residual blocks at the deepest U-Net level [default: 0, or as --init-from].",
    ),
    top_blocks: Optional[int] = typer.Option(
        None,
        "--top-blocks",
        min=0,
        help="Extra residual blocks at full resolution, before the head [default: 0, or as --init-from].",
    ),
    unshuffle: Optional[int] = typer.Option(
        None,
        "--unshuffle",
        min=1,
        max=2,
        help="Working resolution = input / N: 2 pixel-unshuffles the input, the v2 front end [default: 1].",
    ),
    max_channels: Optional[int] = typer.Option(
        None, "--max-channels", min=0, help="Channels stop doubling at this width (0: no cap) [default: 0]."
    ),
    portable_state: Optional[Path] = typer.Option(
        None,
        "--portable-state",
        help="Also keep the latest state (16-bit moments) and log in DIR, and resume from there when the run "
        "folder has none: a run that outlasts one machine (docs/TRAINING.md).",
    ),
    init_from: Optional[str] = typer.Option(
        None,
        "--init-from",
        help="Start from this checkpoint (NAME or PATH): fine-tune, or grow with more blocks.",
    ),
    val_every: int = typer.Option(DEFAULTS.val_every, "--val-every", help="Validate every N steps."),
    checkpoint_every: int = typer.Option(
        DEFAULTS.checkpoint_every, "--checkpoint-every", help="Save resumable state every N steps."
    ),
    max_minutes: Optional[float] = typer.Option(
        None, "--max-minutes", help="Stop (and export) after this long."
    ),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    src_loss: str = typer.Option(
        DEFAULTS.src_loss,
        "--src-loss",
        help="Source term: l1 (authors' weights), log (per-sample log-L1) or logrmse (per-sample log-RMSE, i.e. -PSNR).",
    ),
    w_ssim: float = typer.Option(
        DEFAULTS.w_ssim,
        "--w-ssim",
        min=0.0,
        help="MIF: weight of the fused image's SSIM term against both clean sources.",
    ),
    observation_bits: int = typer.Option(
        DEFAULTS.observation_bits,
        "--observation-bits",
        help="Round synthetic observations to N-bit samples like real files (0 = never).",
    ),
    exact_fraction: float = typer.Option(
        DEFAULTS.exact_fraction,
        "--exact-fraction",
        min=0.0,
        max=1.0,
        help="Share of observations left unrounded (16-bit/float inputs).",
    ),
    kind_weight: Optional[list[str]] = typer.Option(
        None,
        "--kind-weight",
        help="KIND=W: draw this degradation kind W times as often (repeatable; kinds: clean, noise, blur, down, "
        "blur+noise, down+noise, blur+down, blur+down+noise; unnamed kinds weigh 1).",
    ),
    exact_final_fusion: Optional[bool] = typer.Option(
        None,
        "--exact-final-fusion/--no-exact-final-fusion",
        help="Last sampler step enforces fused = m a + (1-m) b of the restored sources [default: as --init-from "
        "or the resumed run, else off].",
    ),
    quantisation_aware: Optional[bool] = typer.Option(
        None,
        "--quantisation-aware/--no-quantisation-aware",
        help="Let the model see each input's bit depth [default: on; as the state when resuming].",
    ),
) -> None:
    """Train the fusion model end to end on clean pairs degraded on the fly; resumes from OUT/state.safetensors."""
    # torch: imported on use, keeps --help fast
    from mmfuse_cli.degradation.draws import parse_kind_weights
    from mmfuse_cli.training.loop import train as run_training

    console = stderr_console()
    try:
        kind_weights = parse_kind_weights(kind_weight or [])
    except ValueError as exc:
        report_error(console, f"--kind-weight: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    if len(a_dirs or []) != len(b_dirs or []):
        report_error(
            console,
            f"give one --b folder per --a folder (got {len(a_dirs or [])} --a, {len(b_dirs or [])} --b)",
        )
        raise typer.Exit(EXIT_USAGE)
    for folder in [*(a_dirs or []), *(b_dirs or []), *(singles or [])]:
        if not folder.is_dir():
            report_error(console, f"{folder}: not a folder")
            raise typer.Exit(EXIT_USAGE)
    try:
        cfg = TrainConfig(
            task=check_task(task),  # the same check (and InvalidValueError) as TrainConfig's own
            data=str(data),
            folders=[[str(a), str(b)] for a, b in zip(a_dirs or [], b_dirs or [], strict=True)],
            out_dir=str(out or Path("runs") / task),
            steps=steps,
            batch=batch,
            crop=crop,
            crop_align=crop_align,
            singles=[str(folder) for folder in singles or []],
            single_fraction=single_fraction,
            single_fusion_weight=single_fusion_weight,
            zoom_fraction=zoom_fraction,
            max_zoom=max_zoom,
            lr=lr,
            seed=seed,
            sampler_steps=sampler_steps,
            base_channels=base_channels,
            levels=levels,
            blocks_per_level=blocks_per_level,
            bottom_blocks=bottom_blocks,
            top_blocks=top_blocks,
            unshuffle=unshuffle,
            max_channels=max_channels,
            portable_dir=str(portable_state) if portable_state else None,
            init_from=init_from,
            val_every=val_every,
            checkpoint_every=checkpoint_every,
            max_minutes=max_minutes,
            threads=threads,
            src_loss=src_loss,
            w_ssim=w_ssim,
            observation_bits=observation_bits,
            exact_fraction=exact_fraction,
            quantisation_aware=quantisation_aware,
            exact_final_fusion=exact_final_fusion,
            kind_weights=kind_weights,
        )
    except InvalidValueError as exc:
        report_error(console, flag_message(exc, FLAGS))
        raise typer.Exit(EXIT_USAGE) from None
    try:
        run_training(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as exc:
        report_error(console, str(exc))
        raise typer.Exit(EXIT_USAGE) from None

"""The ``mmfuse`` command line: a thin Typer layer over the library (one module per command in ``commands/``).

Exit codes: 0 = every item succeeded, 1 = some items failed (the rest finished), 2 = usage error.
"""

from __future__ import annotations

import sys
import warnings

import typer

from mmfuse_cli import __version__
from mmfuse_cli.commands import degrade as degrade_cmd
from mmfuse_cli.commands import estimate as estimate_cmd
from mmfuse_cli.commands import evaluate as evaluate_cmd
from mmfuse_cli.commands import info as info_cmd
from mmfuse_cli.commands import report as report_cmd
from mmfuse_cli.commands import run as run_cmd
from mmfuse_cli.commands import train as train_cmd
from mmfuse_cli.commands import weights as weights_cmd

app = typer.Typer(
    name="mmfuse",
    help="Restore and fuse degraded multi-modal image pairs (IR+visible, MRI+CT/PET/SPECT) in batch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        print(f"mmfuse {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Restore and fuse degraded multi-modal image pairs in batch."""


app.command("info", help="Versions, compute device and threads.", short_help="Versions, device, threads.")(
    info_cmd.info
)
app.command(
    "run",
    help="Restore and fuse every pair of two folders; write fused images + run.csv.",
    short_help="Restore + fuse image pairs.",
)(run_cmd.run)
app.command(
    "degrade",
    help="Synthesize degraded copies of clean images (+ degradation.json sidecar).",
    short_help="Synthesize degradations.",
)(degrade_cmd.degrade)
app.command(
    "estimate",
    help="Estimate each image's noise, blur (and a pair's scale); optionally pin them in degradation.json.",
    short_help="Estimate noise, blur, scale.",
)(estimate_cmd.estimate)
app.command(
    "evaluate",
    help="Objective fusion metrics (EN, MI, VIF, Qabf, SSIM ...) of fused images vs their sources.",
    short_help="Fusion metrics.",
)(evaluate_cmd.evaluate)
app.command(
    "report",
    help="Static HTML report of a run (or an evaluate comparison): images, degradations, metrics, sortable.",
    short_help="HTML report of a run.",
)(report_cmd.report)
app.add_typer(
    weights_cmd.weights_app,
    name="weights",
    help="Checkpoints: list, pull (download + verify), verify, path.",
    short_help="List, pull, verify checkpoints.",
)
app.command(
    "train",
    help="Train the fusion model (reproduces the shipped checkpoints).",
    short_help="Train a checkpoint.",
)(train_cmd.train)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings (an alpha channel dropped, ...) as one ``warning:`` line on stderr, like every other message."""
    return f"warning: {message}\n"


def main() -> None:
    """Console-script entry point."""
    warnings.formatwarning = _one_line_warning
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

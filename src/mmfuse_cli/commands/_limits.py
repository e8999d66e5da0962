"""``--max-pixels N``: the option every command that decodes images shares, and what it does at start-up."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from mmfuse_cli.commands._errors import flag_message
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, set_max_pixels
from mmfuse_cli.results.console import report_error
from mmfuse_cli.results.rows import EXIT_USAGE

FLAGS = {"max_pixels": "--max-pixels"}


def max_pixels_option() -> Any:
    """A fresh ``typer.Option`` for ``--max-pixels`` (default None: the environment, then the default)."""
    return typer.Option(
        None,
        "--max-pixels",
        metavar="N",
        show_default=False,
        help=(
            "Refuse an image with more than N pixels (width x height) from its header, before decoding it; "
            f"0 = no limit. Default: ${MAX_PIXELS_ENV}, else {DEFAULT_MAX_PIXELS}."
        ),
    )


def apply_max_pixels(console: Console, value: int | None) -> int:
    """Make ``value`` (flag > ``$MMFUSE_MAX_PIXELS`` > default) this process's pixel limit; a bad flag or
    environment value is one ``error:`` line and exit 2, before any work. Returns the limit (0 = none)."""
    try:
        return set_max_pixels(value)
    except InvalidValueError as exc:
        report_error(console, flag_message(exc, FLAGS))
        raise typer.Exit(EXIT_USAGE) from None


__all__ = ["apply_max_pixels", "max_pixels_option"]

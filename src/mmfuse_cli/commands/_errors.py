"""Turning the library's typed errors into one-line messages that name the user's flags."""

from __future__ import annotations

from mmfuse_cli.errors import InvalidValueError


def flag_message(exc: InvalidValueError, flags: dict[str, str]) -> str:
    """``--tile must be >= 64 pixels, got 10`` / ``--a-blur: blur std must be in [0, 8] pixels, got 9``: the flag
    ``flags[exc.field]`` (or the field itself) and the problem."""
    return InvalidValueError.format(flags.get(exc.field, exc.field), exc.problem)


__all__ = ["flag_message"]

"""The library's typed error for a bad value, so that each layer can say what is wrong without knowing the CLI.

A value is validated once, where it enters the library (a :class:`~mmfuse_cli.degradation.spec.Degradation`, a
:class:`~mmfuse_cli.engine.config.FuseConfig`, a :class:`~mmfuse_cli.batch.stages.RunOptions`). What is wrong
is an :class:`InvalidValueError` naming the field (``tile``, ``blur``, ``bit_depth`` ...); the command line maps
the field to its flag (``--tile``, ``--a-blur``, ``--bit-depth``) and prints one line.
"""

from __future__ import annotations


class InvalidValueError(ValueError):
    """``field`` has a value the library cannot use; ``problem`` says why (no command-line flag names)."""

    def __init__(self, field: str, problem: str):
        super().__init__(self.format(field, problem))
        self.field = field
        self.problem = problem

    @staticmethod
    def format(name: str, problem: str) -> str:
        """``tile must be >= 64 pixels, got 10`` / ``blur: blur std must be in [0, 8] pixels, got 9``: the name
        (a field, or the flag the CLI maps it to) and the problem, read as one sentence."""
        return f"{name} {problem}" if problem.startswith("must") else f"{name}: {problem}"


__all__ = ["InvalidValueError"]

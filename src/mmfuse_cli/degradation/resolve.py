"""The one place a source's degradation is decided: flag > sidecar > clean, then its pixel grid and bit depth.

For each source (``a`` or ``b``) of each pair, in this order:

* blur, scale, noise: the command-line values when any of the three was given (the others then default to
  none), else the ``degradation.json`` sidecar in the image's own folder, else clean;
* pixel grid: the ``--a-grid`` / ``--b-grid`` value when given, else the sidecar's, else 1; a grid claimed for an
  undegraded file that visibly lacks it is refused (:func:`mmfuse_cli.degradation.grid.grid_claim_holds`);
* bit depth: ``--input-bits`` when given, else the file's own depth.

The result, a :class:`ResolvedSource`, carries one :class:`~mmfuse_cli.degradation.spec.Degradation` with all
five parameters and where each came from; that object travels unchanged to the sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mmfuse_cli.degradation.grid import grid_claim_holds
from mmfuse_cli.degradation.sidecar import SIDECAR_NAME, SidecarError, read_sidecar
from mmfuse_cli.degradation.spec import MAX_BITS, MAX_GRID, Degradation
from mmfuse_cli.errors import InvalidValueError

SIDES = ("a", "b")


class ResolveError(ValueError):
    """A source's degradation cannot be decided (a bad sidecar, a grid the file lacks); the message names the file."""


@dataclass(frozen=True)
class SourceRequest:
    """What the user stated about one source, validated on construction.

    Attributes:
        degradation: blur / scale / noise as stated (``None`` = nothing stated: look for a sidecar).
        grid: pixel grid as stated (``None`` = as the sidecar says, else 1).
        bits: bit depth the model is told the samples were rounded to (``None`` = each file's own depth;
            0 = exact values).

    Raises:
        InvalidValueError: ``grid`` or ``bits`` out of range (fields ``grid``, ``bits``).
    """

    degradation: Degradation | None = None
    grid: int | None = None
    bits: int | None = None

    def __post_init__(self) -> None:
        if self.grid is not None and not (1 <= self.grid <= MAX_GRID):
            raise InvalidValueError("grid", f"must be an integer in [1, {MAX_GRID}], got {self.grid}")
        if self.bits is not None and not (0 <= self.bits <= MAX_BITS):
            raise InvalidValueError(
                "bits", f"must be 0 (exact) or a bit depth from 1 to {MAX_BITS}, got {self.bits}"
            )

    @classmethod
    def from_values(
        cls,
        blur: float | None = None,
        noise: float | None = None,
        scale: int | None = None,
        grid: int | None = None,
        bits: int | None = None,
    ) -> SourceRequest:
        """From separately stated values (``None`` = not stated); any of blur/noise/scale states all three.

        Raises:
            DegradationError / InvalidValueError: a value out of range, naming its field.
        """
        stated = not (blur is None and noise is None and scale is None)
        degradation = Degradation(blur=blur or 0.0, scale=scale or 1, noise=noise or 0.0) if stated else None
        return cls(degradation, grid, bits)


@dataclass(frozen=True)
class ResolvedSource:
    """The degradation a source is fused with, and where each parameter came from.

    ``origin`` maps ``blur``, ``scale``, ``noise``, ``grid``, ``bits`` to ``flag``, ``sidecar``, ``file`` (the
    bit depth of the file) or ``default`` (nothing said: clean, grid 1).
    """

    degradation: Degradation
    origin: dict[str, str] = field(default_factory=dict)

    @property
    def assumed_clean(self) -> bool:
        """Nothing stated blur, scale or noise: the source is taken as clean."""
        return self.origin.get("noise") == "default"


class SidecarCache:
    """Reads each folder's ``degradation.json`` once (thread-safe); errors are cached too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, Degradation | SidecarError | None] = {}

    def degradation_for(self, image_path: Path) -> Degradation | None:
        """The sidecar degradation of the folder holding ``image_path`` (``None`` if it has none).

        Raises:
            SidecarError: the folder's sidecar is malformed (naming it).
        """
        folder = Path(image_path).parent
        with self._lock:
            if folder not in self._cache:
                path = folder / SIDECAR_NAME
                try:
                    self._cache[folder] = read_sidecar(path).degradation if path.exists() else None
                except SidecarError as exc:
                    self._cache[folder] = exc
            value = self._cache[folder]
        if isinstance(value, SidecarError):
            raise value
        return value


class DegradationResolver:
    """Decides both sources' degradations for every pair of a run (thread-safe).

    Args:
        requests: what the user stated for ``a`` and ``b``.
        on_assumed_clean: called once per side, with a one-line message, the first time a source of that side is
            taken as clean because nothing was stated and no sidecar exists.
    """

    def __init__(
        self,
        request_a: SourceRequest | None = None,
        request_b: SourceRequest | None = None,
        on_assumed_clean: Callable[[str], None] | None = None,
    ):
        self.requests = {"a": request_a or SourceRequest(), "b": request_b or SourceRequest()}
        self._sidecars = SidecarCache()
        self._on_assumed_clean = on_assumed_clean
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def check_folder(self, folder: Path) -> None:
        """Read ``folder``'s sidecar now, so that a malformed one stops a run before any work.

        Raises:
            ResolveError: the sidecar is malformed (naming it).
        """
        try:
            self._sidecars.degradation_for(Path(folder) / SIDECAR_NAME)
        except SidecarError as exc:
            raise ResolveError(str(exc)) from None

    def resolve(self, side: str, path: Path, pixels: np.ndarray, file_bits: int) -> ResolvedSource:
        """The degradation of source ``side`` read from ``path`` (pixels float32 [0, 1], stored at ``file_bits``).

        Raises:
            ResolveError: a malformed sidecar, or a grid claimed for a clean file that lacks it.
        """
        request = self.requests[side]
        origin: dict[str, str] = {}
        try:
            from_sidecar = None if request.degradation is not None else self._sidecars.degradation_for(path)
        except SidecarError as exc:
            raise ResolveError(str(exc)) from None
        if request.degradation is not None:
            degradation, where = request.degradation, "flag"
        elif from_sidecar is not None:
            degradation, where = from_sidecar, "sidecar"
        else:
            degradation, where = Degradation(), "default"
            self._warn_clean(side, path)
        origin.update(blur=where, scale=where, noise=where)
        origin["grid"] = (
            "flag" if request.grid is not None else ("sidecar" if degradation.grid != 1 else "default")
        )
        origin["bits"] = "flag" if request.bits is not None else "file"
        degradation = replace(
            degradation,
            grid=request.grid if request.grid is not None else degradation.grid,
            bits=request.bits if request.bits is not None else file_bits,
        )
        _check_grid_claim(path, pixels, degradation)
        return ResolvedSource(degradation, origin)

    def _warn_clean(self, side: str, path: Path) -> None:
        with self._lock:
            if side in self._warned or self._on_assumed_clean is None:
                return
            self._warned.add(side)
        self._on_assumed_clean(
            f"no degradation given for source {side} and no {path.parent / SIDECAR_NAME}: assuming clean"
        )


def _check_grid_claim(path: Path, pixels: np.ndarray, degradation: Degradation) -> None:
    """Refuse a pixel grid that an undegraded file visibly does not have: projecting onto it would blur the file.
    (Degraded files cannot be checked: blur and noise hide the blocks; see :func:`grid_claim_holds`.)"""
    if degradation.grid > 1 and degradation.is_clean and not grid_claim_holds(pixels, degradation.grid):
        g = degradation.grid
        raise ResolveError(
            f"{path}: a {g}x{g} pixel grid was stated, but this undegraded file is not stored as {g}x{g} blocks"
        )


__all__ = ["SIDES", "DegradationResolver", "ResolveError", "ResolvedSource", "SidecarCache", "SourceRequest"]

"""The one place a source's degradation is decided: per parameter, flag > sidecar > estimate.

For each source (``a`` or ``b``) of each pair, each of blur, scale and noise is, in this order:

* the value stated on the command line (``--a-blur 1.5``); ``auto`` asks for the estimate even over a sidecar;
* else the ``degradation.json`` sidecar in the image's own folder;
* else estimated from the pixels (:mod:`mmfuse_cli.degradation.estimate`; the scale from the two sources' sizes);
  with ``assume_clean`` (``--assume-clean``) instead: none (blur 0, scale 1, noise 0), the behaviour before
  estimation existed.

Then the pixel grid (``--a-grid`` or the sidecar's; else, unless ``assume_clean``, the grid the file is visibly
stored on, which also means it is undegraded: noise and blur estimated as none (``grid.detect_grid``); else 1. A
grid claimed for an undegraded file that visibly lacks it is refused) and the bit depth (``--input-bits``, else the file's own). The result, one
:class:`ResolvedSource` per source, carries one :class:`~mmfuse_cli.degradation.spec.Degradation` with all five
parameters, where each came from (``flag`` / ``sidecar`` / ``estimated`` / ``default``), the estimator's spread,
and notes (an estimate that could not be made falls back to none, and says so); that object travels unchanged to
the sampler.

Noise is in the unit ``mmfuse degrade`` writes: std per channel of the file as stored. The engine converts it
where it builds a colour source's luminance (:func:`mmfuse_cli.engine.colour.luma_noise`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmfuse_cli.degradation.estimate import estimate_parameter, infer_scales
from mmfuse_cli.degradation.grid import detect_grid, grid_claim_holds
from mmfuse_cli.degradation.sidecar import SIDECAR_NAME, SidecarError, read_sidecar
from mmfuse_cli.degradation.spec import MAX_BITS, MAX_GRID, Degradation
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.tasks import DEFAULT_TASK, Task, check_task


class ResolveError(ValueError):
    """A source's degradation cannot be decided (a bad sidecar, a grid the file lacks); the message names the file."""


AUTO = "auto"
"""A stated value meaning: estimate it, even when a sidecar gives one."""

Stated = float | int | str | None
"""A parameter as stated: a number, :data:`AUTO`, or ``None`` (not stated)."""


@dataclass(frozen=True)
class SourceRequest:
    """What the user stated about one source, validated on construction.

    Attributes:
        blur, noise, scale: a value, :data:`AUTO` (estimate it), or ``None`` (the sidecar's, else the estimate).
        grid: pixel grid as stated (``None`` = as the sidecar says, else as the file visibly is, else 1).
        bits: bit depth the model is told the samples were rounded to (``None`` = each file's own depth;
            0 = exact values).
        assume_clean: what is neither stated nor in a sidecar is none, not estimated.

    Raises:
        InvalidValueError / DegradationError: a value out of range, naming its field.
    """

    blur: Stated = None
    noise: Stated = None
    scale: Stated = None
    grid: int | None = None
    bits: int | None = None
    assume_clean: bool = False

    def __post_init__(self) -> None:
        if self.grid is not None and not (1 <= self.grid <= MAX_GRID):
            raise InvalidValueError("grid", f"must be an integer in [1, {MAX_GRID}], got {self.grid}")
        if self.bits is not None and not (0 <= self.bits <= MAX_BITS):
            raise InvalidValueError(
                "bits", f"must be 0 (exact) or a bit depth from 1 to {MAX_BITS}, got {self.bits}"
            )
        for name in ("blur", "noise", "scale"):
            value = getattr(self, name)
            if isinstance(value, str) and value != AUTO:
                raise InvalidValueError(name, f"must be a number or {AUTO!r}, got {value!r}")
        numbers = {
            n: getattr(self, n) for n in ("blur", "noise", "scale") if not isinstance(getattr(self, n), str)
        }
        Degradation(**{n: v for n, v in numbers.items() if v is not None})  # range checks, naming the field

    def stated(self, name: str) -> float | int | None:
        """The number stated for ``name``, or ``None`` (not stated, or :data:`AUTO`)."""
        value = getattr(self, name)
        return None if value is None or isinstance(value, str) else value


@dataclass(frozen=True)
class ResolvedSource:
    """The degradation a source is fused with, and where each parameter came from.

    ``origin`` maps ``blur``, ``scale``, ``noise``, ``grid``, ``bits`` to ``flag``, ``sidecar``, ``estimated``,
    ``file`` (the bit depth of the file) or ``default`` (nothing said and nothing estimated: none, grid 1).
    ``spread``: the estimator's spread of ``noise`` / ``blur`` where estimated. ``notes``: what the row should say
    (an estimate that could not be made, and what was used instead).
    """

    degradation: Degradation
    origin: dict[str, str] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def assumed_clean(self) -> bool:
        """Nothing stated, no sidecar, no estimate: the source is taken as clean."""
        return self.origin.get("noise") == "default"

    def row(self, side: str) -> dict[str, object]:
        """The run.csv / JSON columns of this source: ``{side}_noise``, ``{side}_noise_from``, ... and the spreads."""
        d = self.degradation
        out: dict[str, object] = {}
        for name, value in (
            ("noise", d.noise),
            ("blur", d.blur),
            ("scale", d.scale),
            ("grid", d.grid),
            ("bits", d.bits),
        ):
            out[f"{side}_{name}"] = value
            out[f"{side}_{name}_from"] = self.origin.get(name, "")
        for name, value in self.spread.items():
            out[f"{side}_{name}_spread"] = value
        return out


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
        task: the model's task (``ivif``, ``mif``): a blur estimate is of the blur beyond what that model was
            trained on as sharp.
    """

    def __init__(
        self,
        request_a: SourceRequest | None = None,
        request_b: SourceRequest | None = None,
        on_assumed_clean: Callable[[str], None] | None = None,
        task: Task = DEFAULT_TASK,
    ):
        self.requests = {"a": request_a or SourceRequest(), "b": request_b or SourceRequest()}
        self.task = check_task(task)
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

    def resolve_pair(
        self, path_a: Path, a: np.ndarray, bits_a: int, path_b: Path, b: np.ndarray, bits_b: int
    ) -> tuple[ResolvedSource, ResolvedSource]:
        """Both sources' degradations for one pair (pixels float32 [0, 1] as read, stored at ``bits_*`` bits).

        Raises:
            ResolveError: a malformed sidecar, or a grid claimed for a clean file that lacks it.
        """
        sidecar_a, sidecar_b = self._sidecar(path_a, "a"), self._sidecar(path_b, "b")
        scales = self._scales(a.shape, b.shape, sidecar_a, sidecar_b)
        return (
            self._resolve("a", path_a, a, bits_a, sidecar_a, scales[0]),
            self._resolve("b", path_b, b, bits_b, sidecar_b, scales[1]),
        )

    def _sidecar(self, path: Path, side: str) -> Degradation | None:
        request = self.requests[side]
        if (
            all(request.stated(n) is not None for n in ("blur", "noise", "scale"))
            and request.grid is not None
        ):
            return None  # everything stated: no sidecar is read (nor can a bad one fail the pair)
        try:
            return self._sidecars.degradation_for(path)
        except SidecarError as exc:
            raise ResolveError(str(exc)) from None

    def _scales(self, shape_a, shape_b, sidecar_a, sidecar_b) -> tuple[tuple[int, str], tuple[int, str]]:
        """(scale, origin) of each source: stated, else the sidecar's, else from the sizes (or 1)."""
        chosen: list[tuple[int, str] | None] = []
        for side, sidecar in (("a", sidecar_a), ("b", sidecar_b)):
            request = self.requests[side]
            stated = request.stated("scale")
            if stated is not None:
                chosen.append((int(stated), "flag"))
            elif sidecar is not None and request.scale != AUTO:
                chosen.append((sidecar.scale, "sidecar"))
            elif request.assume_clean and request.scale != AUTO:
                chosen.append((1, "default"))
            else:
                chosen.append(None)
        first, second = chosen
        if first is None or second is None:
            inferred = infer_scales(shape_a, shape_b) or (1, 1)
            first = first if first is not None else (inferred[0], "estimated")
            second = second if second is not None else (inferred[1], "estimated")
        return first, second

    def _resolve(
        self, side: str, path: Path, pixels: np.ndarray, file_bits: int, sidecar: Degradation | None, scale
    ) -> ResolvedSource:
        request = self.requests[side]
        bits = request.bits if request.bits is not None else file_bits
        origin = {"scale": scale[1], "bits": "flag" if request.bits is not None else "file"}
        values: dict[str, float] = {"scale": scale[0]}
        spread: dict[str, float] = {}
        notes: list[str] = []
        # a file visibly stored as exact blocks is undegraded on that grid (blur and noise would erase them)
        detected = (
            1
            if request.grid is not None or sidecar is not None or request.assume_clean
            else detect_grid(pixels)
        )
        for name in ("noise", "blur"):  # noise first: the blur estimate needs it
            stated = request.stated(name)
            if stated is not None:
                values[name], origin[name] = float(stated), "flag"
            elif sidecar is not None and getattr(request, name) != AUTO:
                values[name], origin[name] = float(getattr(sidecar, name)), "sidecar"
            elif request.assume_clean and getattr(request, name) != AUTO:
                values[name], origin[name] = 0.0, "default"
                self._warn_clean(side, path)
            else:
                found = estimate_parameter(
                    name, pixels, bits, values.get("noise", 0.0), int(values["scale"]), self.task, detected
                )
                values[name], origin[name] = (found.value or 0.0), "estimated"
                spread[name] = found.spread
                if found.value is None:
                    notes.append(f"{side} {name}: {found.note}; assumed none")
                    if name == "noise":
                        self._warn_once(
                            f"noise-{side}",
                            f"{path}: the noise of source {side} could not be estimated ({found.note}); fused as "
                            f"noise-free: give --{side}-noise if it is noisy",
                        )
        if request.grid is not None:
            grid, origin["grid"] = request.grid, "flag"
        elif sidecar is not None:
            grid, origin["grid"] = sidecar.grid, ("sidecar" if sidecar.grid != 1 else "default")
        else:
            grid, origin["grid"] = detected, ("estimated" if detected > 1 else "default")
        degradation = Degradation(
            blur=values["blur"], scale=int(values["scale"]), noise=values["noise"], grid=grid, bits=bits
        )
        _check_grid_claim(path, pixels, degradation)
        return ResolvedSource(degradation, origin, spread, tuple(notes))

    def _warn_clean(self, side: str, path: Path) -> None:
        self._warn_once(
            side,
            f"no degradation given for source {side} and no {path.parent / SIDECAR_NAME}: assuming clean (--assume-clean)",
        )

    def _warn_once(self, key: str, message: str) -> None:
        """``message`` to the run's warnings, the first time ``key`` comes up."""
        with self._lock:
            if key in self._warned or self._on_assumed_clean is None:
                return
            self._warned.add(key)
        self._on_assumed_clean(message)


def _looks_undegraded(degradation: Degradation) -> bool:
    """Clean, or estimated as good as clean (a trace of noise or blur, no downsampling): blocks would still show."""
    return degradation.scale == 1 and degradation.noise < 0.01 and degradation.blur < 0.5


def _check_grid_claim(path: Path, pixels: np.ndarray, degradation: Degradation) -> None:
    """Refuse a pixel grid that an undegraded file visibly does not have: projecting onto it would blur the file.
    (Degraded files cannot be checked: blur and noise hide the blocks; see :func:`grid_claim_holds`.)"""
    if (
        degradation.grid > 1
        and _looks_undegraded(degradation)
        and not grid_claim_holds(pixels, degradation.grid)
    ):
        g = degradation.grid
        raise ResolveError(
            f"{path}: a {g}x{g} pixel grid was stated, but this undegraded file is not stored as {g}x{g} blocks"
        )


__all__ = [
    "AUTO",
    "DegradationResolver",
    "ResolveError",
    "ResolvedSource",
    "SidecarCache",
    "SourceRequest",
]

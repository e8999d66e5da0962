"""The degradation of one source as plain data: blur std, integer scale, noise std, pixel grid, bit depth.

No torch here: the sidecar reader, the resolve step and the command line use it without importing torch.
:func:`mmfuse_cli.degradation.operators.build_operator` turns a :class:`Degradation` into the torch operator
``A`` with its pseudo-inverse; :mod:`mmfuse_cli.degradation.scaling` holds the numbers the network sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mmfuse_cli.degradation import scaling
from mmfuse_cli.errors import InvalidValueError

MAX_BLUR_STD = 8.0
MAX_SCALE = 8
MAX_NOISE = 0.5
MAX_GRID = 8
MAX_BITS = 16


class DegradationError(InvalidValueError):
    """A degradation parameter is out of range. ``field`` names it (``blur``, ``scale``, ``noise``, ``grid``,
    ``bits``); the message is the problem alone (as before fields were named), without any command-line flag."""

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.args = (problem,)


@dataclass(frozen=True)
class Degradation:
    """The degradation of one source: Gaussian blur std (pixels, 0 = none), integer scale, noise std.

    ``noise`` is in [0, 1] intensity units (0.05 = 5 % of full scale). Validated on construction.

    ``grid`` is not a degradation but a known property of the clean source that comes with it: the source was
    stored enlarged by pixel replication, each value repeated in a ``grid x grid`` block, blocks starting at the
    top-left pixel of the output grid (the Harvard atlas keeps its 128 x 128 PET and SPECT scans this way at
    256 x 256: ``grid=2``). The restored source is then kept on such blocks. 1 = an ordinary image.

    ``bits`` is the sample depth the observation was rounded to (8 for an 8-bit file, 16, ...; 0 = exact values):
    rounding is noise too, and a quantisation-aware model is told it. It belongs to a file, not to a camera, so
    a sidecar never stores it; the resolve step sets it from each file (or ``--input-bits``).
    """

    blur: float = 0.0
    scale: int = 1
    noise: float = 0.0
    grid: int = 1
    bits: int = 8

    def __post_init__(self) -> None:
        for name, value in (("blur", self.blur), ("noise", self.noise)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise DegradationError(name, f"{name} must be a finite number, got {value!r}")
        if not (0.0 <= self.blur <= MAX_BLUR_STD):
            raise DegradationError("blur", f"blur std must be in [0, {MAX_BLUR_STD}] pixels, got {self.blur}")
        if not (0.0 <= self.noise <= MAX_NOISE):
            raise DegradationError(
                "noise", f"noise sigma must be in [0, {MAX_NOISE}] (intensity units), got {self.noise}"
            )
        if not _is_int_in(self.scale, 1, MAX_SCALE):
            raise DegradationError(
                "scale", f"scale must be an integer in [1, {MAX_SCALE}], got {self.scale!r}"
            )
        if not _is_int_in(self.grid, 1, MAX_GRID):
            raise DegradationError(
                "grid", f"pixel grid must be an integer in [1, {MAX_GRID}], got {self.grid!r}"
            )
        if not _is_int_in(self.bits, 0, MAX_BITS):
            raise DegradationError(
                "bits", f"bit depth must be 0 (exact) or 1 to {MAX_BITS}, got {self.bits!r}"
            )

    @property
    def is_clean(self) -> bool:
        """No blur, no downsampling, no noise (whatever the pixel grid and bit depth)."""
        return self.blur == 0 and self.scale == 1 and self.noise == 0

    @property
    def quantisation(self) -> float:
        """``q = 255 / (2^bits - 1)`` (see :func:`mmfuse_cli.degradation.scaling.quantisation_feature`)."""
        return scaling.quantisation_feature(self.bits)

    @property
    def quantisation_std(self) -> float:
        """Std of the rounding noise in [0, 1] units (0 for exact values)."""
        return scaling.quantisation_std(self.bits)

    @property
    def total_noise(self) -> float:
        """Std of sensor noise and rounding noise together, ``sqrt(noise^2 + quantisation_std^2)``."""
        return (self.noise**2 + self.quantisation_std**2) ** 0.5

    def as_dict(self) -> dict[str, Any]:
        """``{"blur", "scale", "noise"}``, plus ``"grid"`` when it is not 1 (never ``bits``: see the class)."""
        out: dict[str, Any] = {"blur": float(self.blur), "scale": int(self.scale), "noise": float(self.noise)}
        if self.grid != 1:
            out["grid"] = int(self.grid)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Degradation:
        """Build from ``{"blur", "scale", "noise", "grid"}`` (all optional); unknown keys raise ``ValueError``."""
        if not isinstance(data, dict):
            raise DegradationError("degradation", f"degradation must be an object, got {type(data).__name__}")
        unknown = set(data) - {"blur", "scale", "noise", "grid"}
        if unknown:
            raise DegradationError(
                "degradation", f"unknown degradation field(s): {', '.join(sorted(unknown))}"
            )
        scale, grid = (_whole(data.get(name, 1)) for name in ("scale", "grid"))
        return cls(blur=data.get("blur", 0.0), scale=scale, noise=data.get("noise", 0.0), grid=grid)

    def conditioning(self) -> list[float]:
        """Three numbers, roughly in [0, 1], that tell the network this degradation: noise, blur, log2 scale
        (:mod:`~mmfuse_cli.degradation.scaling`)."""
        return [
            scaling.noise_feature(self.noise),
            scaling.blur_feature(self.blur),
            scaling.scale_feature(self.scale),
        ]

    def describe(self) -> str:
        parts = []
        if self.blur:
            parts.append(f"blur {self.blur:g}")
        if self.scale > 1:
            parts.append(f"x{self.scale} down")
        if self.noise:
            parts.append(f"noise {self.noise:g}")
        description = ", ".join(parts) or "clean"
        return description + (f" ({self.grid}x{self.grid} pixel grid)" if self.grid > 1 else "")


def _is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _whole(value: Any) -> Any:
    """``2.0`` -> ``2`` (JSON writers may store integers as floats); anything else unchanged for validation."""
    return int(value) if isinstance(value, float) and value.is_integer() else value

"""The degradation of one source as plain data: blur std, integer scale, noise std, pixel grid (no torch needed).

:meth:`Degradation.operator` builds the matching torch operator from :mod:`mmfuse_cli.operators`; everything
else (validation, JSON round trip, the network's conditioning numbers) is pure Python, so the sidecar reader and
the command line can use it without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmfuse_cli.operators import Operator

MAX_BLUR_STD = 8.0
MAX_SCALE = 8
MAX_NOISE = 0.5
MAX_GRID = 8


@dataclass(frozen=True)
class Degradation:
    """The degradation of one source: Gaussian blur std (pixels, 0 = none), integer scale, noise std.

    ``noise`` is in [0, 1] intensity units (0.05 = 5 % of full scale). Validated on construction.

    ``grid`` is not a degradation but a known property of the clean source that comes with it: the source was
    stored enlarged by pixel replication, each value repeated in a ``grid x grid`` block, blocks starting at the
    top-left pixel of the output grid (the Harvard atlas keeps its 128 x 128 PET and SPECT scans this way at
    256 x 256: ``grid=2``). The restored source is then kept on such blocks. 1 = an ordinary image.
    """

    blur: float = 0.0
    scale: int = 1
    noise: float = 0.0
    grid: int = 1

    def __post_init__(self) -> None:
        for name, value in (("blur", self.blur), ("noise", self.noise)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not (0.0 <= self.blur <= MAX_BLUR_STD):
            raise ValueError(f"blur std must be in [0, {MAX_BLUR_STD}] pixels, got {self.blur}")
        if not (0.0 <= self.noise <= MAX_NOISE):
            raise ValueError(f"noise sigma must be in [0, {MAX_NOISE}] (intensity units), got {self.noise}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or not (1 <= self.scale <= MAX_SCALE):
            raise ValueError(f"scale must be an integer in [1, {MAX_SCALE}], got {self.scale!r}")
        if isinstance(self.grid, bool) or not isinstance(self.grid, int) or not (1 <= self.grid <= MAX_GRID):
            raise ValueError(f"pixel grid must be an integer in [1, {MAX_GRID}], got {self.grid!r}")

    @property
    def is_clean(self) -> bool:
        """No blur, no downsampling, no noise (whatever the pixel grid)."""
        return self.blur == 0 and self.scale == 1 and self.noise == 0

    def operator(self) -> Operator:
        """The linear part ``A`` (blur/downsample), with a noise-aware Wiener regulariser (torch operators)."""
        from mmfuse_cli.operators import Composite, Downsample, GaussianBlur, Identity, wiener_eps_for_noise

        blur = GaussianBlur(self.blur, eps=wiener_eps_for_noise(self.noise)) if self.blur > 0 else None
        down = Downsample(self.scale) if self.scale > 1 else None
        if blur and down:
            return Composite(blur, down)
        return blur or down or Identity()

    def as_dict(self) -> dict[str, Any]:
        """``{"blur", "scale", "noise"}``, plus ``"grid"`` when it is not 1."""
        out: dict[str, Any] = {"blur": float(self.blur), "scale": int(self.scale), "noise": float(self.noise)}
        if self.grid != 1:
            out["grid"] = int(self.grid)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Degradation:
        """Build from ``{"blur", "scale", "noise", "grid"}`` (all optional); unknown keys raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"degradation must be an object, got {type(data).__name__}")
        unknown = set(data) - {"blur", "scale", "noise", "grid"}
        if unknown:
            raise ValueError(f"unknown degradation field(s): {', '.join(sorted(unknown))}")
        scale, grid = (_whole(data.get(name, 1)) for name in ("scale", "grid"))
        return cls(blur=data.get("blur", 0.0), scale=scale, noise=data.get("noise", 0.0), grid=grid)

    def conditioning(self) -> list[float]:
        """Three numbers, roughly in [0, 1], that tell the network this degradation: noise, blur, log2 scale."""
        return [self.noise / 0.1, self.blur / 2.5, math.log2(self.scale) / 2.0]

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


def _whole(value: Any) -> Any:
    """``2.0`` -> ``2`` (JSON writers may store integers as floats); anything else unchanged for validation."""
    return int(value) if isinstance(value, float) and value.is_integer() else value

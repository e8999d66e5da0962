"""The degradation of one source as plain data: blur std, integer scale, noise std (no torch needed).

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


@dataclass(frozen=True)
class Degradation:
    """The degradation of one source: Gaussian blur std (pixels, 0 = none), integer scale, noise std.

    ``noise`` is in [0, 1] intensity units (0.05 = 5 % of full scale). Validated on construction.
    """

    blur: float = 0.0
    scale: int = 1
    noise: float = 0.0

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

    @property
    def is_clean(self) -> bool:
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
        return {"blur": float(self.blur), "scale": int(self.scale), "noise": float(self.noise)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Degradation:
        """Build from ``{"blur", "scale", "noise"}``; unknown keys raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"degradation must be an object, got {type(data).__name__}")
        unknown = set(data) - {"blur", "scale", "noise"}
        if unknown:
            raise ValueError(f"unknown degradation field(s): {', '.join(sorted(unknown))}")
        scale = data.get("scale", 1)
        if isinstance(scale, float) and scale.is_integer():
            scale = int(scale)
        return cls(blur=data.get("blur", 0.0), scale=scale, noise=data.get("noise", 0.0))

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
        return ", ".join(parts) or "clean"

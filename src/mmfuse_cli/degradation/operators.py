"""Linear degradation operators ``A`` with pseudo-inverses ``A+`` (torch, batched ``(N, C, H, W)``, any device).

An observation is ``y = A x + n``: ``x`` lives on the high-resolution output grid, ``y`` on the sensor grid,
``n`` is white Gaussian noise with std ``sigma`` in [0, 1] intensity units. Operators:

==================  =======================================  =================================================
operator            ``apply`` (A)                            ``pinv`` (A+)
==================  =======================================  =================================================
Identity            x                                        y
GaussianBlur(s)     depthwise Gaussian convolution,          Wiener filter conj(K) / (abs(K)^2 + eps) in the
                    reflect-padded borders                   Fourier domain, on a reflect-padded copy, scaled
                                                             by (1 + eps) so that the DC gain is exactly 1
Downsample(r)       r x r average pooling                    replicate each pixel r x r (A A+ = I exactly)
Composite           D(B(x)) (blur, then downsample)          B+(D+(y))
==================  =======================================  =================================================

A source stored enlarged by pixel replication (``Degradation.grid``) is a constraint on ``x``, not part of ``A``
(:func:`mmfuse_cli.degradation.grid.project_to_grid`). :func:`build_operator` is the one place a
:class:`~mmfuse_cli.degradation.spec.Degradation` becomes an operator.

Sizes: ``Downsample(r).apply`` needs H and W divisible by r and raises ``ValueError`` otherwise (no silent
cropping). Every operator has a plain-data :meth:`spec` that round-trips through JSON via :func:`from_spec`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from mmfuse_cli.degradation.scaling import wiener_eps_for_noise
from mmfuse_cli.degradation.spec import MAX_BLUR_STD, MAX_SCALE, Degradation

__all__ = [
    "Composite",
    "Downsample",
    "GaussianBlur",
    "Identity",
    "Operator",
    "build_operator",
    "from_spec",
    "gaussian_kernel1d",
]


class Operator(Protocol):
    """A linear degradation with a pseudo-inverse."""

    @property
    def scale(self) -> int:
        """The downsampling factor (1: same grid); read-only, as the operators are frozen."""
        ...

    def apply(self, x: torch.Tensor) -> torch.Tensor: ...

    def pinv(self, y: torch.Tensor) -> torch.Tensor: ...

    def spec(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Identity:
    """No degradation of the signal (noise only)."""

    scale: int = 1

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def spec(self) -> dict[str, Any]:
        return {"type": "identity"}


def gaussian_kernel1d(std: float, radius: int | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, length ``2 * radius + 1`` (default radius ``ceil(3 std)``), float64."""
    if radius is None:
        radius = max(1, math.ceil(3.0 * std))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / std) ** 2)
    return k / k.sum()


@functools.lru_cache(maxsize=64)
def _transfer_function(std: float, radius: int, height: int, width: int) -> torch.Tensor:
    k1 = gaussian_kernel1d(std, radius)

    def axis(n: int) -> torch.Tensor:
        taps = torch.zeros(n, dtype=torch.float64)
        idx = torch.arange(-radius, radius + 1) % n
        taps.index_add_(0, idx, k1)
        return torch.fft.fft(taps).real

    return axis(height)[:, None] * axis(width)[None, :]


@dataclass(frozen=True)
class GaussianBlur:
    """Gaussian blur with standard deviation ``std`` (pixels of the grid it acts on).

    Attributes:
        std: blur std in pixels, > 0.
        eps: Wiener regularisation of :meth:`pinv` (see :func:`wiener_eps_for_noise`).
    """

    std: float
    eps: float = 1e-3
    scale: int = 1

    def __post_init__(self) -> None:
        if not (0.0 < self.std <= MAX_BLUR_STD):
            raise ValueError(f"blur std must be in (0, {MAX_BLUR_STD}], got {self.std}")
        if not (self.eps > 0.0):
            raise ValueError(f"Wiener eps must be > 0, got {self.eps}")

    @property
    def radius(self) -> int:
        return max(1, math.ceil(3.0 * self.std))

    def _pad_mode(self, x: torch.Tensor) -> str:
        return "reflect" if min(x.shape[-2:]) > self.radius else "replicate"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        k1 = gaussian_kernel1d(self.std, self.radius).to(x.dtype).to(x.device)
        c = x.shape[1]
        r = self.radius
        xp = F.pad(x, (r, r, r, r), mode=self._pad_mode(x))
        kh = k1.view(1, 1, 1, -1).expand(c, 1, 1, -1)
        kv = k1.view(1, 1, -1, 1).expand(c, 1, -1, 1)
        return F.conv2d(F.conv2d(xp, kh, groups=c), kv, groups=c)

    def transfer_function(self, height: int, width: int, device=None) -> torch.Tensor:
        """Real, even transfer function K (height x width, float64) of the blur under circular convolution."""
        return _transfer_function(self.std, self.radius, height, width).to(device)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2:]
        p = self.radius * 2
        mode = "reflect" if min(h, w) > p else "replicate"
        yp = F.pad(y, (p, p, p, p), mode=mode)
        hp, wp = yp.shape[-2:]
        kf = self.transfer_function(hp, wp, device=y.device)
        gain = (kf * (1.0 + self.eps) / (kf * kf + self.eps)).to(
            torch.float32 if y.dtype != torch.float64 else torch.float64
        )
        spec = torch.fft.rfft2(yp.to(gain.dtype))
        out = torch.fft.irfft2(spec * gain[:, : wp // 2 + 1], s=(hp, wp))
        return out[..., p : p + h, p : p + w].to(y.dtype)

    def spec(self) -> dict[str, Any]:
        return {"type": "blur", "std": float(self.std), "eps": float(self.eps)}


@dataclass(frozen=True)
class Downsample:
    """``factor x factor`` average pooling; pseudo-inverse replicates each low-res pixel (patch upsample)."""

    factor: int

    def __post_init__(self) -> None:
        if not (isinstance(self.factor, int) and 1 <= self.factor <= MAX_SCALE):
            raise ValueError(f"scale factor must be an integer in [1, {MAX_SCALE}], got {self.factor!r}")

    @property
    def scale(self) -> int:
        return self.factor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        r = self.factor
        if h % r or w % r:
            raise ValueError(f"image size {h}x{w} is not divisible by the scale factor {r}")
        return F.avg_pool2d(x, r) if r > 1 else x

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        r = self.factor
        if r == 1:
            return y
        return y.repeat_interleave(r, dim=-2).repeat_interleave(r, dim=-1)

    def spec(self) -> dict[str, Any]:
        return {"type": "downsample", "factor": int(self.factor)}


@dataclass(frozen=True)
class Composite:
    """Blur on the high-resolution grid, then downsample: ``A = D B``, ``A+ = B+ D+``."""

    blur: GaussianBlur
    down: Downsample

    @property
    def scale(self) -> int:
        return self.down.factor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.down.apply(self.blur.apply(x))

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        return self.blur.pinv(self.down.pinv(y))

    def spec(self) -> dict[str, Any]:
        return {"type": "composite", "blur": self.blur.spec(), "downsample": self.down.spec()}


def from_spec(spec: dict[str, Any]) -> Operator:
    """Rebuild an operator from :meth:`spec` output.

    Raises:
        ValueError: unknown type, missing or out-of-range fields.
    """
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"operator spec must be an object with a 'type', got {spec!r}")
    kind = spec["type"]
    try:
        if kind == "identity":
            return Identity()
        if kind == "blur":
            return GaussianBlur(std=float(spec["std"]), eps=float(spec.get("eps", 1e-3)))
        if kind == "downsample":
            factor = spec["factor"]
            if isinstance(factor, float) and factor.is_integer():
                factor = int(factor)
            return Downsample(factor=factor)
        if kind == "composite":
            blur = from_spec(spec["blur"])
            down = from_spec(spec["downsample"])
            if not isinstance(blur, GaussianBlur) or not isinstance(down, Downsample):
                raise ValueError("composite needs a blur and a downsample")
            return Composite(blur, down)
    except KeyError as exc:
        raise ValueError(f"operator spec {spec!r} lacks field {exc}") from None
    except TypeError as exc:
        raise ValueError(f"operator spec {spec!r} is malformed ({exc})") from None
    raise ValueError(f"unknown operator type {kind!r}")


def build_operator(degradation: Degradation) -> Operator:
    """The linear part ``A`` of a degradation (blur, then downsample), with a noise-aware Wiener regulariser."""
    blur = (
        GaussianBlur(degradation.blur, eps=wiener_eps_for_noise(degradation.noise))
        if degradation.blur > 0
        else None
    )
    down = Downsample(degradation.scale) if degradation.scale > 1 else None
    if blur and down:
        return Composite(blur, down)
    return blur or down or Identity()

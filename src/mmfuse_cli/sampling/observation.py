"""Observations the sampler corrects towards: ``y = A x + n`` per source, with the degradation that made them.

Images are float32 in [0, 1]; noise levels in the same units. Each observation carries its
:class:`~mmfuse_cli.degradation.spec.Degradation` whole (blur, scale, noise, pixel grid, bit depth), which
builds its operator ``A`` and gives the numbers the network and the damping see (via
:mod:`mmfuse_cli.degradation.scaling`); nothing downstream reads them back out of a conditioning vector.

Quantisation: an observation read from an 8-bit file carries rounding noise (std ``1 / (255 sqrt 12)``) that the
declared noise does not include and that a deblurring pseudo-inverse amplifies; ``Degradation.bits`` says so,
and a quantisation-aware model sees it as ``q = 255 / (2^bits - 1)`` (1 for 8-bit, 0.004 for 16-bit, 0 exact).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mmfuse_cli.degradation import scaling
from mmfuse_cli.degradation.grid import project_to_grid
from mmfuse_cli.degradation.operators import build_operator
from mmfuse_cli.degradation.spec import Degradation


@dataclass
class Observation:
    """One degraded source of a batch.

    Attributes:
        y: observation ``(N, 1, h, w)`` in [0, 1] on the sensor grid (``h = H / scale``), or ``(1, 1, h, w)``
            when it belongs to a single sample of a :class:`ObservationBatch` with mixed operators.
        degradation: the known degradation that produced ``y`` (its ``bits``: the samples' bit depth, 0 = exact).
    """

    y: torch.Tensor
    degradation: Degradation

    def __post_init__(self) -> None:
        self.op = build_operator(self.degradation)

    def pinv_on_grid(self) -> torch.Tensor:
        """``A+ y`` on the output grid, put on the source's pixel grid (``Degradation.grid``), for any number of
        channels ``(N, C, h, w)`` (the chroma of a colour source goes to the output grid this way)."""
        return project_to_grid(self.op.pinv(self.y), self.degradation.grid)

    @property
    def bits(self) -> int:
        """Bit depth of the integer samples ``y`` was read from (0 = exact values)."""
        return self.degradation.bits

    @property
    def quantisation(self) -> float:
        """``q = 255 / (2^bits - 1)``: 1 for 8-bit samples, 0.0039 for 16-bit, 0 for exact values."""
        return self.degradation.quantisation

    @property
    def quantisation_std(self) -> float:
        """Std of the rounding noise, ``step / sqrt(12)`` in [0, 1] units (0 for exact values)."""
        return self.degradation.quantisation_std


class ObservationBatch:
    """The observations of one source for a batch: one shared degradation, or one per sample.

    Per-sample degradations may have different scales, so their ``y`` are kept as a list and the operators
    are applied sample by sample (cheap next to the network).
    """

    def __init__(self, observations: Observation | Sequence[Observation]):
        self.items: list[Observation] = (
            [observations] if isinstance(observations, Observation) else list(observations)
        )
        if not self.items:
            raise ValueError("an observation batch needs at least one observation")
        self.shared = isinstance(observations, Observation)

    def _map(self, fn, x: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return fn(self.items[0], x)
        if len(self.items) != x.shape[0]:
            raise ValueError(f"{len(self.items)} observations for a batch of {x.shape[0]}")
        return torch.cat([fn(obs, x[i : i + 1]) for i, obs in enumerate(self.items)], dim=0)

    def _per_sample(self, n: int) -> list[Degradation]:
        return [self.items[0].degradation] * n if self.shared else [o.degradation for o in self.items]

    def pinv_y(self) -> torch.Tensor:
        """``A+ y`` on the output grid, ``(N, 1, H, W)``."""
        if self.shared:
            return self.items[0].op.pinv(self.items[0].y)
        return torch.cat([obs.op.pinv(obs.y) for obs in self.items], dim=0)

    @property
    def has_grid(self) -> bool:
        """Whether any sample's source is stored on a pixel grid (``Degradation.grid > 1``)."""
        return any(obs.degradation.grid > 1 for obs in self.items)

    def project_grid(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, 1, H, W)`` put on each source's pixel grid (``Degradation.grid``; unchanged where it is 1)."""
        return self._map(lambda obs, xi: project_to_grid(xi, obs.degradation.grid), x)

    def pinv_residual(self, x: torch.Tensor) -> torch.Tensor:
        """``A+ (A x - y)`` for the estimate ``x`` ``(N, 1, H, W)``."""
        return self._map(lambda obs, xi: obs.op.pinv(obs.op.apply(xi) - obs.y), x)

    def _column(self, values: list[float], device) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device)

    def sigmas(self, n: int, device) -> torch.Tensor:
        """Noise std per sample, ``(N,)``."""
        return self._column([d.noise for d in self._per_sample(n)], device)

    def quantisation(self, n: int, device) -> torch.Tensor:
        """``q`` per sample (see :attr:`Observation.quantisation`), ``(N,)``."""
        return self._column([d.quantisation for d in self._per_sample(n)], device)

    def total_noise(self, n: int, device) -> torch.Tensor:
        """Std of sensor noise and rounding noise together, ``sqrt(sigma^2 + quantisation_std^2)``, ``(N,)``."""
        return self._column([d.total_noise for d in self._per_sample(n)], device)

    def blur_features(self, n: int, device) -> torch.Tensor:
        """Blur std as the damping sees it (``blur / 2.5``, :mod:`~mmfuse_cli.degradation.scaling`), ``(N,)``."""
        return self._column([scaling.blur_feature(d.blur) for d in self._per_sample(n)], device)

    def conditioning(self, n: int, device) -> torch.Tensor:
        """Degradation descriptors per sample, ``(N, 3)`` (see :meth:`Degradation.conditioning`)."""
        rows = [d.conditioning() for d in self._per_sample(n)]
        return torch.tensor(rows, dtype=torch.float32, device=device)


__all__ = ["Observation", "ObservationBatch"]

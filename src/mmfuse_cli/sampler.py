"""The few-step joint-observation-correction DDIM sampler of DRFusion (see DESIGN.md), independent of any network.

State ``z = [x1, x2, f]`` (3 channels on the H x W output grid): the two restored sources and the fused image.
The sampler only needs a *denoiser*: any callable ``denoiser(z, inputs) -> (e, m)`` that returns the noise
estimate ``e`` ``(N, 3, H, W)`` and the fusion weight map ``m`` ``(N, 1, H, W)`` in [0, 1] (see
:class:`Denoiser`). One step ``k = T .. 1``::

    e, m  = denoiser(z_k, k)
    z0    = (z_k - sqrt(1 - abar_k) e) / sqrt(abar_k)             # implicit denoising
    z0'   = joint observation correction of z0                     # A1 x1 = y1, A2 x2 = y2, m x1 + (1-m) x2 = f
    z_k-1 = sqrt(abar_{k-1}) z0' + sqrt(1 - abar_{k-1}) e          # DDIM step (abar_0 = 1)

Images are float32 in [0, 1]; noise levels ``sigma`` are in the same units.

The fusion row of the correction has no sensor noise; a sampler built with ``exact_final_fusion`` (see
:class:`SamplerParameters`) applies it undamped at the last step, so ``f = m x1 + (1-m) x2`` exactly.

Pixel grid: a source stored enlarged by pixel replication (``Degradation.grid``, e.g. the Harvard atlas's PET)
is projected onto its ``g x g`` blocks in the last step's correction, so the restored source keeps them.

Quantisation: an observation read from an 8-bit file carries rounding noise (std ``1 / (255 sqrt 12)``) that the
declared ``sigma`` does not include and that a deblurring pseudo-inverse amplifies. Each observation therefore
knows the bit depth it came from (:attr:`Observation.bits`); a quantisation-aware model sees it as
``q = 255 / (2^bits - 1)`` (1 for 8-bit, 0.004 for 16-bit, 0 for exact values) in its conditioning and damping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from mmfuse_cli.degradation import Degradation
from mmfuse_cli.operators import project_to_grid

DampingMode = Literal["learned", "ddnm", "none"]


@dataclass
class Observation:
    """One degraded source of a batch.

    Attributes:
        y: observation ``(N, 1, h, w)`` in [0, 1] on the sensor grid (``h = H / scale``), or ``(1, 1, h, w)``
            when it belongs to a single sample of a :class:`ObservationBatch` with mixed operators.
        degradation: the known degradation (blur, scale, noise sigma) that produced ``y``.
        bits: bit depth of the integer samples ``y`` was read from (8, 16, ...); 0 = exact values (no rounding).
    """

    y: torch.Tensor
    degradation: Degradation
    bits: int = 0

    @property
    def quantisation(self) -> float:
        """``q = 255 / (2^bits - 1)``: 1 for 8-bit samples, 0.0039 for 16-bit, 0 for exact values."""
        return 255.0 / (2**self.bits - 1) if self.bits else 0.0

    @property
    def quantisation_std(self) -> float:
        """Std of the rounding noise, ``step / sqrt(12)`` in [0, 1] units (0 for exact values)."""
        return self.quantisation / (255.0 * 12**0.5)

    def __post_init__(self) -> None:
        self.op = self.degradation.operator()


class ObservationBatch:
    """The observations of one source for a batch: one shared degradation, or one per sample.

    Per-sample degradations may have different scales, so their ``y`` are kept as a list and the operators
    are applied sample by sample (cheap next to the network).
    """

    def __init__(self, observations: Observation | Sequence[Observation]):
        self.items: list[Observation] = [observations] if isinstance(observations, Observation) else list(observations)
        if not self.items:
            raise ValueError("an observation batch needs at least one observation")
        self.shared = isinstance(observations, Observation)

    def _map(self, fn, x: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return fn(self.items[0], x)
        if len(self.items) != x.shape[0]:
            raise ValueError(f"{len(self.items)} observations for a batch of {x.shape[0]}")
        return torch.cat([fn(obs, x[i : i + 1]) for i, obs in enumerate(self.items)], dim=0)

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

    def sigmas(self, n: int, device) -> torch.Tensor:
        """Noise std per sample, ``(N,)``."""
        values = [self.items[0].degradation.noise] * n if self.shared else [o.degradation.noise for o in self.items]
        return torch.tensor(values, dtype=torch.float32, device=device)

    def quantisation(self, n: int, device) -> torch.Tensor:
        """``q`` per sample (see :attr:`Observation.quantisation`), ``(N,)``."""
        values = [self.items[0].quantisation] * n if self.shared else [o.quantisation for o in self.items]
        return torch.tensor(values, dtype=torch.float32, device=device)

    def total_noise(self, n: int, device) -> torch.Tensor:
        """Std of sensor noise and rounding noise together, ``sqrt(sigma^2 + quantisation_std^2)``, ``(N,)``."""
        items = [self.items[0]] * n if self.shared else self.items
        values = [(o.degradation.noise**2 + o.quantisation_std**2) ** 0.5 for o in items]
        return torch.tensor(values, dtype=torch.float32, device=device)

    def conditioning(self, n: int, device) -> torch.Tensor:
        """Degradation descriptors per sample, ``(N, 3)`` (see :meth:`Degradation.conditioning`)."""
        rows = [self.items[0].degradation.conditioning()] * n if self.shared else [
            o.degradation.conditioning() for o in self.items
        ]
        return torch.tensor(rows, dtype=torch.float32, device=device)


@dataclass
class DenoiserInputs:
    """What the denoiser may look at besides ``z``.

    Attributes:
        step: current step k (1-based, counts down from ``steps``).
        steps: total number of steps T.
        noise_level: ``sqrt(1 - abar_k)``, a scalar tensor.
        pinv1, pinv2: ``A1+ y1``, ``A2+ y2`` ``(N, 1, H, W)``.
        degradation: per-sample descriptors of both sources ``(N, 6)``.
        quantisation: per-sample ``q`` of both sources ``(N, 2)`` (see :attr:`Observation.quantisation`).
    """

    step: int
    steps: int
    noise_level: torch.Tensor
    pinv1: torch.Tensor
    pinv2: torch.Tensor
    degradation: torch.Tensor
    quantisation: torch.Tensor | None = None


class Denoiser(Protocol):
    """What the sampler drives. ``size_multiple``: H and W must be multiples of it (the sampler pads)."""

    size_multiple: int

    def __call__(self, z: torch.Tensor, inputs: DenoiserInputs) -> tuple[torch.Tensor, torch.Tensor]: ...


class SamplerParameters(nn.Module):
    """The learned parts of the sampler: per-step schedule and noise-aware damping.

    * schedule: ``alpha_k = sigmoid(alpha_logit_k)`` in (0, 1), ``abar_k = prod_{j<=k} alpha_j``, ``abar_0 = 1``;
    * damping: ``lam_k,i = sigmoid(u_k,i - v_k,i * sigma_i / 0.05)`` per step k and source i (DESIGN.md run B;
      initialised at u = 1, v = 3: lam = 0.73 for clean, 0.12 at sigma = 0.05). A quantisation-aware sampler
      subtracts ``w_k,i,0 q_i + w_k,i,1 q_i b_i`` too (``q``: quantisation, ``b = blur / 2.5``), so that it can
      trust rounded, deblurred data less than exact data; ``w`` starts at 0 (no change).

    For a step count other than the trained one, the schedule (log abar) and damping are interpolated over
    normalised time, so ``--steps`` can trade speed for quality without retraining.

    ``exact_final_fusion``: the damping exists because the observations are noisy, but the fusion row
    ``m x1 + (1-m) x2 - f = 0`` carries no noise. With this flag the last step applies that row undamped
    (``lam = 1``), so the fused output is exactly ``m x1' + (1-m) x2'`` of the restored sources returned with it;
    without it the fusion row uses the sources' mean damping at every step (DESIGN.md as written).
    """

    def __init__(self, steps: int = 3, quantisation_aware: bool = False, exact_final_fusion: bool = False):
        super().__init__()
        if steps < 1:
            raise ValueError("steps must be >= 1")
        self.steps = steps
        self.quantisation_aware = quantisation_aware
        self.exact_final_fusion = exact_final_fusion
        target = torch.linspace(0.9, 0.5, steps) if steps > 1 else torch.tensor([0.7])
        alphas = torch.cat([target[:1], target[1:] / target[:-1]])
        self.alpha_logit = nn.Parameter(torch.logit(alphas.clamp(1e-4, 1 - 1e-4)))
        self.damp_u = nn.Parameter(torch.full((steps, 2), 1.0))
        self.damp_v = nn.Parameter(torch.full((steps, 2), 3.0))
        if quantisation_aware:
            self.damp_w = nn.Parameter(torch.zeros(steps, 2, 2))

    def abar(self, steps: int | None = None) -> torch.Tensor:
        """Cumulative schedule ``[abar_0 = 1, abar_1, .., abar_T]``, shape ``(T + 1,)``."""
        log_abar = torch.cumsum(F.logsigmoid(self.alpha_logit), 0)
        log_abar = torch.cat([log_abar.new_zeros(1), log_abar])
        if steps is None or steps == self.steps:
            return log_abar.exp()
        return _interp(log_abar, steps + 1).exp()

    def damping_params(self, steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(u, v, w)`` of shapes ``(T, 2)``, ``(T, 2)``, ``(T, 2, 2)`` for ``steps`` steps (row k-1 is step k);
        ``w`` is ``None`` for a sampler that is not quantisation-aware."""
        w = getattr(self, "damp_w", None)
        if steps is None or steps == self.steps:
            return self.damp_u, self.damp_v, w
        return _interp(self.damp_u, steps), _interp(self.damp_v, steps), None if w is None else _interp(w, steps)

    def damping(
        self,
        k: int,
        u: torch.Tensor,
        v: torch.Tensor,
        w: torch.Tensor | None,
        sigma: torch.Tensor,
        q: torch.Tensor,
        blur: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Learned ``(lam1, lam2)``, each ``(N,)`` in (0, 1), of step ``k`` from :meth:`damping_params` and the
        per-source ``(N, 2)`` noise sigma, quantisation ``q`` and ``blur / 2.5``."""
        logits = u[k - 1] - v[k - 1] * sigma / 0.05
        if w is not None:
            logits = logits - w[k - 1, :, 0] * q - w[k - 1, :, 1] * q * blur
        lam = torch.sigmoid(logits)
        return lam[:, 0], lam[:, 1]


def _interp(values: torch.Tensor, n: int) -> torch.Tensor:
    """Resample ``values`` (L, ...) to ``n`` points along dim 0 by linear interpolation over [0, 1]."""
    length = values.shape[0]
    if length == 1:
        return values.expand(n, *values.shape[1:]).clone()
    pos = torch.linspace(0, length - 1, n, device=values.device)
    lo = pos.floor().long().clamp(max=length - 2)
    w = (pos - lo).view(-1, *([1] * (values.dim() - 1)))
    return values[lo] * (1 - w) + values[lo + 1] * w


def ddnm_lambda(abar_t: torch.Tensor, abar_prev: torch.Tensor, sigma_y: torch.Tensor) -> torch.Tensor:
    """DDNM+ damping: 1 if sigma_t >= a_t sigma_y else sigma_t / (a_t sigma_y). Shapes broadcast; values in (0, 1]."""
    alpha_t = abar_t / abar_prev
    beta_t = 1 - alpha_t
    sigma_t = torch.sqrt((beta_t * (1 - abar_prev) / (1 - abar_t)).clamp(min=0))
    a_t = torch.sqrt(abar_prev) * beta_t / (1 - abar_t)
    denom = a_t * sigma_y
    return torch.where(sigma_t >= denom, torch.ones_like(denom), sigma_t / denom.clamp(min=1e-12))


def joint_correction(
    z0: torch.Tensor,
    m: torch.Tensor,
    obs1: ObservationBatch,
    obs2: ObservationBatch,
    lam1: torch.Tensor,
    lam2: torch.Tensor,
    lam_fusion: torch.Tensor | None = None,
    on_grid: bool = False,
) -> torch.Tensor:
    """Project ``z0 = [x1, x2, f]`` towards the joint constraint set (DESIGN.md).

    ``x_i' = x_i - lam_i A_i+ r_i``; ``f' = f - (m lam1 A1+ r1 + (1-m) lam2 A2+ r2 - lam_f r3)`` with
    ``r3 = m x1 + (1-m) x2 - f``. The fusion row's ``lam_f`` defaults to the mean of the two damping factors per
    sample (exactly ``lam`` when both are equal); with ``lam_f = 1``: ``f' = m x1' + (1-m) x2'`` whatever
    ``lam1``, ``lam2``.

    With ``on_grid``, a source with a pixel grid (``Degradation.grid > 1``) is then projected onto it,
    ``x_i' <- P x_i'``, and the fusion row moves by that source's whole change ``x_i - x_i'``, so ``lam_f = 1``
    still gives ``f' = m x1' + (1-m) x2'``.

    Args:
        z0: ``(N, 3, H, W)``; m: ``(N, 1, H, W)`` in [0, 1]; lam1, lam2, lam_fusion: ``(N,)`` damping per sample.
    """
    x1, x2, f = z0[:, 0:1], z0[:, 1:2], z0[:, 2:3]
    p1 = obs1.pinv_residual(x1)
    p2 = obs2.pinv_residual(x2)
    r3 = m * x1 + (1 - m) * x2 - f
    l1 = lam1.view(-1, 1, 1, 1)
    l2 = lam2.view(-1, 1, 1, 1)
    lf = 0.5 * (l1 + l2) if lam_fusion is None else lam_fusion.view(-1, 1, 1, 1)
    x1n = x1 - l1 * p1
    x2n = x2 - l2 * p2
    moved1, moved2 = m * l1 * p1, (1 - m) * l2 * p2  # the fusion row's share of each source's change
    if on_grid and obs1.has_grid:
        x1n = obs1.project_grid(x1n)
        moved1 = m * (x1 - x1n)
    if on_grid and obs2.has_grid:
        x2n = obs2.project_grid(x2n)
        moved2 = (1 - m) * (x2 - x2n)
    fn = f - (moved1 + moved2 - lf * r3)
    return torch.cat([x1n, x2n, fn], dim=1)


@dataclass
class SampleOutput:
    """Result of :func:`sample`: restored sources ``x1``, ``x2``, fused ``f`` (each ``(N, 1, H, W)``, not
    clipped) and the last fusion weight map ``m`` in [0, 1]."""

    x1: torch.Tensor
    x2: torch.Tensor
    f: torch.Tensor
    m: torch.Tensor


def _pad_to_multiple(t: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = t.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        t = F.pad(t, (0, pw, 0, ph), mode=mode)
    return t, ph, pw


def sample(
    denoiser: Denoiser,
    obs1: ObservationBatch,
    obs2: ObservationBatch,
    params: SamplerParameters,
    steps: int | None = None,
    damping: DampingMode = "learned",
) -> SampleOutput:
    """Run the T-step sampler from the pseudo-inverse start (no random noise).

    ``z_T = sqrt(abar_T) [A1+ y1, A2+ y2, (A1+ y1 + A2+ y2) / 2]``. H x W is the output grid (sensor size times
    scale); sizes the denoiser cannot take are reflect-padded for the network and cropped back.

    Args:
        steps: T (default: the trained number of steps).
        damping: ``learned`` (noise-aware, trained), ``ddnm`` (DDNM+ rule) or ``none`` (lam = 1).
    """
    steps = steps or params.steps
    c1, c2 = obs1.pinv_y(), obs2.pinv_y()
    if c1.shape != c2.shape:
        raise ValueError(
            f"the two sources do not map to the same output grid: {tuple(c1.shape[-2:])} vs {tuple(c2.shape[-2:])}"
        )
    n, device = c1.shape[0], c1.device
    abar = params.abar(steps).to(device)
    damp_u, damp_v, damp_w = (None if t is None else t.to(device) for t in params.damping_params(steps))
    sig = torch.stack([obs1.sigmas(n, device), obs2.sigmas(n, device)], dim=1)
    quant = torch.stack([obs1.quantisation(n, device), obs2.quantisation(n, device)], dim=1)
    cond1, cond2 = obs1.conditioning(n, device), obs2.conditioning(n, device)
    blur = torch.stack([cond1[:, 1], cond2[:, 1]], dim=1)
    cond = torch.cat([cond1, cond2], dim=1)
    total_noise1, total_noise2 = obs1.total_noise(n, device), obs2.total_noise(n, device)  # for damping="ddnm"
    multiple = getattr(denoiser, "size_multiple", 1)
    c1p, ph, pw = _pad_to_multiple(c1, multiple)
    c2p, _, _ = _pad_to_multiple(c2, multiple)
    h, w = c1.shape[-2:]

    z = torch.sqrt(abar[steps]) * torch.cat([c1, c2, 0.5 * (c1 + c2)], dim=1)
    m = torch.full_like(c1, 0.5)
    for k in range(steps, 0, -1):
        noise_level = torch.sqrt(1 - abar[k])
        inputs = DenoiserInputs(k, steps, noise_level, c1p, c2p, cond, quant)
        zp, _, _ = _pad_to_multiple(z, multiple)
        e, m = denoiser(zp, inputs)
        e, m = e[..., :h, :w], m[..., :h, :w]
        z0 = (z - noise_level * e) / torch.sqrt(abar[k])
        if damping == "none":
            lam1 = lam2 = torch.ones(n, device=device)
        elif damping == "ddnm":
            lam1 = ddnm_lambda(abar[k], abar[k - 1], total_noise1)
            lam2 = ddnm_lambda(abar[k], abar[k - 1], total_noise2)
        else:
            lam1, lam2 = params.damping(k, damp_u, damp_v, damp_w, sig, quant, blur)
        exact_fusion = k == 1 and params.exact_final_fusion  # the noise-free fusion row, undamped
        lam_fusion = torch.ones(n, device=device) if exact_fusion else None
        # a known pixel grid is imposed on the result only: the network was trained on states off any grid
        z0 = joint_correction(z0, m, obs1, obs2, lam1, lam2, lam_fusion, on_grid=k == 1)
        z = torch.sqrt(abar[k - 1]) * z0 + torch.sqrt(1 - abar[k - 1]) * e
    return SampleOutput(z[:, 0:1], z[:, 1:2], z[:, 2:3], m)


def is_finite(out: SampleOutput) -> bool:
    """False when the sampler produced NaN or inf anywhere (the caller must not write such an output)."""
    return all(bool(torch.isfinite(t).all()) for t in (out.x1, out.x2, out.f))


__all__ = [
    "DampingMode",
    "Denoiser",
    "DenoiserInputs",
    "Observation",
    "ObservationBatch",
    "SampleOutput",
    "SamplerParameters",
    "ddnm_lambda",
    "is_finite",
    "joint_correction",
    "sample",
]

"""The learned schedule and damping of the few-step sampler (an ``nn.Module`` stored in every checkpoint).

``abar_k`` is the cumulative schedule (``abar_0 = 1``); ``lam_k,i`` the damping of step k's observation correction
for source i. :func:`ddnm_lambda` is the DDNM+ rule, kept for comparison (``--damping ddnm``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmfuse_cli.degradation.scaling import DAMPING_NOISE_UNIT


class SamplerParameters(nn.Module):
    """The learned parts of the sampler: per-step schedule and noise-aware damping.

    * schedule: ``alpha_k = sigmoid(alpha_logit_k)`` in (0, 1), ``abar_k = prod_{j<=k} alpha_j``, ``abar_0 = 1``;
    * damping: ``lam_k,i = sigmoid(u_k,i - v_k,i * sigma_i / 0.05)`` per step k and source i (the learned damping, docs/TRAINING.md "Setup";
      initialised at u = 1, v = 3: lam = 0.73 for clean, 0.12 at sigma = 0.05). A quantisation-aware sampler
      subtracts ``w_k,i,0 q_i + w_k,i,1 q_i b_i`` too (``q``: quantisation, ``b = blur / 2.5``), so that it can
      trust rounded, deblurred data less than exact data; ``w`` starts at 0 (no change).

    For a step count other than the trained one, the schedule (log abar) and damping are interpolated over
    normalised time, so ``--steps`` can trade speed for quality without retraining.

    ``exact_final_fusion``: the damping exists because the observations are noisy, but the fusion row
    ``m x1 + (1-m) x2 - f = 0`` carries no noise. With this flag the last step applies that row undamped
    (``lam = 1``), so the fused output is exactly ``m x1' + (1-m) x2'`` of the restored sources returned with it;
    without it the fusion row uses the sources' mean damping at every step (the original DRFusion sampler).
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

    def damping_params(
        self, steps: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(u, v, w)`` of shapes ``(T, 2)``, ``(T, 2)``, ``(T, 2, 2)`` for ``steps`` steps (row k-1 is step k);
        ``w`` is ``None`` for a sampler that is not quantisation-aware."""
        w = getattr(self, "damp_w", None)
        if steps is None or steps == self.steps:
            return self.damp_u, self.damp_v, w
        return (
            _interp(self.damp_u, steps),
            _interp(self.damp_v, steps),
            None if w is None else _interp(w, steps),
        )

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
        logits = u[k - 1] - v[k - 1] * sigma / DAMPING_NOISE_UNIT
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


__all__ = ["SamplerParameters", "ddnm_lambda"]

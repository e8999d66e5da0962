"""The training losses of the DRFusion paper (docs/TRAINING.md, "Setup") on the sampler's output, and the PSNR that validation reports.

* IVIF: ``S + 5 |f - max(x1c, x2c)| + 1 | |grad f| - max(|grad x1c|, |grad x2c|) |``
* MIF:  ``S + w_ssim [(1 - SSIM(f, x1c)) + (1 - SSIM(f, x2c))] + 5 |f - max(x1c, x2c)|``

with the source term ``S`` chosen by ``TrainConfig.src_loss`` (one of :data:`SOURCE_LOSSES`, see
:func:`fusion_loss`). ``c`` = clean; Sobel gradients; L1 means.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmfuse_cli.training.config import TrainConfig

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|grad x| with Sobel filters (replicate borders), ``(N, 1, H, W)`` -> same shape."""
    kx = _SOBEL_X.to(x)[None, None]
    ky = kx.transpose(-1, -2)
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return torch.sqrt(F.conv2d(xp, kx) ** 2 + F.conv2d(xp, ky) ** 2 + 1e-8)


def ssim_torch(
    x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, per_sample: bool = False
) -> torch.Tensor:
    """Mean SSIM (Gaussian window, data range 1) of two ``(N, 1, H, W)`` batches, or ``(N,)`` one per sample with
    ``per_sample``; differentiable."""
    t = torch.arange(window, dtype=x.dtype, device=x.device) - window // 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum())[:, None] * (g / g.sum())[None, :]
    k = g[None, None]
    mu_x, mu_y = F.conv2d(x, k), F.conv2d(y, k)
    sxx = F.conv2d(x * x, k) - mu_x**2
    syy = F.conv2d(y * y, k) - mu_y**2
    sxy = F.conv2d(x * y, k) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3)) if per_sample else s.mean()


def fusion_loss(
    out,
    a_clean: torch.Tensor,
    b_clean: torch.Tensor,
    task: str,
    cfg: TrainConfig,
    fusion_weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The paper's losses on the sampler output against the clean sources; returns components and ``total``.

    ``fusion_weight``: ``(N,)`` weights of each sample in the fused-image terms (intensity, gradient / SSIM), which
    are then weighted means over the batch; None = all 1 (a plain mean). The source term always counts every
    sample: a crop pair made from single photographs (weight ``cfg.single_fusion_weight``) can teach restoration
    without teaching a fusion rule for images no sensor pair produced.
    """
    l1_a = (out.x1 - a_clean).abs().mean(dim=(1, 2, 3))  # per sample
    l1_b = (out.x2 - b_clean).abs().mean(dim=(1, 2, 3))
    src = l1_a.mean() + l1_b.mean()  # reported as loss_src whatever the source term
    intensity = _weighted_mean((out.f - torch.maximum(a_clean, b_clean)).abs(), fusion_weight)
    terms = {"src": src, "int": intensity}
    if cfg.src_loss in ("log", "logrmse"):
        # Per-sample log error: every sample's restoration counts by its relative (dB-like) error, so the easy
        # draws (clean, mild blur) are not drowned by the hard ones (x4 + noise 0.1) and must not get worse.
        err_a, err_b = l1_a, l1_b
        if cfg.src_loss == "logrmse":  # RMSE, what PSNR measures (+1e-12: a finite gradient at zero error)
            err_a = ((out.x1 - a_clean) ** 2).mean(dim=(1, 2, 3)).add(1e-12).sqrt()
            err_b = ((out.x2 - b_clean) ** 2).mean(dim=(1, 2, 3)).add(1e-12).sqrt()
        src_term = cfg.w_log * (torch.log(err_a + 1e-3) + torch.log(err_b + 1e-3)).mean()
    else:
        src_term = cfg.w_src * src
    total = src_term + cfg.w_int * intensity
    if task == "ivif":
        grad_target = torch.maximum(sobel_magnitude(a_clean), sobel_magnitude(b_clean))
        grad = _weighted_mean((sobel_magnitude(out.f) - grad_target).abs(), fusion_weight)
        terms["grad"] = grad
        total = total + cfg.w_grad * grad
    else:
        per_sample = (1 - ssim_torch(out.f, a_clean, per_sample=True)) + (
            1 - ssim_torch(out.f, b_clean, per_sample=True)
        )
        structure = _weighted_mean(per_sample, fusion_weight)
        terms["ssim"] = structure
        total = total + cfg.w_ssim * structure
    terms["total"] = total
    return terms


def _weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (``(N, ...)``) with each sample weighted by ``weight`` (``(N,)``); None = plain mean.

    All-zero weights give 0 (no sample counts), not a division by zero."""
    if weight is None:
        return values.mean()
    per_sample = values.reshape(values.shape[0], -1).mean(dim=1)
    return (per_sample * weight).sum() / weight.sum().clamp_min(1e-8)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of ``x`` against ``ref`` (both [0, 1]; ``x`` clipped first)."""
    mse = float(((x.clamp(0, 1) - ref) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))

"""The few-step joint-observation-correction DDIM sampler of DRFusion (docs/ARCHITECTURE.md, "The method in short"), independent of any network.

State ``z = [x1, x2, f]`` (3 channels on the H x W output grid): the two restored sources and the fused image.
The sampler only needs a *denoiser*: any callable ``denoiser(z, inputs) -> (e, m)`` that returns the noise
estimate ``e`` ``(N, 3, H, W)`` and the fusion weight map ``m`` ``(N, 1, H, W)`` in [0, 1] (see
:class:`Denoiser`). One step ``k = T .. 1`` (:meth:`DDIMSampler.step`)::

    e, m  = denoiser(z_k, k)
    z0    = (z_k - sqrt(1 - abar_k) e) / sqrt(abar_k)             # implicit denoising
    z0'   = joint observation correction of z0                     # A1 x1 = y1, A2 x2 = y2, m x1 + (1-m) x2 = f
    z_k-1 = sqrt(abar_{k-1}) z0' + sqrt(1 - abar_{k-1}) e          # DDIM step (abar_0 = 1)

The split follows diffusers' schedulers: :meth:`DDIMSampler.start` (their ``set_timesteps`` and first sample)
fixes the schedule, the damping inputs and ``z_T`` for a batch of observations, :meth:`DDIMSampler.step` turns
one network answer into the next state, and the loop in :func:`sample` owns the network call, so another
backend (ONNX Runtime, OpenVINO) or a tiled runner can drive the same steps. The network knows nothing of the
schedule beyond what :class:`DenoiserInputs` tells it.

Images are float32 in [0, 1]; noise levels ``sigma`` are in the same units.

The fusion row of the correction has no sensor noise; a sampler built with ``exact_final_fusion`` (see
:class:`~mmfuse_cli.sampling.schedule.SamplerParameters`) applies it undamped at the last step, so
``f = m x1 + (1-m) x2`` exactly. Pixel grid: a source stored enlarged by pixel replication (``Degradation.grid``)
is projected onto its ``g x g`` blocks in the last step's correction, so the restored source keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from mmfuse_cli.sampling.correction import joint_correction
from mmfuse_cli.sampling.observation import ObservationBatch
from mmfuse_cli.sampling.schedule import SamplerParameters, ddnm_lambda

DampingMode = Literal["learned", "ddnm", "none"]
DAMPING_MODES: tuple[str, ...] = ("learned", "ddnm", "none")


@dataclass
class DenoiserInputs:
    """What the denoiser may look at besides ``z``.

    Attributes:
        step: current step k (1-based, counts down from ``steps``).
        steps: total number of steps T.
        noise_level: ``sqrt(1 - abar_k)``, a scalar tensor.
        pinv1, pinv2: ``A1+ y1``, ``A2+ y2`` ``(N, 1, H, W)`` (padded to the denoiser's size multiple).
        degradation: per-sample descriptors of both sources ``(N, 6)``.
        quantisation: per-sample ``q`` of both sources ``(N, 2)`` (see ``Degradation.quantisation``).
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


@dataclass
class SampleOutput:
    """Result of :func:`sample`: restored sources ``x1``, ``x2``, fused ``f`` (each ``(N, 1, H, W)``, not
    clipped) and the last fusion weight map ``m`` in [0, 1]."""

    x1: torch.Tensor
    x2: torch.Tensor
    f: torch.Tensor
    m: torch.Tensor


@dataclass
class SamplerRun:
    """Everything :meth:`DDIMSampler.step` needs about one batch, fixed by :meth:`DDIMSampler.start`.

    ``pinv1``/``pinv2`` are padded to the denoiser's ``size_multiple``; ``height``/``width`` is the output grid.
    """

    obs1: ObservationBatch
    obs2: ObservationBatch
    abar: torch.Tensor
    damping_params: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
    sigma: torch.Tensor
    quantisation: torch.Tensor
    blur: torch.Tensor
    conditioning: torch.Tensor
    total_noise: tuple[torch.Tensor, torch.Tensor]
    pinv1: torch.Tensor
    pinv2: torch.Tensor
    height: int
    width: int


class DDIMSampler:
    """The T-step sampler for one model's learned :class:`SamplerParameters`.

    Args:
        params: the learned schedule and damping.
        steps: T (default: the trained number of steps; others interpolate the schedule).
        damping: ``learned`` (noise-aware, trained), ``ddnm`` (DDNM+ rule) or ``none`` (lam = 1).
    """

    def __init__(self, params: SamplerParameters, steps: int | None = None, damping: DampingMode = "learned"):
        if damping not in DAMPING_MODES:
            raise ValueError(f"damping must be one of {', '.join(DAMPING_MODES)}, got {damping!r}")
        self.params = params
        self.steps = steps or params.steps
        self.damping = damping

    @property
    def timesteps(self) -> list[int]:
        """``[T, T-1, .., 1]``: the order :meth:`step` is called in."""
        return list(range(self.steps, 0, -1))

    def start(
        self, obs1: ObservationBatch, obs2: ObservationBatch, size_multiple: int = 1
    ) -> tuple[torch.Tensor, SamplerRun]:
        """``z_T = sqrt(abar_T) [A1+ y1, A2+ y2, (A1+ y1 + A2+ y2) / 2]`` and the batch's fixed inputs.

        Raises:
            ValueError: the two sources do not map to the same output grid.
        """
        c1, c2 = obs1.pinv_y(), obs2.pinv_y()
        if c1.shape != c2.shape:
            raise ValueError(
                f"the two sources do not map to the same output grid: {tuple(c1.shape[-2:])} vs {tuple(c2.shape[-2:])}"
            )
        n, device = c1.shape[0], c1.device
        abar = self.params.abar(self.steps).to(device)
        u, v, w = self.params.damping_params(self.steps)
        damping_params = (u.to(device), v.to(device), None if w is None else w.to(device))
        run = SamplerRun(
            obs1=obs1,
            obs2=obs2,
            abar=abar,
            damping_params=damping_params,
            sigma=torch.stack([obs1.sigmas(n, device), obs2.sigmas(n, device)], dim=1),
            quantisation=torch.stack([obs1.quantisation(n, device), obs2.quantisation(n, device)], dim=1),
            blur=torch.stack([obs1.blur_features(n, device), obs2.blur_features(n, device)], dim=1),
            conditioning=torch.cat([obs1.conditioning(n, device), obs2.conditioning(n, device)], dim=1),
            total_noise=(obs1.total_noise(n, device), obs2.total_noise(n, device)),  # for damping="ddnm"
            pinv1=pad_to_multiple(c1, size_multiple),
            pinv2=pad_to_multiple(c2, size_multiple),
            height=c1.shape[-2],
            width=c1.shape[-1],
        )
        z = torch.sqrt(abar[self.steps]) * torch.cat([c1, c2, 0.5 * (c1 + c2)], dim=1)
        return z, run

    def denoiser_inputs(self, run: SamplerRun, k: int) -> DenoiserInputs:
        """What the network is told at step ``k``."""
        noise_level = torch.sqrt(1 - run.abar[k])
        return DenoiserInputs(
            k, self.steps, noise_level, run.pinv1, run.pinv2, run.conditioning, run.quantisation
        )

    def _damping(self, run: SamplerRun, k: int, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.damping == "none":
            ones = torch.ones(n, device=device)
            return ones, ones
        if self.damping == "ddnm":
            return (
                ddnm_lambda(run.abar[k], run.abar[k - 1], run.total_noise[0]),
                ddnm_lambda(run.abar[k], run.abar[k - 1], run.total_noise[1]),
            )
        u, v, w = run.damping_params
        return self.params.damping(k, u, v, w, run.sigma, run.quantisation, run.blur)

    def step(
        self, e: torch.Tensor, m: torch.Tensor, k: int, z: torch.Tensor, run: SamplerRun
    ) -> torch.Tensor:
        """``z_{k-1}`` from ``z_k`` and the network's ``e`` ``(N, 3, H, W)`` and ``m`` ``(N, 1, H, W)`` (cropped to
        the output grid)."""
        n, device = z.shape[0], z.device
        noise_level = torch.sqrt(1 - run.abar[k])
        z0 = (z - noise_level * e) / torch.sqrt(run.abar[k])
        lam1, lam2 = self._damping(run, k, n, device)
        exact_fusion = k == 1 and self.params.exact_final_fusion  # the noise-free fusion row, undamped
        lam_fusion = torch.ones(n, device=device) if exact_fusion else None
        # a known pixel grid is imposed on the result only: the network was trained on states off any grid
        z0 = joint_correction(z0, m, run.obs1, run.obs2, lam1, lam2, lam_fusion, on_grid=k == 1)
        return torch.sqrt(run.abar[k - 1]) * z0 + torch.sqrt(1 - run.abar[k - 1]) * e


def pad_to_multiple(t: torch.Tensor, multiple: int) -> torch.Tensor:
    """``t`` ``(N, C, H, W)`` padded at the bottom and right (reflect, or replicate where too small) to multiples
    of ``multiple``; unchanged when it already is."""
    h, w = t.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "replicate"
        t = F.pad(t, (0, pw, 0, ph), mode=mode)
    return t


def sample(
    denoiser: Denoiser,
    obs1: ObservationBatch,
    obs2: ObservationBatch,
    params: SamplerParameters,
    steps: int | None = None,
    damping: DampingMode = "learned",
) -> SampleOutput:
    """Run the T-step sampler from the pseudo-inverse start (no random noise).

    H x W is the output grid (sensor size times scale); sizes the denoiser cannot take are reflect-padded for the
    network and cropped back.

    Args:
        steps: T (default: the trained number of steps).
        damping: ``learned`` (noise-aware, trained), ``ddnm`` (DDNM+ rule) or ``none`` (lam = 1).
    """
    sampler = DDIMSampler(params, steps, damping)
    multiple = getattr(denoiser, "size_multiple", 1)
    z, run = sampler.start(obs1, obs2, multiple)
    h, w = run.height, run.width
    m = torch.full_like(z[:, :1], 0.5)
    for k in sampler.timesteps:
        e, m = denoiser(pad_to_multiple(z, multiple), sampler.denoiser_inputs(run, k))
        e, m = e[..., :h, :w], m[..., :h, :w]
        z = sampler.step(e, m, k, z, run)
    return SampleOutput(z[:, 0:1], z[:, 1:2], z[:, 2:3], m)


def is_finite(out: SampleOutput) -> bool:
    """False when the sampler produced NaN or inf anywhere (the caller must not write such an output)."""
    return all(bool(torch.isfinite(t).all()) for t in (out.x1, out.x2, out.f))


__all__ = [
    "DAMPING_MODES",
    "DDIMSampler",
    "DampingMode",
    "Denoiser",
    "DenoiserInputs",
    "SampleOutput",
    "SamplerRun",
    "is_finite",
    "pad_to_multiple",
    "sample",
]

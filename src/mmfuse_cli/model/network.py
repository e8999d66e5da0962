"""The network that drives the sampler: a small FiLM-conditioned U-Net predicting ``(e, m)``.

Inputs per step: the state ``z = [x1, x2, f]`` and the pseudo-inverses ``A1+ y1``, ``A2+ y2`` as image
channels (5 channels), plus a conditioning vector (both sources' degradation descriptors, the step's noise
level ``sqrt(1 - abar_k)`` and ``k / T``) that modulates every block (FiLM: per-channel scale and shift). One
model therefore serves every degradation setting. Outputs: ``e`` (3 channels, the noise estimate; its last
layer starts at zero so an untrained model returns the corrected pseudo-inverse start) and the fusion weight
map ``m = sigmoid(.)`` (1 channel, in [0, 1]).

The checkpoint file format is :mod:`mmfuse_cli.model.checkpoint`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmfuse_cli.model.config import ABSENT_IN_OLD_CHECKPOINTS, ARCHITECTURE_DEFAULTS, COND_DIM, ModelConfig
from mmfuse_cli.sampling.sampler import DenoiserInputs
from mmfuse_cli.sampling.schedule import SamplerParameters


class FiLMResBlock(nn.Module):
    """conv3x3 -> FiLM(cond) -> SiLU -> conv3x3, plus the input (residual)."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(x)
        h = F.silu(h * (1 + scale) + shift)
        return x + self.conv2(h)


class FusionUNet(nn.Module):
    """U-Net predicting the noise estimate ``e`` and fusion weights ``m`` for :func:`mmfuse_cli.sampling.sampler.sample`.

    Call: ``e, m = net(z, inputs)`` with ``z`` ``(N, 3, H, W)``; returns ``e`` ``(N, 3, H, W)`` and ``m``
    ``(N, 1, H, W)`` in [0, 1]. H and W must be multiples of :attr:`size_multiple` (the sampler pads).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c, levels = config.base_channels, config.levels
        chans = [min(c * 2**i, config.max_channels or c * 2**i) for i in range(levels)]
        factor = config.unshuffle
        if factor not in (1, 2):
            raise ValueError(f"unshuffle must be 1 or 2, got {factor}")
        self.size_multiple = factor * 2 ** (levels - 1)
        self.cond_mlp = nn.Sequential(nn.Linear(config.cond_dim, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU())
        self.stem = nn.Conv2d(5 * factor**2, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for i, ch in enumerate(chans):
            count = config.blocks_per_level + (config.bottom_blocks if i == levels - 1 else 0)
            self.down_blocks.append(nn.ModuleList(FiLMResBlock(ch, 32) for _ in range(count)))
            if i < levels - 1:
                self.downsamplers.append(nn.Conv2d(ch, chans[i + 1], 3, stride=2, padding=1))
        self.upsamplers = nn.ModuleList()
        self.merges = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in range(levels - 2, -1, -1):
            self.upsamplers.append(nn.Conv2d(chans[i + 1], chans[i], 3, padding=1))
            self.merges.append(nn.Conv2d(2 * chans[i], chans[i], 1))
            self.up_blocks.append(
                nn.ModuleList(FiLMResBlock(chans[i], 32) for _ in range(config.blocks_per_level))
            )
        self.top_blocks = nn.ModuleList(FiLMResBlock(chans[0], 32) for _ in range(config.top_blocks))
        self.head = nn.Conv2d(chans[0], 4 * factor**2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        assert self.head.bias is not None  # a Conv2d has a bias unless built with bias=False
        nn.init.zeros_(self.head.bias)

    def forward(self, z: torch.Tensor, inputs: DenoiserInputs) -> tuple[torch.Tensor, torch.Tensor]:
        return self.denoise(z, inputs.pinv1, inputs.pinv2, self.condition(z, inputs))

    def condition(self, z: torch.Tensor, inputs: DenoiserInputs) -> torch.Tensor:
        """The raw conditioning vector ``(N, cond_dim)`` of one step, in ``z``'s dtype: both sources' degradation
        descriptors, ``sqrt(1 - abar_k)``, ``k / T`` (and the quantisation levels if quantisation-aware)."""
        n = z.shape[0]
        step_feats = torch.stack(
            [
                inputs.noise_level.expand(n).to(z.dtype),
                torch.full((n,), inputs.step / inputs.steps, device=z.device),
            ],
            dim=1,
        )
        feats = [inputs.degradation.to(z.dtype), step_feats.to(z.dtype)]
        if self.config.quantisation_aware:
            quant = inputs.quantisation if inputs.quantisation is not None else z.new_zeros(n, 2)
            feats.append(quant.to(z.dtype))
        return torch.cat(feats, dim=1)

    def denoise(
        self, z: torch.Tensor, pinv1: torch.Tensor, pinv2: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network on plain tensors (what an exported graph takes): ``z`` ``(N, 3, H, W)``, ``pinv1``,
        ``pinv2`` ``(N, 1, H, W)``, ``cond`` ``(N, cond_dim)`` from :meth:`condition`; returns ``e``, ``m``."""
        cond = self.cond_mlp(cond)
        factor = self.config.unshuffle
        h = torch.cat([z, pinv1.to(z.dtype), pinv2.to(z.dtype)], dim=1)
        if factor > 1:
            h = F.pixel_unshuffle(h, factor)
        h = self.stem(h)
        skips = []
        for i, blocks in enumerate(self.down_blocks):
            for block in blocks:  # type: ignore[attr-defined]  # nested ModuleList, typed Module by torch
                h = block(h, cond)
            if i < len(self.downsamplers):
                skips.append(h)
                h = F.silu(self.downsamplers[i](h))
        for up, merge, blocks in zip(self.upsamplers, self.merges, self.up_blocks):
            h = F.silu(up(F.interpolate(h, scale_factor=2.0, mode="nearest")))
            h = merge(torch.cat([h, skips.pop()], dim=1))
            for block in blocks:  # type: ignore[attr-defined]  # nested ModuleList, typed Module by torch
                h = block(h, cond)
        for block in self.top_blocks:
            h = block(h, cond)
        out = self.head(F.silu(h))
        if factor > 1:
            out = F.pixel_shuffle(out, factor)
        return out[:, :3], torch.sigmoid(out[:, 3:4])


class FusionModel(nn.Module):
    """The trainable whole: network + learned sampler parameters, with its config."""

    metadata: dict[str, str]
    """A loaded checkpoint's header metadata: set by :func:`mmfuse_cli.model.checkpoint.load_checkpoint` only."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net = FusionUNet(config)
        self.sampler = SamplerParameters(config.steps, config.quantisation_aware, config.exact_final_fusion)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


__all__ = [
    "ABSENT_IN_OLD_CHECKPOINTS",
    "ARCHITECTURE_DEFAULTS",
    "COND_DIM",
    "FiLMResBlock",
    "FusionModel",
    "FusionUNet",
    "ModelConfig",
]

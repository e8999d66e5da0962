"""Flip self-ensemble: average the network's predictions over the four flips of its input, at every step.

The sampler asks its denoiser for a noise estimate ``e`` and a fusion weight map ``m`` at each of its T steps.
:class:`FlipEnsemble` answers with the mean of four answers of the wrapped network: for the input as it is,
flipped left-right, flipped top-bottom, and both, each flipped back before averaging. The operators (Gaussian
blur, block-average downsampling on an even grid) commute with these flips, so the whole sampler becomes
flip-equivariant: fusing a mirrored pair gives the mirrored result.

Cost: four network evaluations per step instead of one (about 4x the network time of ``mmfuse run``). Gain and
cost: docs/BENCHMARKS.md, "Flip self-ensemble" (chosen on validation pairs, then checked on the test splits).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mmfuse_cli.sampling.sampler import Denoiser, DenoiserInputs

# (flip left-right, flip top-bottom): the identity first
FLIPS = ((False, False), (True, False), (False, True), (True, True))


def _flip(t: torch.Tensor, left_right: bool, top_bottom: bool) -> torch.Tensor:
    """Flip the last two axes (H, W) of ``t`` as asked; a flip is its own inverse."""
    dims = [d for d, on in ((-1, left_right), (-2, top_bottom)) if on]
    return t.flip(dims) if dims else t


class FlipEnsemble(nn.Module):
    """A :class:`~mmfuse_cli.sampling.sampler.Denoiser` that averages ``denoiser`` over the four flips of its input.

    ``z`` is ``(N, 3, H, W)``; the returned ``e`` is ``(N, 3, H, W)`` and ``m`` ``(N, 1, H, W)`` in [0, 1], as
    the wrapped denoiser's. The images the network is conditioned on (``inputs.pinv1``, ``pinv2``) are flipped
    with ``z``; the per-sample degradation descriptors do not depend on orientation and pass unchanged.
    """

    def __init__(self, denoiser: Denoiser):
        super().__init__()
        self.denoiser = denoiser
        self.size_multiple = getattr(denoiser, "size_multiple", 1)

    def forward(self, z: torch.Tensor, inputs: DenoiserInputs) -> tuple[torch.Tensor, torch.Tensor]:
        e_sum: torch.Tensor | None = None
        m_sum: torch.Tensor | None = None
        for left_right, top_bottom in FLIPS:
            flipped = dataclasses.replace(
                inputs,
                pinv1=_flip(inputs.pinv1, left_right, top_bottom),
                pinv2=_flip(inputs.pinv2, left_right, top_bottom),
            )
            e, m = self.denoiser(_flip(z, left_right, top_bottom), flipped)
            e, m = _flip(e, left_right, top_bottom), _flip(m, left_right, top_bottom)
            e_sum = e if e_sum is None else e_sum + e
            m_sum = m if m_sum is None else m_sum + m
        assert e_sum is not None and m_sum is not None  # FLIPS is a non-empty constant
        return e_sum / len(FLIPS), m_sum / len(FLIPS)


__all__ = ["FLIPS", "FlipEnsemble"]

"""The flip self-ensemble: what it averages, and the symmetry it gives the whole sampler."""

import numpy as np
import torch
from conftest import astronaut, camera

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.sampling.ensemble import FlipEnsemble
from mmfuse_cli.sampling.sampler import DenoiserInputs
from mmfuse_cli.weights.resolve import resolve_checkpoint


class RampDenoiser(torch.nn.Module):
    """Not flip-invariant on purpose: e = z * ramp(x) * ramp(y), m = ramp(x), ramps from 0 to 1.

    It also checks that the images it is conditioned on were flipped with z (the test puts pinv1 in z's
    first channel), and records how often it was called.
    """

    size_multiple = 8

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, z, inputs):
        self.calls += 1
        assert torch.equal(inputs.pinv1, z[:, 0:1]), "pinv1 was not flipped with z"
        h, w = z.shape[-2:]
        ramp_x = torch.linspace(0, 1, w).view(1, 1, 1, w)
        ramp_y = torch.linspace(0, 1, h).view(1, 1, h, 1)
        return z * ramp_x * ramp_y, ramp_x.expand(z.shape[0], 1, h, w)


def test_flip_ensemble_is_the_mean_of_the_network_over_four_flips():
    torch.manual_seed(0)
    z = torch.rand(2, 3, 16, 24)
    inputs = DenoiserInputs(
        step=1,
        steps=3,
        noise_level=torch.tensor(0.5),
        pinv1=z[:, 0:1].clone(),
        pinv2=z[:, 1:2].clone(),
        degradation=torch.zeros(2, 6),
    )
    network = RampDenoiser()
    e, m = FlipEnsemble(network)(z, inputs)
    assert network.calls == 4
    # r(x) + r(W-1-x) = 1 along each axis, so the four flips average the ramps to 1/2 each
    torch.testing.assert_close(e, 0.25 * z)
    torch.testing.assert_close(m, torch.full((2, 1, 16, 24), 0.5))
    assert FlipEnsemble(network).size_multiple == 8


def test_flip_ensemble_makes_fusion_commute_with_mirroring():
    """Fusing a mirrored pair gives the mirrored result with the ensemble (exactly, up to float error); the plain
    shipped network is not symmetric, which the same check shows."""
    model = load_checkpoint(resolve_checkpoint("drfusion-ivif-s", task="ivif", progress=False))
    a, b = camera(64, 80), astronaut(64, 80)
    deg = Degradation(blur=1.5, noise=0.05)
    rng = np.random.default_rng(0)
    a = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    b = np.clip(b + rng.normal(0, 0.05, b.shape), 0, 1).astype(np.float32)

    def mirror_gap(fuser: Fuser) -> float:
        out = fuser.fuse(a, b, deg, deg)
        mirrored = fuser.fuse(a[:, ::-1].copy(), b[:, ::-1].copy(), deg, deg)
        return float(np.abs(mirrored.fused[:, ::-1] - out.fused).max())

    assert mirror_gap(Fuser(model)) > 1e-3
    assert mirror_gap(Fuser(model, FuseConfig(flip_ensemble=True))) < 1e-4

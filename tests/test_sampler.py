"""The joint-correction DDIM sampler, driven by tiny stand-in denoisers (it must not depend on the network)."""

import pytest
import torch
from conftest import camera

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.sampling.correction import joint_correction
from mmfuse_cli.sampling.observation import Observation, ObservationBatch
from mmfuse_cli.sampling.sampler import sample
from mmfuse_cli.sampling.schedule import SamplerParameters, ddnm_lambda


class ZeroDenoiser:
    """Predicts e = 0 and a constant fusion weight."""

    size_multiple = 1

    def __init__(self, weight=0.5):
        self.weight = weight
        self.calls = []

    def __call__(self, z, inputs):
        self.calls.append((tuple(z.shape), inputs.step))
        return torch.zeros_like(z), torch.full_like(z[:, :1], self.weight)


class ShapeCheckingDenoiser(ZeroDenoiser):
    size_multiple = 8

    def __call__(self, z, inputs):
        assert z.shape[-2] % 8 == 0 and z.shape[-1] % 8 == 0
        assert inputs.pinv1.shape[-2:] == z.shape[-2:]
        return super().__call__(z, inputs)


def _obs(x, deg, seed=0):
    from mmfuse_cli.degradation.synth import degrade_tensor

    return Observation(degrade_tensor(x, deg, torch.Generator().manual_seed(seed)), deg)


def test_with_lambda_one_the_fused_row_is_exactly_the_weighted_sources():
    x = torch.from_numpy(camera(32, 32))[None, None]
    z0 = torch.cat([x, x.flip(-1), torch.rand_like(x)], dim=1)
    m = torch.rand_like(x)
    o1 = ObservationBatch(_obs(x, Degradation(bits=0, blur=1.5, scale=2)))
    o2 = ObservationBatch(_obs(x, Degradation(bits=0, blur=1.0)))
    one = torch.ones(1)
    out = joint_correction(z0, m, o1, o2, one, one)
    x1n, x2n, fn = out[:, 0:1], out[:, 1:2], out[:, 2:3]
    assert torch.allclose(fn, m * x1n + (1 - m) * x2n, atol=1e-6)
    # and the source rows satisfy their observations (up to the Wiener regularisation)
    assert (o1.items[0].op.apply(x1n) - o1.items[0].y).abs().mean() < 0.01


def test_identity_operators_zero_noise_zero_e_return_the_observations():
    y1 = torch.from_numpy(camera(24, 40))[None, None]
    y2 = y1.flip(-2)
    clean = Degradation(bits=0)
    params = SamplerParameters(3)
    for damping in ("learned", "ddnm", "none"):
        out = sample(
            ZeroDenoiser(0.3),
            ObservationBatch(Observation(y1, clean)),
            ObservationBatch(Observation(y2, clean)),
            params,
            damping=damping,
        )
        assert torch.allclose(out.x1, y1, atol=1e-6)
        assert torch.allclose(out.x2, y2, atol=1e-6)
        # the fusion row moves from (y1 + y2) / 2 towards m y1 + (1 - m) y2 by a fraction lam per step
        target = 0.3 * y1 + 0.7 * y2
        if damping == "learned":
            u = params.damping_params()[0].detach()
            remaining = torch.prod(1 - torch.sigmoid(u.mean(dim=1)))
        else:
            remaining = torch.tensor(0.0)
        expected = target + (0.5 * (y1 + y2) - target) * remaining
        assert torch.allclose(out.f, expected, atol=1e-5)


def test_steps_count_down_and_the_network_is_called_once_per_step():
    y = torch.rand(1, 1, 16, 16)
    den = ZeroDenoiser()
    params = SamplerParameters(3)
    sample(
        den,
        ObservationBatch(Observation(y, Degradation(bits=0))),
        ObservationBatch(Observation(y, Degradation(bits=0))),
        params,
        steps=5,
    )
    assert [c[1] for c in den.calls] == [5, 4, 3, 2, 1]


def test_odd_sizes_are_padded_for_the_network_and_cropped_back():
    y1 = torch.rand(2, 1, 13, 11)
    y2 = torch.rand(2, 1, 13, 11)
    out = sample(
        ShapeCheckingDenoiser(),
        ObservationBatch(Observation(y1, Degradation(bits=0, noise=0.05))),
        ObservationBatch(Observation(y2, Degradation(bits=0, blur=1.0))),
        SamplerParameters(3),
    )
    assert out.f.shape == (2, 1, 13, 11) and out.x1.shape == (2, 1, 13, 11)


def test_a_batch_with_different_operators_per_sample_equals_separate_runs():
    base = torch.from_numpy(camera(32, 32))[None, None]
    degs_a = [
        Degradation(bits=0, blur=1.5, scale=2, noise=0.02),
        Degradation(bits=0, noise=0.08),
        Degradation(bits=0, scale=4),
    ]
    degs_b = [Degradation(bits=0, blur=2.0), Degradation(bits=0), Degradation(bits=0, blur=1.0, noise=0.05)]
    obs_a = [_obs(base, d, i) for i, d in enumerate(degs_a)]
    obs_b = [_obs(base.flip(-1), d, 10 + i) for i, d in enumerate(degs_b)]
    params = SamplerParameters(3)
    batched = sample(ZeroDenoiser(), ObservationBatch(obs_a), ObservationBatch(obs_b), params)
    for i in range(3):
        single = sample(ZeroDenoiser(), ObservationBatch(obs_a[i]), ObservationBatch(obs_b[i]), params)
        assert torch.allclose(batched.f[i], single.f[0], atol=1e-5)
        assert torch.allclose(batched.x1[i], single.x1[0], atol=1e-5)


def test_sources_must_map_to_the_same_grid():
    with pytest.raises(ValueError, match="same output grid"):
        sample(
            ZeroDenoiser(),
            ObservationBatch(Observation(torch.rand(1, 1, 8, 8), Degradation(bits=0, scale=2))),
            ObservationBatch(Observation(torch.rand(1, 1, 8, 8), Degradation(bits=0))),
            SamplerParameters(3),
        )


def test_ddnm_damping_rule():
    abar = SamplerParameters(3).abar().detach()
    assert float(abar[0]) == 1.0
    assert all(float(abar[i + 1]) < float(abar[i]) for i in range(3))
    lam_clean = ddnm_lambda(abar[2], abar[1], torch.tensor([0.0]))
    assert float(lam_clean) == 1.0
    lam_noisy = ddnm_lambda(abar[2], abar[1], torch.tensor([0.5]))
    assert 0 < float(lam_noisy) < 1
    # hand computation of the rule for one value
    a_t, a_p, s = float(abar[2]), float(abar[1]), 0.5
    alpha = a_t / a_p
    beta = 1 - alpha
    sigma_t = (beta * (1 - a_p) / (1 - a_t)) ** 0.5
    coef = a_p**0.5 * beta / (1 - a_t)
    assert float(lam_noisy) == pytest.approx(sigma_t / (coef * s), rel=1e-5)


def test_learned_damping_is_noise_aware_and_schedule_interpolates():
    params = SamplerParameters(3)
    u, v, w = params.damping_params()
    assert w is None  # not quantisation-aware
    u, v = u.detach(), v.detach()
    lam = torch.sigmoid(u[0, 0] - v[0, 0] * torch.tensor([0.0, 0.05, 0.1]) / 0.05)
    assert float(lam[0]) > float(lam[1]) > float(lam[2])
    ab5 = params.abar(5).detach()
    assert ab5.shape == (6,) and float(ab5[0]) == 1.0
    assert float(ab5[-1]) == pytest.approx(float(params.abar().detach()[-1]), rel=1e-5)
    assert params.damping_params(1)[0].shape == (1, 2)


def test_observations_know_their_rounding_noise():
    y = torch.zeros(1, 1, 4, 4)
    assert Observation(y, Degradation(bits=8)).quantisation == 1.0
    assert Observation(y, Degradation(bits=16)).quantisation == pytest.approx(255 / 65535)
    assert Observation(y, Degradation(bits=0)).quantisation == 0.0
    # 8-bit rounding: uniform error over one step of 1/255, std = step / sqrt(12)
    assert Observation(y, Degradation(bits=8)).quantisation_std == pytest.approx(1 / (255 * 12**0.5))
    batch = ObservationBatch(
        [Observation(y, Degradation(bits=8, noise=0.03)), Observation(y, Degradation(bits=0, noise=0.03))]
    )
    assert batch.quantisation(2, "cpu").tolist() == [1.0, 0.0]
    expected = [(0.03**2 + 1 / (255**2 * 12)) ** 0.5, 0.03]
    assert batch.total_noise(2, "cpu").tolist() == pytest.approx(expected, rel=1e-6)


def test_quantisation_aware_damping_starts_neutral_and_learns_to_trust_rounded_deblurred_data_less():
    params = SamplerParameters(3, quantisation_aware=True)
    u, v, w = (t.detach() for t in params.damping_params())
    assert w.shape == (3, 2, 2) and float(w.abs().sum()) == 0.0
    # rows: exact + blurred, 8-bit + blurred, 8-bit + sharp
    sigma = torch.zeros(3, 2)
    q = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    blur = torch.tensor([[0.6, 0.6], [0.6, 0.6], [0.0, 0.0]])
    start1, _ = params.damping(1, u, v, w, sigma, q, blur)
    assert torch.allclose(start1, torch.sigmoid(u[0, 0]).expand(3))  # w = 0: no change from the plain rule
    with torch.no_grad():
        params.damp_w[:, :, 1] = 4.0  # the "rounded AND blurred" term
    lam1, lam2 = params.damping(1, *(t.detach() for t in params.damping_params()), sigma, q, blur)
    assert float(lam1[0]) == pytest.approx(float(start1[0]))  # exact data: trusted as before
    assert float(lam1[1]) < float(start1[1]) - 0.3  # rounded, deblurred: trusted less
    assert float(lam1[2]) == pytest.approx(float(start1[2]))  # rounded but sharp: as before
    assert params.damping_params(5)[2].shape == (5, 2, 2)  # interpolated for other step counts


def test_the_denoiser_sees_each_sources_quantisation():
    seen = []

    class Recorder(ZeroDenoiser):
        def __call__(self, z, inputs):
            seen.append(inputs.quantisation.clone())
            return super().__call__(z, inputs)

    y = torch.from_numpy(camera(16, 16))[None, None]
    sample(
        Recorder(),
        ObservationBatch(Observation(y, Degradation(bits=8))),
        ObservationBatch(Observation(y, Degradation(bits=16))),
        SamplerParameters(2),
    )
    assert len(seen) == 2 and seen[0][0].tolist() == pytest.approx([1.0, 255 / 65535])


class FixedRandomDenoiser:
    """Predicts a fixed random e (so the fused channel drifts away from the sources) and a varying weight map."""

    size_multiple = 1

    def __call__(self, z, inputs):
        gen = torch.Generator().manual_seed(inputs.step)
        e = 0.05 * torch.randn(z.shape, generator=gen)
        m = torch.rand(z[:, :1].shape, generator=gen)
        return e, m


def test_exact_final_fusion_makes_the_fused_image_the_weighted_restored_sources():
    x = torch.from_numpy(camera(32, 32))[None, None]
    o1 = ObservationBatch(
        _obs(x, Degradation(bits=0, noise=0.05), 1)
    )  # noisy: the damping keeps lam far below 1
    o2 = ObservationBatch(_obs(x.flip(-1), Degradation(bits=0, blur=1.5, noise=0.05), 2))
    damped = sample(FixedRandomDenoiser(), o1, o2, SamplerParameters(3))
    exact = sample(FixedRandomDenoiser(), o1, o2, SamplerParameters(3, exact_final_fusion=True))
    # the restored sources and the weight map do not change, only the fused row
    assert (
        torch.equal(exact.x1, damped.x1)
        and torch.equal(exact.x2, damped.x2)
        and torch.equal(exact.m, damped.m)
    )
    weighted = exact.m * exact.x1 + (1 - exact.m) * exact.x2
    assert torch.allclose(exact.f, weighted, atol=1e-6)
    assert (
        damped.f - weighted
    ).abs().mean() > 1e-3  # in the original DRFusion sampler the fused row stays damped


def test_a_known_pixel_grid_is_imposed_on_the_last_steps_result_only():
    """A source stored as 2 x 2 blocks comes back as 2 x 2 blocks; the other source and the steps before are as
    without the grid, and the fused row still equals the weighted restored sources."""
    from dataclasses import replace

    from mmfuse_cli.degradation.grid import project_to_grid

    x = torch.from_numpy(camera(32, 48))[None, None]
    blocky = project_to_grid(x, 2)
    plain_deg, grid_deg = (
        Degradation(bits=0, blur=1.5, noise=0.02),
        Degradation(bits=0, blur=1.5, noise=0.02, grid=2),
    )
    y1 = _obs(blocky, plain_deg, 1).y
    o2 = ObservationBatch(_obs(x.flip(-1), Degradation(bits=0, blur=1.0), 2))
    params = SamplerParameters(3, exact_final_fusion=True)
    plain = sample(FixedRandomDenoiser(), ObservationBatch(Observation(y1, plain_deg)), o2, params)
    on_grid = sample(FixedRandomDenoiser(), ObservationBatch(Observation(y1, grid_deg)), o2, params)
    assert torch.allclose(on_grid.x1, project_to_grid(plain.x1, 2), atol=1e-6)
    assert torch.equal(on_grid.x2, plain.x2) and torch.equal(on_grid.m, plain.m)
    assert torch.allclose(on_grid.f, on_grid.m * on_grid.x1 + (1 - on_grid.m) * on_grid.x2, atol=1e-6)
    # the projection removes only error: closer to the blocky truth
    assert (on_grid.x1 - blocky).pow(2).mean() < (plain.x1 - blocky).pow(2).mean()

    # the correction itself: without on_grid nothing changes; with it the damped fusion row follows each source's
    # whole move, and a batch mixing grids projects only the samples that have one
    z0 = torch.cat([x, x.flip(-1), torch.rand_like(x)], dim=1).repeat(2, 1, 1, 1)
    m, lam = torch.rand_like(z0[:, :1]), torch.full((2,), 0.4)
    mixed = ObservationBatch([Observation(y1, grid_deg), Observation(y1, plain_deg)])
    plain_batch = ObservationBatch([Observation(y1, plain_deg), Observation(y1, replace(plain_deg))])
    o2b = ObservationBatch([o2.items[0], o2.items[0]])
    before = joint_correction(z0, m, plain_batch, o2b, lam, lam)
    assert torch.equal(joint_correction(z0, m, mixed, o2b, lam, lam), before)
    after = joint_correction(z0, m, mixed, o2b, lam, lam, on_grid=True)
    assert torch.allclose(after[0:1, 0:1], project_to_grid(before[0:1, 0:1], 2), atol=1e-6)
    assert torch.allclose(after[1:2], before[1:2], atol=1e-6) and torch.equal(after[:, 1:2], before[:, 1:2])
    # the fused row moves by the weighted extra move of source 1 (0 for the sample without a grid)
    extra = after[:, 0:1] - before[:, 0:1]
    assert extra.abs().amax() > 1e-3
    assert torch.allclose(after[:, 2:3] - before[:, 2:3], m * extra, atol=1e-6)

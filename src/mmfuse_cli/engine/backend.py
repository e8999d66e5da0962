"""Where the network runs: the torch backend (device, precision, channels-last layout, the fp32 retry).

A backend turns one batch of observations into a :class:`~mmfuse_cli.sampling.sampler.SampleOutput`. Faster CPU
runtimes plug in here with the same :meth:`TorchBackend.sample` contract.
"""

from __future__ import annotations

import torch

from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.model.network import FusionModel
from mmfuse_cli.sampling.ensemble import FlipEnsemble
from mmfuse_cli.sampling.observation import ObservationBatch
from mmfuse_cli.sampling.sampler import SampleOutput, is_finite, sample


class NonFiniteOutputError(ValueError):
    """The model produced NaN or inf (also after the fp32 retry); nothing may be written."""


class TorchBackend:
    """Runs :func:`~mmfuse_cli.sampling.sampler.sample` with ``model`` on ``device`` at the configured precision.

    ``precision="auto"`` is bf16 on CUDA, fp32 on CPU; reduced precision needs CUDA (:class:`InvalidValueError`,
    field ``precision``, otherwise). The network runs with channels-last (NHWC) weights: oneDNN then picks its
    blocked convolution kernels, x1.37 (median) on a 2-core AVX2 CPU, same values within 1e-5 (docs/BENCHMARKS.md,
    Speed). Converts the model in place.
    """

    def __init__(self, model: FusionModel, device: torch.device, config: FuseConfig):
        precision = config.precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        if precision in ("fp16", "bf16") and device.type != "cuda":
            raise InvalidValueError("precision", f"{precision} needs CUDA; use fp32 on the CPU")
        self.precision = precision
        self.device = device
        self.model = model.to(device).eval()
        self.model.net.to(memory_format=torch.channels_last)
        self.steps = config.steps or model.config.steps
        self.damping = config.damping
        # what the sampler drives: the network, or the mean of its answers over four flips (x4 time, ensemble.py)
        self.denoiser = FlipEnsemble(self.model.net) if config.flip_ensemble else self.model.net

    def sample(self, oa: ObservationBatch, ob: ObservationBatch) -> SampleOutput:
        """The sampler's output for one batch, fp32; reduced precision is retried in fp32 if not finite.

        Raises:
            NonFiniteOutputError: NaN or inf in the output.
        """

        def run() -> SampleOutput:
            return sample(self.denoiser, oa, ob, self.model.sampler, self.steps, self.damping)

        with torch.inference_mode():
            if self.precision == "fp32":
                out = run()
            else:
                dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
                with torch.autocast(self.device.type, dtype=dtype):
                    out = run()
                out = SampleOutput(out.x1.float(), out.x2.float(), out.f.float(), out.m.float())
                if not is_finite(out):
                    out = run()  # the fp32 retry
        if not is_finite(out):
            raise NonFiniteOutputError("the model produced NaN or inf; no output written")
        return out


__all__ = ["NonFiniteOutputError", "TorchBackend"]

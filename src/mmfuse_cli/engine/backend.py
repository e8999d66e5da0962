"""Where the network runs: the :class:`Backend` contract, the torch backend (device, precision, channels-last
layout, the fp32 retry), the runtime backend (OpenVINO / ONNX Runtime, :mod:`mmfuse_cli.engine.runtimes`), and
which one ``backend="auto"`` picks (the registry is :mod:`mmfuse_cli.engine.backends`).

A backend turns one batch of observations into a :class:`~mmfuse_cli.sampling.sampler.SampleOutput`. Every
backend drives the same :func:`~mmfuse_cli.sampling.sampler.sample` loop (observation correction included, in
torch); only the network call differs.
"""

from __future__ import annotations

from typing import Protocol

import torch

from mmfuse_cli.engine.backends import AUTO, BACKENDS, installed_backends
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.runtimes import runtime_denoiser
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.model.network import FusionModel
from mmfuse_cli.sampling.ensemble import FlipEnsemble
from mmfuse_cli.sampling.observation import ObservationBatch
from mmfuse_cli.sampling.sampler import Denoiser, SampleOutput, is_finite, sample


class NonFiniteOutputError(ValueError):
    """The model produced NaN or inf (also after the fp32 retry); nothing may be written."""


class Backend(Protocol):
    """What :class:`~mmfuse_cli.engine.fuser.Fuser` drives: ``name``, ``steps``, ``model`` (the model on its
    device) and ``sample(oa, ob)``."""

    name: str
    steps: int
    model: FusionModel

    def sample(self, oa: ObservationBatch, ob: ObservationBatch) -> SampleOutput: ...


def pick_backend(name: str, device: torch.device) -> str:
    """The backend ``name`` resolves to on ``device``: ``auto`` is torch on CUDA, else the fastest installed.

    Raises:
        InvalidValueError: (field ``backend``) a runtime that is not installed, or one asked for on CUDA.
    """
    if name == AUTO:
        return "torch" if device.type != "cpu" else installed_backends()[0]
    spec = BACKENDS[name]
    if not spec.installed:
        raise InvalidValueError("backend", f"{name} is not installed: pip install 'mmfuse[{spec.extra}]'")
    if device.type != "cpu" and not spec.cuda:
        raise InvalidValueError("backend", f"{name} runs on the CPU only; use torch on {device.type}")
    return name


class SamplingBackend:
    """What every backend shares: the model in eval mode on its device, the step count and damping of the run,
    and the denoiser the sampler drives (the network, or the mean of its answers over four flips: x4 time,
    :mod:`mmfuse_cli.sampling.ensemble`). Subclasses give the network call and the precision."""

    name: str
    precision: str

    def __init__(self, model: FusionModel, device: torch.device, config: FuseConfig, network: Denoiser):
        self.device = device
        self.model = model
        self.steps = config.steps_for(model.config)
        self.damping = config.damping
        self.denoiser = FlipEnsemble(network) if config.flip_ensemble else network

    def _sample(self, oa: ObservationBatch, ob: ObservationBatch) -> SampleOutput:
        return sample(self.denoiser, oa, ob, self.model.sampler, self.steps, self.damping)

    @staticmethod
    def _checked(out: SampleOutput) -> SampleOutput:
        if not is_finite(out):
            raise NonFiniteOutputError("the model produced NaN or inf; no output written")
        return out


class RuntimeBackend(SamplingBackend):
    """:func:`~mmfuse_cli.sampling.sampler.sample` with the network on OpenVINO or ONNX Runtime (CPU, fp32); the
    flip ensemble wraps the runtime's denoiser as it wraps the torch network.

    Raises:
        InvalidValueError: (field ``precision``) a reduced precision was asked for (these runtimes run fp32).
    """

    def __init__(self, name: str, model: FusionModel, config: FuseConfig):
        if config.precision not in ("auto", "fp32"):
            raise InvalidValueError("precision", f"{config.precision} needs the torch backend on CUDA")
        self.name = name
        self.precision = "fp32"
        model = model.to("cpu").eval()
        super().__init__(model, torch.device("cpu"), config, runtime_denoiser(name, model.net))

    def sample(self, oa: ObservationBatch, ob: ObservationBatch) -> SampleOutput:
        """The sampler's output for one batch, fp32.

        Raises:
            NonFiniteOutputError: NaN or inf in the output.
        """
        with torch.inference_mode():
            return self._checked(self._sample(oa, ob))


class TorchBackend(SamplingBackend):
    """Runs :func:`~mmfuse_cli.sampling.sampler.sample` with ``model`` on ``device`` at the configured precision.

    ``precision="auto"`` is bf16 on CUDA, fp32 on CPU; reduced precision needs CUDA (:class:`InvalidValueError`,
    field ``precision``, otherwise). The network runs with channels-last (NHWC) weights: oneDNN then picks its
    blocked convolution kernels, faster on the CPU with the same values within 1e-5 (docs/BENCHMARKS.md, Speed).
    Converts the model in place.
    """

    def __init__(self, model: FusionModel, device: torch.device, config: FuseConfig):
        precision = config.precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        if precision in ("fp16", "bf16") and device.type != "cuda":
            raise InvalidValueError("precision", f"{precision} needs CUDA; use fp32 on the CPU")
        self.name = "torch"
        self.precision = precision
        model = model.to(device).eval()
        model.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs omit memory_format
        super().__init__(model, device, config, model.net)

    def sample(self, oa: ObservationBatch, ob: ObservationBatch) -> SampleOutput:
        """The sampler's output for one batch, fp32; reduced precision is retried in fp32 if not finite.

        Raises:
            NonFiniteOutputError: NaN or inf in the output.
        """
        with torch.inference_mode():
            if self.precision == "fp32":
                return self._checked(self._sample(oa, ob))
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            with torch.autocast(self.device.type, dtype=dtype):
                out = self._sample(oa, ob)
            out = SampleOutput(out.x1.float(), out.x2.float(), out.f.float(), out.m.float())
            if not is_finite(out):
                out = self._sample(oa, ob)  # the fp32 retry
        return self._checked(out)


def make_backend(model: FusionModel, device: torch.device, config: FuseConfig) -> Backend:
    """The backend ``config.backend`` names (resolved by :func:`pick_backend`) for ``model`` on ``device``."""
    name = pick_backend(config.backend, device)
    if name == "torch":
        return TorchBackend(model, device, config)
    return RuntimeBackend(name, model, config)


__all__ = [
    "Backend",
    "NonFiniteOutputError",
    "RuntimeBackend",
    "SamplingBackend",
    "TorchBackend",
    "installed_backends",
    "make_backend",
    "pick_backend",
]

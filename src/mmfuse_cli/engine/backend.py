"""Where the network runs: the :class:`Backend` contract, the torch backend (device, precision, channels-last
layout, the fp32 retry), the runtime backend (OpenVINO / ONNX Runtime, :mod:`mmfuse_cli.engine.runtimes`), and
which one ``backend="auto"`` picks.

A backend turns one batch of observations into a :class:`~mmfuse_cli.sampling.sampler.SampleOutput`. Every
backend drives the same :func:`~mmfuse_cli.sampling.sampler.sample` loop (observation correction included, in
torch); only the network call differs.
"""

from __future__ import annotations

from typing import Protocol

import torch

from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.runtimes import EXTRAS, runtime_denoiser, runtime_version
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.model.network import FusionModel
from mmfuse_cli.sampling.ensemble import FlipEnsemble
from mmfuse_cli.sampling.observation import ObservationBatch
from mmfuse_cli.sampling.sampler import SampleOutput, is_finite, sample


class NonFiniteOutputError(ValueError):
    """The model produced NaN or inf (also after the fp32 retry); nothing may be written."""


CPU_PREFERENCE = ("openvino", "onnxruntime", "torch")
"""``auto`` on the CPU: the first installed, fastest first (640x480 network call on 2 cores: 0.19 / 0.31 /
0.43 s; docs/BENCHMARKS.md, Speed)."""


class Backend(Protocol):
    """What :class:`~mmfuse_cli.engine.fuser.Fuser` drives: ``name``, ``steps`` and ``sample(oa, ob)``."""

    name: str
    steps: int

    def sample(self, oa: ObservationBatch, ob: ObservationBatch) -> SampleOutput: ...


def installed_backends() -> list[str]:
    """The backends that can run here, fastest first on the CPU (torch is always there)."""
    return [name for name in CPU_PREFERENCE if name == "torch" or runtime_version(name) is not None]


def pick_backend(name: str, device: torch.device) -> str:
    """The backend ``name`` resolves to on ``device``: ``auto`` is torch on CUDA, else the fastest installed.

    Raises:
        InvalidValueError: (field ``backend``) a runtime that is not installed, or one asked for on CUDA.
    """
    if name == "auto":
        return "torch" if device.type != "cpu" else installed_backends()[0]
    if name != "torch":
        if runtime_version(name) is None:
            raise InvalidValueError(
                "backend", f"{name} is not installed: pip install 'mmfuse[{EXTRAS[name]}]'"
            )
        if device.type != "cpu":
            raise InvalidValueError("backend", f"{name} runs on the CPU only; use torch on {device.type}")
    return name


class RuntimeBackend:
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
        self.device = torch.device("cpu")
        self.model = model.to(self.device).eval()
        self.steps = config.steps or model.config.steps
        self.damping = config.damping
        net = runtime_denoiser(name, self.model.net)
        self.denoiser = FlipEnsemble(net) if config.flip_ensemble else net

    def sample(self, oa: ObservationBatch, ob: ObservationBatch) -> SampleOutput:
        """The sampler's output for one batch, fp32.

        Raises:
            NonFiniteOutputError: NaN or inf in the output.
        """
        with torch.inference_mode():
            out = sample(self.denoiser, oa, ob, self.model.sampler, self.steps, self.damping)
        if not is_finite(out):
            raise NonFiniteOutputError("the model produced NaN or inf; no output written")
        return out


def make_backend(model: FusionModel, device: torch.device, config: FuseConfig) -> Backend:
    """The backend ``config.backend`` names (resolved by :func:`pick_backend`) for ``model`` on ``device``."""
    name = pick_backend(config.backend, device)
    if name == "torch":
        return TorchBackend(model, device, config)
    return RuntimeBackend(name, model, config)


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
        self.name = "torch"
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


__all__ = [
    "CPU_PREFERENCE",
    "Backend",
    "NonFiniteOutputError",
    "RuntimeBackend",
    "TorchBackend",
    "installed_backends",
    "make_backend",
    "pick_backend",
]

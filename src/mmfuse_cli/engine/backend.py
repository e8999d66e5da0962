"""Where the network runs: the :class:`Backend` contract, the torch backend (device, precision, channels-last
layout, the fp32 retry), the runtime backend (OpenVINO / ONNX Runtime, :mod:`mmfuse_cli.engine.runtimes`), and
which one ``backend="auto"`` picks (the registry is :mod:`mmfuse_cli.engine.backends`).

On the CPU, ``auto`` tries the installed backends fastest first and uses the first that can be built: a runtime
whose export cache cannot be written (:class:`~mmfuse_cli.engine.export.ExportCacheError`) or whose module fails
to import is skipped, and the backend built says why in its one-line ``fallback_note``. A backend named
explicitly is built or fails.

A backend turns one batch of observations into a :class:`~mmfuse_cli.sampling.sampler.SampleOutput`. Every
backend drives the same :func:`~mmfuse_cli.sampling.sampler.sample` loop (observation correction included, in
torch); only the network call differs.
"""

from __future__ import annotations

from typing import Protocol

import torch

from mmfuse_cli.engine.backends import AUTO, BACKENDS, installed_backends
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.export import ExportCacheError
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
    device), ``fallback_note`` (why ``auto`` did not get a faster backend, one line; ``None``: it did) and
    ``sample(oa, ob)``."""

    name: str
    steps: int
    model: FusionModel
    fallback_note: str | None

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
    fallback_note: str | None = None

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
    """The backend ``config.backend`` names (resolved by :func:`pick_backend`) for ``model`` on ``device``;
    ``auto`` on the CPU is the fastest installed one that can be built (see the module docstring).

    Raises:
        InvalidValueError: (field ``backend`` or ``precision``) the backend cannot run this configuration here.
        ExportCacheError: a runtime named explicitly needs its export built and the cache cannot be written.
    """
    if config.backend == AUTO and device.type == "cpu":
        return _first_that_builds(model, config)
    name = pick_backend(config.backend, device)
    if name == "torch":
        return TorchBackend(model, device, config)
    return RuntimeBackend(name, model, config)


def _first_that_builds(model: FusionModel, config: FuseConfig) -> Backend:
    """``auto`` on the CPU: the installed backends fastest first (torch last, always there); the one built
    records in its ``fallback_note`` why the faster ones were skipped."""
    skipped: list[tuple[str, str]] = []
    for name in installed_backends():
        try:
            backend: Backend = (
                TorchBackend(model, torch.device("cpu"), config)
                if name == "torch"
                else RuntimeBackend(name, model, config)
            )
        except (ExportCacheError, ImportError) as exc:
            skipped.append((name, (str(exc).strip().splitlines() or [type(exc).__name__])[0]))
            continue
        if skipped:
            backend.fallback_note = _fallback_note(backend.name, skipped)
        return backend
    raise InvalidValueError("backend", "no backend can run here")  # not reached: torch always builds


def _fallback_note(used: str, skipped: list[tuple[str, str]]) -> str:
    """``backend auto: using torch, not openvino or onnxruntime: REASON`` (one reason per backend if they differ)."""
    reasons = {reason for _, reason in skipped}
    if len(reasons) == 1:
        return f"backend auto: using {used}, not {' or '.join(n for n, _ in skipped)}: {reasons.pop()}"
    return f"backend auto: using {used}, not " + " or ".join(f"{n} ({reason})" for n, reason in skipped)


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

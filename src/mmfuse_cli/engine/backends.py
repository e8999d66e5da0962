"""The one registry of backends (where the network runs), in the style of rembg's ``sessions``: one
:class:`BackendSpec` per backend with everything the package knows about it (the distribution that provides it,
the mmfuse extra that installs it, its runtime denoiser, its memory model). Every other module reads these specs;
none keeps a table of its own. Light to import: nothing here imports torch or a runtime.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendSpec:
    """One backend.

    Attributes:
        name: what ``--backend`` says.
        package: the Python distribution that provides the runtime (``None``: torch itself, always there).
        extra: the mmfuse extra that installs it (``pip install 'mmfuse[extra]'``).
        denoiser: ``module:Class`` of its runtime denoiser (:mod:`mmfuse_cli.engine.runtimes`), ``None`` for torch.
        work_bytes: the sampler's working set per sampled pixel, measured (:mod:`mmfuse_cli.engine.memory`).
        cuda: whether it runs on CUDA (the runtimes here are CPU only).
    """

    name: str
    package: str | None
    extra: str | None
    denoiser: str | None
    work_bytes: int
    cuda: bool

    def version(self) -> str | None:
        """The installed version of the runtime, or ``None`` when it is absent (torch: its version)."""
        try:
            return importlib.metadata.version(self.package or "torch")
        except importlib.metadata.PackageNotFoundError:
            return None

    @property
    def installed(self) -> bool:
        return self.package is None or self.version() is not None

    def denoiser_class(self) -> type:
        """The runtime denoiser class (imports the runtime's module); only for a spec with a ``denoiser``."""
        if self.denoiser is None:
            raise ValueError(f"{self.name} has no runtime denoiser")
        module, _, name = self.denoiser.partition(":")
        return getattr(importlib.import_module(module), name)


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        # OpenVINO compiles per shape (static memory plan; dynamic shapes cost 1370 bytes a pixel)
        BackendSpec(
            "openvino", "openvino", "openvino", "mmfuse_cli.engine.runtimes:OpenVinoDenoiser", 420, False
        ),
        # ONNX Runtime's arena keeps more
        BackendSpec(
            "onnxruntime", "onnxruntime", "onnx", "mmfuse_cli.engine.runtimes:OnnxRuntimeDenoiser", 850, False
        ),
        BackendSpec("torch", None, None, None, 350, True),
    )
}
"""Every backend, fastest first on the CPU (docs/BENCHMARKS.md, Speed): what ``auto`` tries in order."""

AUTO = "auto"
BACKEND_CHOICES: tuple[str, ...] = (AUTO, *BACKENDS)
"""What ``FuseConfig.backend`` accepts."""


def installed_backends() -> list[str]:
    """The backends that can run here, fastest first on the CPU (torch is always there)."""
    return [name for name, spec in BACKENDS.items() if spec.installed]


__all__ = ["AUTO", "BACKENDS", "BACKEND_CHOICES", "BackendSpec", "installed_backends"]

"""The network on a fast CPU runtime (OpenVINO, ONNX Runtime), driven by the same sampler as the torch backend.

A runtime denoiser is a :class:`~mmfuse_cli.sampling.sampler.Denoiser`: the sampler (its schedule, the
observation correction, padding) runs in torch exactly as with :class:`~mmfuse_cli.engine.backend.TorchBackend`
and calls it once per step (four times with the flip ensemble); it builds the step's conditioning vector in torch
(:meth:`~mmfuse_cli.model.network.FusionUNet.condition`) and runs the exported graph
(:mod:`mmfuse_cli.engine.export`) on the tensors' memory, fp32.

How much faster each runtime is than torch depends on the CPU (docs/BENCHMARKS.md, Speed); outputs agree with
torch within 1e-5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmfuse_cli.engine.backends import BACKENDS
from mmfuse_cli.engine.export import INPUT_NAMES, cached_entry, entry_key, export_onnx
from mmfuse_cli.model.network import FusionUNet
from mmfuse_cli.sampling.sampler import DenoiserInputs


def onnx_file(net: FusionUNet) -> Path:
    """The cached ONNX export of ``net`` (built on first use; keyed by the weights and torch's version)."""

    def build(folder: Path) -> list[Path]:
        path = folder / "net.onnx"
        export_onnx(net, path)
        return [path]

    return cached_entry(entry_key(net, "onnx-torch", torch.__version__), build, lambda files: files[0])


class RuntimeDenoiser:
    """Base of the runtime denoisers: ``denoiser(z, inputs) -> (e, m)`` as torch CPU tensors, fp32."""

    def __init__(self, net: FusionUNet, threads: int):
        self.net = net
        self.size_multiple = net.size_multiple
        self.threads = threads

    def __call__(self, z: torch.Tensor, inputs: DenoiserInputs) -> tuple[torch.Tensor, torch.Tensor]:
        z = z.float().contiguous()
        cond = self.net.condition(z, inputs).float().contiguous()
        feed = {
            "z": z.numpy(),
            "pinv1": inputs.pinv1.float().contiguous().numpy(),
            "pinv2": inputs.pinv2.float().contiguous().numpy(),
            "cond": cond.numpy(),
        }
        e, m = self.run(feed)
        return torch.from_numpy(np.ascontiguousarray(e)), torch.from_numpy(np.ascontiguousarray(m))

    def run(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class OnnxRuntimeDenoiser(RuntimeDenoiser):
    """The exported network on ONNX Runtime's CPU execution provider, ``threads`` intra-op threads."""

    def __init__(self, net: FusionUNet, threads: int):
        super().__init__(net, threads)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3

        def load(files: list[Path]):
            return ort.InferenceSession(str(files[0]), options, providers=["CPUExecutionProvider"])

        self.session = load([onnx_file(net)])

    def run(self, feed):
        e, m = self.session.run(["e", "m"], feed)
        return e, m


class OpenVinoDenoiser(RuntimeDenoiser):
    """The exported network compiled by OpenVINO for the CPU: fp32 inference precision (its bf16 default on
    CPUs with AVX-512 BF16 / AMX differs by up to 6e-2 and gained nothing), latency hint, ``threads`` threads.

    It is compiled for each input shape it meets (the last :data:`SHAPES_KEPT` are kept): with static shapes
    OpenVINO plans its memory, 230 MB instead of 480 MB peak at 640x480 and 0.56 GB instead of 1.6 GB at
    1280x960, and runs faster; a new shape costs one compile (about 0.3 s). Folders of same-size images and
    tiles (all of one shape, :mod:`mmfuse_cli.engine.tiling`) meet one or two shapes. The converted OpenVINO
    model (IR) is cached beside the ONNX export, keyed by OpenVINO's version."""

    SHAPES_KEPT = 2

    def __init__(self, net: FusionUNet, threads: int):
        super().__init__(net, threads)
        import openvino as ov

        self.core = ov.Core()
        self.config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
        }

        def build(folder: Path) -> list[Path]:
            xml = folder / "net.xml"
            ov.save_model(ov.convert_model(str(onnx_file(net))), str(xml), compress_to_fp16=False)
            return [xml, xml.with_suffix(".bin")]

        def load(files: list[Path]):
            xml = next(p for p in files if p.suffix == ".xml")
            model = self.core.read_model(str(xml))
            self._compile(model, (1, 3, 2 * net.size_multiple, 2 * net.size_multiple))  # fails here if bad
            return model

        self.model = cached_entry(entry_key(net, "openvino", ov.__version__), build, load)
        self.compiled: dict[tuple[int, ...], tuple[object, object]] = {}

    def _compile(self, model, shape: tuple[int, ...]):
        n, _, h, w = shape
        model.reshape(
            {
                "z": [n, 3, h, w],
                "pinv1": [n, 1, h, w],
                "pinv2": [n, 1, h, w],
                "cond": [n, self.net.config.cond_dim],
            }
        )
        compiled = self.core.compile_model(model, "CPU", self.config)
        return compiled, compiled.create_infer_request()

    def run(self, feed):
        shape = feed["z"].shape
        if shape not in self.compiled:
            while len(self.compiled) >= self.SHAPES_KEPT:
                self.compiled.pop(next(iter(self.compiled)))
            self.compiled[shape] = self._compile(self.model, shape)
        compiled, request = self.compiled[shape]
        result = request.infer([feed[name] for name in INPUT_NAMES])
        return result[compiled.output(0)], result[compiled.output(1)]


def runtime_denoiser(name: str, net: FusionUNet, threads: int | None = None) -> RuntimeDenoiser:
    """The network of ``net`` on runtime ``name`` (``openvino``, ``onnxruntime``: its
    :class:`~mmfuse_cli.engine.backends.BackendSpec`), exporting it if needed."""
    return BACKENDS[name].denoiser_class()(net, threads or torch.get_num_threads())


__all__ = [
    "OnnxRuntimeDenoiser",
    "OpenVinoDenoiser",
    "RuntimeDenoiser",
    "onnx_file",
    "runtime_denoiser",
]

"""The fast CPU backends (OpenVINO, ONNX Runtime): same outputs as torch fp32, the export cache, the choice of
``auto``, and a clear error for a runtime that is not installed. Skipped per runtime when it is not installed."""

import json

import numpy as np
import pytest
import torch
from conftest import astronaut, camera
from typer.testing import CliRunner

from mmfuse_cli.cli import app
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.backend import installed_backends, pick_backend
from mmfuse_cli.engine.backends import BackendSpec
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.export import cache_dir
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import to_gray
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig
from mmfuse_cli.weights.resolve import resolve_checkpoint, sha256_file

RUNTIMES = ["openvino", "onnxruntime"]
TOL = 1 / 255
DEG_A = Degradation(blur=1.5, scale=2, noise=0.05)
DEG_B = Degradation(blur=1.0, noise=0.05)


def _needs(runtime: str) -> None:
    pytest.importorskip(runtime)


@pytest.fixture(scope="module")
def tiny():
    """A small quantisation-aware model whose head is not zero (so the network matters)."""
    torch.manual_seed(0)
    model = FusionModel(ModelConfig(base_channels=8, levels=3, quantisation_aware=True))
    for p in model.net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model.eval()


def _pair(h=48, w=80):
    return camera(h // 2, w // 2), astronaut(h, w)


def _max_diff(x, y) -> float:
    return max(float(np.abs(x.fused - y.fused).max()), float(np.abs(x.a - y.a).max()))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtime_backend_matches_torch_fp32(tiny, runtime):
    _needs(runtime)
    a, b = _pair()
    ref = Fuser(tiny, FuseConfig(device="cpu", backend="torch")).fuse(a, b, DEG_A, DEG_B)
    fuser = Fuser(tiny, FuseConfig(device="cpu", backend=runtime))
    assert fuser.backend.name == runtime
    out = fuser.fuse(a, b, DEG_A, DEG_B)
    assert out.fused.shape == ref.fused.shape == (48, 80, 3)
    assert _max_diff(out, ref) < TOL
    # a batch of two (dynamic N) and another size (dynamic H, W, padded to the network's multiple)
    a2, b2 = _pair(36, 52)
    outs = fuser.fuse_batch([a2, a2[::-1].copy()], [b2, b2[::-1].copy()], DEG_A, DEG_B)
    refs = Fuser(tiny, FuseConfig(device="cpu", backend="torch")).fuse_batch(
        [a2, a2[::-1].copy()], [b2, b2[::-1].copy()], DEG_A, DEG_B
    )
    assert all(_max_diff(o, r) < TOL for o, r in zip(outs, refs))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_flip_ensemble_runs_on_every_backend(tiny, runtime):
    _needs(runtime)
    a, b = _pair()
    config = {"device": "cpu", "flip_ensemble": True}
    ref = Fuser(tiny, FuseConfig(backend="torch", **config)).fuse(a, b, DEG_A, DEG_B)
    out = Fuser(tiny, FuseConfig(backend=runtime, **config)).fuse(a, b, DEG_A, DEG_B)
    assert _max_diff(out, ref) < TOL


def test_shipped_model_on_the_fastest_backend_matches_torch():
    fastest = installed_backends()[0]
    if fastest == "torch":
        pytest.skip("no fast runtime installed")
    model = load_checkpoint(resolve_checkpoint(None, task="ivif", progress=False))
    a, b = camera(40, 48), astronaut(80, 96)
    ref = Fuser(model, FuseConfig(device="cpu", backend="torch")).fuse(a, b, DEG_A, DEG_B)
    out = Fuser(model, FuseConfig(device="cpu", backend=fastest)).fuse(a, b, DEG_A, DEG_B)
    assert _max_diff(out, ref) < TOL
    assert float(np.abs(out.b - ref.b).max()) < TOL


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_corrupt_or_stale_export_cache_is_rebuilt(tiny, runtime, tmp_path, monkeypatch):
    _needs(runtime)
    monkeypatch.setenv("MMFUSE_CACHE", str(tmp_path / "cache"))
    a, b = _pair()
    first = Fuser(tiny, FuseConfig(device="cpu", backend=runtime)).fuse(a, b, DEG_A, DEG_B)
    folder = cache_dir() / "export"
    sidecars = sorted(folder.glob("*.json"))
    assert sidecars, "the export was not cached"
    records = {p: json.loads(p.read_text())["files"] for p in sidecars}
    blobs = [folder / name for record in records.values() for name in record]
    # a truncated / overwritten file: its sha256 no longer matches the sidecar
    for blob in blobs:
        blob.write_bytes(blob.read_bytes()[: len(blob.read_bytes()) // 2] + b"garbage")
    again = Fuser(tiny, FuseConfig(device="cpu", backend=runtime)).fuse(a, b, DEG_A, DEG_B)
    assert _max_diff(again, first) < 1e-6
    for (
        sidecar
    ) in sidecars:  # rebuilt: every file matches its new sidecar (an OpenVINO IR is not byte-stable)
        for name, digest in json.loads(sidecar.read_text())["files"].items():
            assert sha256_file(folder / name) == digest
    # a sidecar that is not JSON, and a missing file
    sidecars[0].write_text("{not json")
    blobs[-1].unlink()
    third = Fuser(tiny, FuseConfig(device="cpu", backend=runtime)).fuse(a, b, DEG_A, DEG_B)
    assert _max_diff(third, first) < 1e-6
    assert all(p.is_file() for p in blobs)
    assert not list(folder.glob(".*"))  # no staging folders or temporaries left


def test_another_checkpoint_gets_its_own_export(tiny, tmp_path, monkeypatch):
    _needs("onnxruntime")
    monkeypatch.setenv("MMFUSE_CACHE", str(tmp_path))
    other = FusionModel(tiny.config)
    other.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        other.net.head.bias.add_(0.1)
    a, b = _pair()
    x = Fuser(tiny, FuseConfig(device="cpu", backend="onnxruntime")).fuse(a, b, DEG_A, DEG_B)
    y = Fuser(other, FuseConfig(device="cpu", backend="onnxruntime")).fuse(a, b, DEG_A, DEG_B)
    assert len(list((tmp_path / "export").glob("*.onnx"))) == 2
    assert _max_diff(x, y) > 1e-3


def test_auto_picks_the_fastest_installed_on_cpu_and_torch_on_cuda(monkeypatch):
    assert pick_backend("auto", torch.device("cuda")) == "torch"
    assert pick_backend("auto", torch.device("cpu")) == installed_backends()[0]
    monkeypatch.setattr(BackendSpec, "version", lambda self: None)
    assert installed_backends() == ["torch"]
    assert pick_backend("auto", torch.device("cpu")) == "torch"


def test_a_runtime_that_is_not_installed_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(BackendSpec, "version", lambda self: None)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    from mmfuse_cli.io import write_image

    write_image(a / "x.png", camera(32, 32), 8)
    write_image(b / "x.png", to_gray(astronaut(32, 32)), 8)
    for runtime, extra in (("openvino", "openvino"), ("onnxruntime", "onnx")):
        result = CliRunner().invoke(
            app, ["run", str(a), str(b), "-o", str(tmp_path / "o"), "--backend", runtime]
        )
        assert result.exit_code == 2
        assert f"--backend: {runtime} is not installed: pip install 'mmfuse[{extra}]'" in result.output


def test_runtimes_refuse_reduced_precision_and_cuda(tiny):
    from mmfuse_cli.errors import InvalidValueError

    runtime = next((r for r in RUNTIMES if r in installed_backends()), None)
    if runtime is None:
        pytest.skip("no fast runtime installed")
    with pytest.raises(InvalidValueError) as exc:
        pick_backend(runtime, torch.device("cuda"))
    assert exc.value.field == "backend"
    with pytest.raises(InvalidValueError) as exc:
        Fuser(tiny, FuseConfig(device="cpu", backend=runtime, precision="bf16"))
    assert exc.value.field == "precision"


def test_info_shows_the_backends_and_the_auto_choice():
    from mmfuse_cli.device import resolve_device

    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0
    rows = {line[:12].strip(): line[12:].strip() for line in result.output.splitlines()}
    assert rows["backends"].endswith("torch")
    assert all(name in rows["backends"] for name in installed_backends())
    assert rows["auto backend"] == pick_backend("auto", resolve_device("auto"))

import json

import pytest
import torch
from safetensors.torch import save_file

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig
from mmfuse_cli.sampling.observation import Observation, ObservationBatch
from mmfuse_cli.sampling.sampler import DenoiserInputs, sample


def _inputs(n, h, w):
    return DenoiserInputs(
        2, 3, torch.tensor(0.5), torch.rand(n, 1, h, w), torch.rand(n, 1, h, w), torch.rand(n, 6)
    )


def test_network_outputs_noise_estimate_and_weight_map_in_range():
    model = FusionModel(ModelConfig(base_channels=8, levels=3))
    torch.nn.init.normal_(model.net.head.weight, std=0.5)
    e, m = model.net(torch.rand(2, 3, 32, 48), _inputs(2, 32, 48))
    assert e.shape == (2, 3, 32, 48) and m.shape == (2, 1, 32, 48)
    assert float(m.detach().min()) >= 0 and float(m.detach().max()) <= 1
    assert model.net.size_multiple == 4


def test_untrained_network_predicts_zero_noise_and_half_weights():
    model = FusionModel(ModelConfig(base_channels=8, levels=2))
    e, m = model.net(torch.rand(1, 3, 16, 16), _inputs(1, 16, 16))
    assert float(e.detach().abs().max()) == 0.0
    assert torch.allclose(m, torch.full_like(m, 0.5))


def test_checkpoint_round_trip_builds_the_network_from_the_file_alone(tmp_path):
    config = ModelConfig(base_channels=8, levels=3, blocks_per_level=2, steps=4, task="mif")
    model = FusionModel(config)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"seed": 3, "note": "x"})
    loaded = load_checkpoint(path)
    assert loaded.config == config
    assert loaded.metadata["task"] == "mif" and json.loads(loaded.metadata["seed"]) == 3
    y = torch.rand(1, 1, 20, 20)
    obs = ObservationBatch(Observation(y, Degradation(bits=0, noise=0.05)))
    with torch.no_grad():
        a = sample(model.net, obs, obs, model.sampler)
        b = sample(loaded.net, obs, obs, loaded.sampler)
    assert torch.equal(a.f, b.f)


def test_exact_final_fusion_is_stored_in_the_checkpoint_and_older_configs_load_without_it(tmp_path):
    model = FusionModel(ModelConfig(base_channels=8, levels=2, task="mif", exact_final_fusion=True))
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "m.safetensors"))
    assert loaded.config.exact_final_fusion and loaded.sampler.exact_final_fusion
    older = json.dumps({"base_channels": 8, "levels": 2, "blocks_per_level": 1, "steps": 3, "task": "mif"})
    assert ModelConfig.from_json(older).exact_final_fusion is False


def test_foreign_or_broken_files_are_rejected(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not an mmfuse checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    model = FusionModel(ModelConfig(base_channels=8, levels=2))
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    tensors = {k: v for k, v in model.state_dict().items()}
    tensors["net.head.bias"] = torch.full_like(tensors["net.head.bias"], float("nan"))
    from mmfuse_cli.model.checkpoint import read_checkpoint_metadata

    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=read_checkpoint_metadata(path))
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(tmp_path / "nan.safetensors")
    del tensors["net.head.bias"]
    save_file(tensors, str(tmp_path / "short.safetensors"), metadata=read_checkpoint_metadata(path))
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(tmp_path / "short.safetensors")

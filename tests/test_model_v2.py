"""Model v2 (pixel-unshuffle front end, capped width) and runs that outlast one machine (portable state)."""

import dataclasses
import json

import pytest
import torch
from conftest import tiny_train_config, write_tiny_training_set
from safetensors import safe_open

from mmfuse_cli.model.checkpoint import load_checkpoint, save_checkpoint
from mmfuse_cli.model.network import FusionModel, FusionUNet, ModelConfig
from mmfuse_cli.training.loop import train
from mmfuse_cli.training.state import MOMENT_DTYPE


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_training_set(tmp_path_factory.mktemp("data"))


def test_unshuffled_network_works_at_half_resolution_and_keeps_the_output_shapes():
    config = ModelConfig(base_channels=8, levels=3, unshuffle=2, max_channels=12, quantisation_aware=True)
    net = FusionUNet(config)
    assert net.size_multiple == 8  # 2 (unshuffle) x 2 ** (levels - 1)
    assert [blocks[0].conv1.in_channels for blocks in net.down_blocks] == [8, 12, 12]  # capped at 12
    assert net.stem.in_channels == 20 and net.head.out_channels == 16
    for p in net.head.parameters():  # a trained head, so the shuffle is visible in the output
        torch.nn.init.normal_(p)
    z, pinv = torch.rand(2, 3, 16, 24), torch.rand(2, 1, 16, 24)
    with torch.no_grad():
        e, m = net.denoise(z, pinv, pinv, torch.rand(2, config.cond_dim))
    assert e.shape == (2, 3, 16, 24) and m.shape == (2, 1, 16, 24)
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    # pixel (0, 0) and (0, 1) of the full-resolution output come from different head channels of one
    # half-resolution position: they differ, as they would not if the output were an upsampled half-size map
    assert not torch.allclose(e[:, :, 0, 0], e[:, :, 0, 1])


def test_v1_configs_build_the_v1_network_and_unknown_factors_are_refused():
    v1 = ModelConfig.from_json(json.dumps({"base_channels": 4, "levels": 2, "task": "ivif"}))
    assert v1.unshuffle == 1 and v1.max_channels == 0
    assert FusionUNet(v1).stem.in_channels == 5
    with pytest.raises(ValueError, match="unshuffle must be 1 or 2"):
        FusionUNet(dataclasses.replace(v1, unshuffle=3))


def test_a_v2_checkpoint_round_trips_by_its_own_metadata(tmp_path):
    model = FusionModel(ModelConfig(base_channels=8, levels=2, unshuffle=2, max_channels=8))
    path = save_checkpoint(model, tmp_path / "v2.safetensors")
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.net.size_multiple == 4
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_run_resumes_on_a_fresh_checkout_from_its_portable_state(data_root, tmp_path):
    kept = tmp_path / "repo/training-state/run"
    quiet = lambda s: None  # noqa: E731
    train(tiny_train_config(data_root, tmp_path / "full", 6, unshuffle=2), log=quiet)
    # the "first machine": 4 steps, keeping a portable state; then its run folder is lost
    train(
        tiny_train_config(data_root, tmp_path / "m1", 6, pause_at=4, unshuffle=2, portable_dir=str(kept)),
        quiet,
    )
    lines = []
    train(tiny_train_config(data_root, tmp_path / "m2", 6, unshuffle=2, portable_dir=str(kept)), lines.append)
    assert any("portable state" in line for line in lines) and any("at step 4" in line for line in lines)
    with safe_open(str(kept / "state.safetensors"), framework="pt") as handle:
        moments = [handle.get_tensor(k) for k in handle.keys() if k.endswith(".exp_avg_sq")]
        weights = [handle.get_tensor(k) for k in handle.keys() if k.startswith("model.net.")]
    assert moments and all(m.dtype == MOMENT_DTYPE for m in moments)
    assert all(w.dtype == torch.float32 for w in weights)
    log = [json.loads(line) for line in (tmp_path / "m2/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]  # the whole curve, across both machines
    resumed = load_checkpoint(tmp_path / "m2/model.safetensors")
    straight = load_checkpoint(tmp_path / "full/model.safetensors")
    assert resumed.config.unshuffle == 2
    # weights resume exactly and only the moments are rounded: the two runs end close, not bit-equal
    for (name, a), (_, b) in zip(resumed.state_dict().items(), straight.state_dict().items()):
        assert torch.allclose(a, b, atol=2e-3), name

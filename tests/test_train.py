"""Training on a tiny generated data set: determinism, resume, export (CI must not train for long)."""

import hashlib
import json
import math

import pytest
import torch
from conftest import smooth_scene, tiny_train_config, write_tiny_training_set
from safetensors.torch import load_file

from mmfuse_cli.degradation.draws import random_degradation
from mmfuse_cli.io import write_image
from mmfuse_cli.model.checkpoint import load_checkpoint, save_checkpoint
from mmfuse_cli.training.config import TrainConfig, fill_architecture
from mmfuse_cli.training.data import PairImages, random_crops
from mmfuse_cli.training.loop import train
from mmfuse_cli.training.losses import fusion_loss, ssim_torch


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_training_set(tmp_path_factory.mktemp("data"))


def _cfg(root, out, steps, pause_at=None):
    return tiny_train_config(root, out, steps, pause_at=pause_at)


def test_training_is_deterministic_resumable_and_exports_metadata(data_root, tmp_path):
    train(_cfg(data_root, tmp_path / "a", 6), log=lambda s: None)
    train(_cfg(data_root, tmp_path / "b", 6, pause_at=3), log=lambda s: None)  # interrupted run ...
    train(_cfg(data_root, tmp_path / "b", 6), log=lambda s: None)  # ... resumed to the same length
    a = load_file(str(tmp_path / "a/model.safetensors"))
    b = load_file(str(tmp_path / "b/model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    model = load_checkpoint(tmp_path / "a/model.safetensors")
    meta = model.metadata
    assert meta["task"] == "ivif" and json.loads(meta["seed"]) == 5 and json.loads(meta["steps_trained"]) == 6
    assert "val_psnr_a" in json.loads(meta["final"])
    log = [json.loads(line) for line in (tmp_path / "a/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]
    # the optimizer actually changed the network
    assert float(a["net.head.weight"].abs().sum()) > 0


def test_init_from_grows_a_checkpoint_without_changing_its_output_then_fine_tunes(data_root, tmp_path):
    import dataclasses

    import numpy as np

    from mmfuse_cli.degradation.spec import Degradation
    from mmfuse_cli.engine.fuser import Fuser
    from mmfuse_cli.model.network import FusionModel
    from mmfuse_cli.training.state import initialise_from

    train(_cfg(data_root, tmp_path / "base", 4), log=lambda s: None)
    base_path = tmp_path / "base/model.safetensors"
    base = load_checkpoint(base_path)
    grown = FusionModel(dataclasses.replace(base.config, blocks_per_level=3))
    copied, new = initialise_from(grown, base_path)
    assert copied == len(base.state_dict()) and new > 0
    rng = np.random.default_rng(0)
    a, b = rng.random((40, 56), dtype=np.float32), rng.random((40, 56), dtype=np.float32)
    d = Degradation(blur=1.0, noise=0.03)
    before, after = Fuser(base).fuse(a, b, d, d), Fuser(grown.eval()).fuse(a, b, d, d)
    assert np.array_equal(before.fused, after.fused) and np.array_equal(before.a, after.a)

    # extra blocks at the deepest level only: the same function too, and the config says so
    deep = FusionModel(dataclasses.replace(base.config, bottom_blocks=2))
    copied, new = initialise_from(deep, base_path)
    # two blocks: conv1, conv2, film (weight + bias each)
    assert copied == len(base.state_dict()) and new == 2 * 6
    assert len(deep.net.down_blocks[-1]) == base.config.blocks_per_level + 2
    assert all(
        len(deep.net.down_blocks[i]) == base.config.blocks_per_level for i in range(base.config.levels - 1)
    )
    deeper = Fuser(deep.eval()).fuse(a, b, d, d)
    assert np.array_equal(before.fused, deeper.fused) and np.array_equal(before.a, deeper.a)
    save_checkpoint(deep, tmp_path / "deep.safetensors")
    assert load_checkpoint(tmp_path / "deep.safetensors").config.bottom_blocks == 2
    assert base.config.bottom_blocks == 0

    # extra blocks at full resolution, before the head: the same function, at full width, and recorded
    top = FusionModel(dataclasses.replace(base.config, top_blocks=2))
    copied, new = initialise_from(top, base_path)
    assert copied == len(base.state_dict()) and new == 2 * 6
    assert [b.conv1.in_channels for b in top.net.top_blocks] == [base.config.base_channels] * 2
    topped = Fuser(top.eval()).fuse(a, b, d, d)
    assert np.array_equal(before.fused, topped.fused) and np.array_equal(before.a, topped.a)
    save_checkpoint(top, tmp_path / "top.safetensors")
    assert load_checkpoint(tmp_path / "top.safetensors").config.top_blocks == 2
    assert base.config.top_blocks == 0

    # a smaller network or another task cannot take the checkpoint
    with pytest.raises(ValueError, match="does not fit"):
        initialise_from(FusionModel(dataclasses.replace(base.config, base_channels=2)), base_path)
    with pytest.raises(ValueError, match="cannot start a mif run"):
        initialise_from(FusionModel(dataclasses.replace(base.config, task="mif")), base_path)

    # fine-tuning through train(): starts from the checkpoint, records it, and changes the new blocks
    cfg = dataclasses.replace(
        _cfg(data_root, tmp_path / "ft", 2), blocks_per_level=3, init_from=str(base_path)
    )
    lines = []
    train(cfg, log=lines.append)
    assert any("initialised from" in line for line in lines)
    tuned = load_checkpoint(tmp_path / "ft/model.safetensors")
    recorded = json.loads(tuned.metadata["train_config"])
    assert recorded["init_from"] == str(base_path)
    assert recorded["init_from_sha256"] == hashlib.sha256(base_path.read_bytes()).hexdigest()
    new_conv = tuned.state_dict()["net.down_blocks.0.2.conv2.weight"]
    assert float(new_conv.abs().sum()) > 0

    # resuming needs no architecture flags (taken from the state) and keeps the record of the start
    resumed_cfg = dataclasses.replace(
        cfg, steps=3, base_channels=None, levels=None, blocks_per_level=None, init_from=None
    )
    resumed_cfg.init_from_sha256 = None
    train(resumed_cfg, log=lambda s: None)
    resumed = load_checkpoint(tmp_path / "ft/model.safetensors")
    assert resumed.config.blocks_per_level == 3 and resumed.config.base_channels == base.config.base_channels
    assert json.loads(resumed.metadata["train_config"])["init_from_sha256"] == recorded["init_from_sha256"]

    # fine-tuning without architecture flags takes the checkpoint's architecture
    plain = dataclasses.replace(
        _cfg(data_root, tmp_path / "plain", 1), base_channels=None, levels=None, init_from=str(base_path)
    )
    train(plain, log=lambda s: None)
    assert load_checkpoint(tmp_path / "plain/model.safetensors").config == base.config


def test_random_degradations_cover_every_kind_within_range():
    import numpy as np

    rng = np.random.default_rng(0)
    degs = [random_degradation(rng) for _ in range(400)]
    assert {d.scale for d in degs} == {1, 2, 4}
    assert max(d.noise for d in degs) <= 0.1 and max(d.blur for d in degs) <= 2.5
    assert any(d.is_clean for d in degs) and any(d.blur and d.scale > 1 and d.noise for d in degs)


def _replicated_pair(seed: int, h: int = 70, w: int = 90) -> PairImages:
    """A pair stored as 2 x 2 pixel blocks (a low-resolution scan enlarged by replication, like Harvard PET)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = (np.kron(rng.random((h // 2, w // 2)), np.ones((2, 2))).astype(np.float32) for _ in range(2))
    return PairImages(f"x/{seed}", a, b)


def _block_spread(crops: torch.Tensor) -> float:
    """Largest spread inside the 2 x 2 blocks that start at even rows and columns: 0 when the grid is kept."""
    n, _, h, w = crops.shape
    blocks = crops.reshape(n, h // 2, 2, w // 2, 2)
    return float((blocks.amax(dim=(2, 4)) - blocks.amin(dim=(2, 4))).max())


def test_aligned_crops_keep_the_block_grid_of_pixel_replicated_images():
    import numpy as np

    pairs = [_replicated_pair(seed) for seed in range(3)]
    a, b, _ = random_crops(pairs, 64, 32, np.random.default_rng(0), align=2)
    assert _block_spread(a) == 0.0 and _block_spread(b) == 0.0  # flips included (half of the 64 crops)
    a1, *_ = random_crops(pairs, 64, 32, np.random.default_rng(0), align=1)
    assert _block_spread(a1) > 0.5  # odd corners cut the blocks


def test_unaligned_crops_are_the_draws_every_earlier_run_made():
    import numpy as np

    pairs = [_replicated_pair(seed) for seed in range(3)]
    a, b, _ = random_crops(pairs, 5, 32, np.random.default_rng(3))
    rng = np.random.default_rng(3)  # the draws before ``align`` existed: pair, top, left, flips
    for i in range(5):
        p = pairs[rng.integers(len(pairs))]
        top, left = rng.integers(p.a.shape[0] - 32 + 1), rng.integers(p.a.shape[1] - 32 + 1)
        want = p.a[top : top + 32, left : left + 32]
        if rng.random() < 0.5:
            want = want[:, ::-1]
        if rng.random() < 0.5:
            want = want[::-1]
        assert np.array_equal(a[i, 0].numpy(), want)


def _high_band_share(crops: torch.Tensor) -> float:
    """Share of the crops' spectral energy (mean removed) above 0.3 cycles/pixel."""
    x = crops[:, 0].double()
    spectrum = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs() ** 2
    fy = torch.fft.fftfreq(x.shape[-2])[:, None]
    fx = torch.fft.fftfreq(x.shape[-1])[None, :]
    high = (fy**2 + fx**2).sqrt() > 0.3
    return float(spectrum[:, high].sum() / spectrum.sum())


def test_zoomed_crops_are_band_limited_enlargements_of_both_sources_alike():
    import numpy as np

    rng = np.random.default_rng(0)
    # white: about 70 % of its energy lies above 0.3 cycles/pixel
    noise = rng.random((96, 96)).astype(np.float32)
    pairs = [PairImages("white", noise, 1.0 - noise)]
    plain, *_ = random_crops(pairs, 16, 32, np.random.default_rng(1))
    a, b, _ = random_crops(pairs, 16, 32, np.random.default_rng(1), zoom_fraction=1.0, max_zoom=2.5)
    assert _high_band_share(plain) > 0.2
    # enlarged x1.25-2.5: little left near Nyquist
    assert _high_band_share(a) < 0.25 * _high_band_share(plain)
    assert torch.allclose(a + b, torch.ones_like(a), atol=1e-6)  # one window, one zoom, one flip for both
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_zoom_fraction_zooms_about_that_share_of_crops():
    import numpy as np

    rng = np.random.default_rng(0)
    noise = rng.random((64, 64)).astype(np.float32)
    pairs = [PairImages("white", noise, noise)]
    a, *_ = random_crops(pairs, 400, 32, np.random.default_rng(2), zoom_fraction=0.3)
    zoomed = sum(_high_band_share(a[i : i + 1]) < 0.5 for i in range(len(a)))  # white crops: about 0.7
    assert 80 <= zoomed <= 160  # 120 expected


def _kind(d) -> str:
    parts = [name for name, on in (("blur", d.blur > 0), ("down", d.scale > 1), ("noise", d.noise > 0)) if on]
    return "+".join(parts) or "clean"


def test_kind_weights_set_how_often_each_degradation_kind_is_drawn():
    import numpy as np

    from mmfuse_cli.degradation.draws import DEGRADATION_KINDS, kind_probabilities

    rng = np.random.default_rng(1)
    kind_p = kind_probabilities({"blur": 3, "blur+noise": 2, "clean": 0})
    draws = [_kind(random_degradation(rng, kind_p=kind_p)) for _ in range(6000)]
    share = {kind: draws.count(kind) / len(draws) for kind in DEGRADATION_KINDS}
    assert share["clean"] == 0
    assert abs(share["blur"] - 3 / 10) < 0.02 and abs(share["blur+noise"] - 2 / 10) < 0.02
    assert all(
        abs(share[k] - 1 / 10) < 0.015 for k in DEGRADATION_KINDS if k not in ("clean", "blur", "blur+noise")
    )

    # No weights: exactly the draws every earlier run made (the implementation before kind weights, copied
    # here), so those runs still resume bit-identically.
    def legacy_draw(rng):
        kind = DEGRADATION_KINDS[rng.integers(len(DEGRADATION_KINDS))]
        blur = float(rng.uniform(0.5, 2.5)) if "blur" in kind else 0.0
        scale = int(rng.choice([2, 4])) if "down" in kind else 1
        noise = float(rng.uniform(0.01, 0.1)) if "noise" in kind else 0.0
        return (round(blur, 3), scale, round(noise, 4))

    legacy, new = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(50):
        d = random_degradation(new)
        assert (d.blur, d.scale, d.noise) == legacy_draw(legacy)


def test_bad_kind_weights_and_source_losses_are_refused_with_the_reason():
    from typer.testing import CliRunner

    from mmfuse_cli.cli import app
    from mmfuse_cli.degradation.draws import DEGRADATION_KINDS, parse_kind_weights

    assert parse_kind_weights(["blur=3", " noise = 0.5"]) == {"blur": 3.0, "noise": 0.5}
    for bad, reason in (
        ("blur", "expected KIND=WEIGHT"),
        ("blurr=2", "unknown degradation kind 'blurr'"),
        ("blur=-1", "must be finite, >= 0"),
    ):
        result = CliRunner().invoke(app, ["train", "--task", "mif", "--kind-weight", bad, "-o", "unused"])
        assert result.exit_code == 2 and reason in result.output, (bad, result.output)
    with pytest.raises(ValueError, match="not all 0"):
        parse_kind_weights([f"{kind}=0" for kind in DEGRADATION_KINDS])
    result = CliRunner().invoke(app, ["train", "--task", "mif", "--src-loss", "mse", "-o", "unused"])
    assert result.exit_code == 2 and "--src-loss must be one of l1, log, logrmse, got 'mse'" in result.output


def test_losses_are_zero_for_perfect_output_and_ssim_is_one_for_identical():
    x = torch.rand(2, 1, 32, 32)
    assert float(ssim_torch(x, x)) == pytest.approx(1.0, abs=1e-5)

    class Out:
        x1 = x
        x2 = x
        f = x

    cfg = TrainConfig()
    losses = fusion_loss(Out, x, x, "ivif", cfg)
    assert float(losses["src"]) == 0 and float(losses["int"]) == 0 and float(losses["grad"]) < 1e-3


def test_log_rmse_source_term_is_minus_the_mean_psnr_of_the_restored_sources():
    """src_loss="logrmse": 0.25 * mean_i [log(RMSE1_i + 1e-3) + log(RMSE2_i + 1e-3)], hand-computed."""
    clean = torch.full((2, 1, 16, 16), 0.5)
    x1 = clean.clone()
    x1[0] += 0.1  # sample 0: RMSE 0.1 (20 dB); sample 1: a 0.2 step on a quarter of the pixels -> RMSE 0.1
    x1[1, :, :8, :8] += 0.2
    x2 = clean + 0.01  # RMSE 0.01 (40 dB) on both

    class Out:
        f = clean

    Out.x1, Out.x2 = x1, x2
    # f equals both clean sources, so the MIF intensity and SSIM terms are 0 and the total is the source term
    src_term = float(fusion_loss(Out, clean, clean, "mif", TrainConfig(src_loss="logrmse"))["total"])
    expected = 0.25 * (math.log(0.1 + 1e-3) + math.log(0.01 + 1e-3))
    assert src_term == pytest.approx(expected, abs=1e-5)
    # the L1 version ranks the two x1 samples differently (mean |error| 0.1 vs 0.05): RMSE is what PSNR sees
    log_l1 = float(fusion_loss(Out, clean, clean, "mif", TrainConfig(src_loss="log"))["total"])
    assert log_l1 < src_term - 0.05
    with pytest.raises(ValueError, match="src_loss must be one of l1, log, logrmse, got 'mse'"):
        train(TrainConfig(src_loss="mse"))  # refused before any data is read


def test_mif_ssim_weight_scales_only_the_structure_term():
    """w_ssim multiplies (1 - SSIM(f, a)) + (1 - SSIM(f, b)) in the MIF total and nothing else."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 1, 32, 32, generator=gen), torch.rand(2, 1, 32, 32, generator=gen)

    class Out:
        x1, x2 = a, b  # perfect restorations: the source term is 0
        f = 0.5 * (a + b)

    one = fusion_loss(Out, a, b, "mif", TrainConfig(w_ssim=1.0))
    three = fusion_loss(Out, a, b, "mif", TrainConfig(w_ssim=3.0))
    assert float(one["ssim"]) > 0.5  # the average of two unrelated images is far from both
    assert float(three["ssim"]) == pytest.approx(float(one["ssim"]))
    assert float(three["total"] - one["total"]) == pytest.approx(2.0 * float(one["ssim"]), rel=1e-5)


def test_exact_final_fusion_follows_the_starting_checkpoint_unless_given():
    from mmfuse_cli.model.network import ModelConfig

    # from scratch: the original DRFusion sampler
    assert fill_architecture(TrainConfig(), None).exact_final_fusion is False
    exact = ModelConfig(exact_final_fusion=True)
    assert fill_architecture(TrainConfig(), exact).exact_final_fusion is True  # fine-tuning keeps it
    assert fill_architecture(TrainConfig(exact_final_fusion=False), exact).exact_final_fusion is False
    assert fill_architecture(TrainConfig(exact_final_fusion=True), ModelConfig()).exact_final_fusion is True


def test_training_on_your_own_folders_skips_unusable_pairs_with_a_reason(data_root, tmp_path):
    import dataclasses

    import numpy as np

    a_dir, b_dir = tmp_path / "mine/ir", tmp_path / "mine/vis"
    a_dir.mkdir(parents=True)
    b_dir.mkdir(parents=True)
    for i in range(5):
        write_image(a_dir / f"p{i}.png", smooth_scene(48, 64, seed=i), 8)
        write_image(b_dir / f"p{i}.png", smooth_scene(48, 64, seed=50 + i), 8)
    write_image(a_dir / "odd.png", np.zeros((48, 64), np.float32), 8)  # partner has another size
    write_image(b_dir / "odd.png", np.zeros((40, 64), np.float32), 8)
    write_image(a_dir / "tiny.png", np.zeros((16, 16), np.float32), 8)  # smaller than the crop
    write_image(b_dir / "tiny.png", np.zeros((16, 16), np.float32), 8)
    cfg = dataclasses.replace(
        _cfg(tmp_path / "nowhere", tmp_path / "run", 2), folders=[[str(a_dir), str(b_dir)]]
    )
    lines = []
    train(cfg, log=lines.append)
    assert any("odd.png" in line and "partner" in line for line in lines)
    assert any("tiny.png" in line and "smaller than the 32-pixel crop" in line for line in lines)
    assert any("4 training pairs, 1 validation pairs" in line for line in lines)
    meta = load_checkpoint(tmp_path / "run/model.safetensors").metadata
    assert json.loads(meta["data"]) == [f"{a_dir}|{b_dir}"]


def test_train_command_rejects_unmatched_folder_lists(tmp_path):
    from typer.testing import CliRunner

    from mmfuse_cli.cli import app

    (tmp_path / "a").mkdir()
    result = CliRunner().invoke(
        app, ["train", "--task", "ivif", "--a", str(tmp_path / "a"), "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "one --b folder per --a folder" in result.output
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--task",
            "ivif",
            "--a",
            str(tmp_path / "a"),
            "--b",
            str(tmp_path / "none"),
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "not a folder" in result.output


def test_small_sets_still_hold_out_one_validation_pair_and_a_single_pair_is_refused():
    import numpy as np

    from mmfuse_cli.training.data import PairImages, split_pairs

    pairs = [
        PairImages(f"k{i}", np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32)) for i in range(4)
    ]
    train_set, val = split_pairs(pairs, 0.1)
    assert [p.key for p in val] == ["k2"] and len(train_set) == 3
    big = [PairImages(f"k{i:02d}", pairs[0].a, pairs[0].b) for i in range(20)]
    assert [p.key for p in split_pairs(big, 0.1)[1]] == ["k05", "k15"]  # unchanged for sets that reach it
    with pytest.raises(ValueError, match="at least 2 pairs"):
        split_pairs(pairs[:1], 0.1)


def test_observe_rounds_like_a_file_except_the_exact_fraction():
    from mmfuse_cli.degradation.spec import Degradation
    from mmfuse_cli.training.data import observe

    clean = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    degs = [Degradation(blur=1.0)] * 8
    rounded = observe(clean, degs, torch.Generator().manual_seed(1), bits=8, exact_fraction=0.0)
    for obs in rounded.items:
        assert obs.bits == 8 and torch.equal(obs.y, torch.round(obs.y * 255) / 255)
    exact = observe(clean, degs, torch.Generator().manual_seed(1), bits=8, exact_fraction=1.0)
    assert all(obs.bits == 0 for obs in exact.items)
    assert not torch.equal(exact.items[0].y, torch.round(exact.items[0].y * 255) / 255)
    mixed = observe(clean, degs, torch.Generator().manual_seed(1), bits=8, exact_fraction=0.5)
    assert {obs.bits for obs in mixed.items} == {0, 8}
    assert all(obs.bits == 0 for obs in observe(clean, degs, torch.Generator(), bits=0).items)


def test_a_checkpoint_that_ignores_bit_depth_starts_an_aware_model_unchanged(data_root, tmp_path):
    import dataclasses

    import numpy as np

    from mmfuse_cli.degradation.spec import Degradation
    from mmfuse_cli.engine.fuser import Fuser
    from mmfuse_cli.model.network import FusionModel
    from mmfuse_cli.training.state import initialise_from

    old_cfg = dataclasses.replace(
        _cfg(data_root, tmp_path / "old", 2), quantisation_aware=False, observation_bits=0
    )
    train(old_cfg, log=lambda s: None)
    old_path = tmp_path / "old/model.safetensors"
    old = load_checkpoint(old_path)
    assert not old.config.quantisation_aware and old.config.cond_dim == 8
    aware = FusionModel(dataclasses.replace(old.config, quantisation_aware=True))
    assert aware.config.cond_dim == 10
    initialise_from(aware, old_path)
    aware.eval()
    rng = np.random.default_rng(0)
    a, b = rng.random((40, 56), dtype=np.float32), rng.random((40, 56), dtype=np.float32)
    d = Degradation(blur=1.5)
    before = Fuser(old).fuse(a, b, d, d)
    after = Fuser(aware).fuse(a, b, d, d)
    assert np.allclose(before.fused, after.fused, atol=1e-6) and np.allclose(before.a, after.a, atol=1e-6)
    # once the new terms are non-zero (as training makes them), 8-bit and 16-bit inputs are treated differently
    with torch.no_grad():
        aware.sampler.damp_w.fill_(2.0)
    d16 = dataclasses.replace(d, bits=16)
    eight, sixteen = Fuser(aware).fuse(a, b, d, d), Fuser(aware).fuse(a, b, d16, d16)
    assert float(np.abs(eight.a - sixteen.a).max()) > 1e-3
    # an aware checkpoint cannot go back into a model without the inputs
    aware_path = tmp_path / "aware.safetensors"
    from mmfuse_cli.model.checkpoint import save_checkpoint

    save_checkpoint(aware, aware_path)
    with pytest.raises(ValueError, match="does not fit"):
        initialise_from(FusionModel(old.config), aware_path)


def test_model_from_state_is_the_model_at_the_last_save(data_root, tmp_path):
    from mmfuse_cli.training.state import model_from_state

    train(_cfg(data_root, tmp_path / "run", 2), log=lambda s: None)
    from_state = model_from_state(tmp_path / "run/state.safetensors")
    exported = load_checkpoint(tmp_path / "run/model.safetensors")
    assert from_state.config == exported.config and not from_state.training
    for name, tensor in exported.state_dict().items():
        assert torch.equal(from_state.state_dict()[name], tensor), name

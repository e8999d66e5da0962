"""Single clean images (natural photographs) mixed into training as pairs: the crops, the options, a short run."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import smooth_scene, tiny_train_config, write_tiny_training_set
from scipy.stats import spearmanr

from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.io import write_image
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.training.config import TrainConfig
from mmfuse_cli.training.data import (
    PairImages,
    load_singles,
    random_crops,
    remap_intensity,
    single_image_pair,
)
from mmfuse_cli.training.loop import train


def _textures(count: int, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((size, size)).astype(np.float32) for _ in range(count)]


def test_remapped_source_keeps_every_edge_but_not_the_intensities():
    x = _textures(1)[0]
    for seed in range(20):
        y = remap_intensity(x, np.random.default_rng(seed))
        assert y.dtype == np.float32 and y.min() >= 0.0 and y.max() <= 1.0
        rho = spearmanr(x.ravel(), y.ravel()).statistic
        assert abs(rho) > 0.999  # a monotone tone curve: the same ordering, possibly reversed
        assert np.abs(y - x).mean() > 0.01  # ... but another sensor's values
    polarities = {
        np.sign(spearmanr(x.ravel(), remap_intensity(x, np.random.default_rng(s)).ravel())[0])
        for s in range(20)
    }
    assert polarities == {-1.0, 1.0}  # inverted contrast (hot = dark) is drawn too


def test_single_image_pairs_are_a_scene_seen_twice_or_two_unrelated_crops():
    singles = _textures(4)
    related = unrelated = 0
    for seed in range(40):
        a, b = single_image_pair(singles, 32, np.random.default_rng(seed))
        assert a.shape == b.shape == (32, 32)
        assert any(_contains(image, a) for image in singles)  # source a is a crop of one of the images
        if abs(spearmanr(a.ravel(), b.ravel()).statistic) > 0.999:
            related += 1
        else:
            assert any(_contains(image, b) for image in singles)
            unrelated += 1
    assert 10 <= related <= 30 and 10 <= unrelated <= 30  # even odds


def _contains(image: np.ndarray, crop: np.ndarray) -> bool:
    size = crop.shape[0]
    return any(
        np.array_equal(image[top : top + size, left : left + size], crop)
        for top in range(image.shape[0] - size + 1)
        for left in range(image.shape[1] - size + 1)
    )


def test_single_fraction_sets_the_share_of_crops_and_zero_draws_what_runs_drew_before():
    pairs = [PairImages("flat", np.full((64, 64), 0.5, np.float32), np.full((64, 64), 0.5, np.float32))]
    singles = _textures(3)
    before = random_crops(pairs, 50, 32, np.random.default_rng(7), zoom_fraction=0.3)
    unused = random_crops(pairs, 50, 32, np.random.default_rng(7), zoom_fraction=0.3, singles=singles)
    assert all(torch.equal(x, y) for x, y in zip(before, unused, strict=True))
    a, _, from_single = random_crops(
        pairs, 400, 32, np.random.default_rng(8), singles=singles, single_fraction=0.25
    )
    textured = a.flatten(1).std(dim=1) > 0.05  # flat pair crops have no spread
    assert 70 <= int(textured.sum()) <= 130  # 100 expected
    assert torch.equal(from_single, textured)  # the mask names exactly the crops made from single images
    assert not before.from_single.any()


def test_a_zero_fusion_weight_takes_a_sample_out_of_the_fused_terms_but_not_the_source_term():
    from types import SimpleNamespace

    from mmfuse_cli.training.losses import fusion_loss

    rng = np.random.default_rng(4)
    a, b = (torch.from_numpy(rng.random((2, 1, 32, 32)).astype(np.float32)) for _ in range(2))
    fused = torch.maximum(a, b).clone()
    fused[1] = 0.0  # sample 1's fused image is wrong, its restored sources are right
    out = SimpleNamespace(x1=a.clone(), x2=b.clone(), f=fused)
    for task in ("ivif", "mif"):
        cfg = TrainConfig(task=task)
        plain = fusion_loss(out, a, b, task, cfg)
        kept = fusion_loss(out, a, b, task, cfg, torch.tensor([1.0, 0.0]))
        ones = fusion_loss(out, a, b, task, cfg, torch.ones(2))
        assert float(plain["int"]) > 0.1 and float(kept["int"]) < 1e-6  # only sample 1 had an intensity error
        assert float(kept["total"]) < float(plain["total"])
        assert float(kept["src"]) == float(plain["src"])
        assert torch.allclose(ones["total"], plain["total"], atol=1e-6)  # all-1 weights = the plain mean


def test_single_fraction_is_validated_where_it_enters():
    with pytest.raises(InvalidValueError) as info:
        TrainConfig(single_fraction=0.5)
    assert info.value.field == "single_fraction" and "folder" in str(info.value)
    with pytest.raises(InvalidValueError):
        TrainConfig(single_fraction=1.5, singles=["x"])
    with pytest.raises(InvalidValueError) as info:
        TrainConfig(single_fusion_weight=-0.5)
    assert info.value.field == "single_fusion_weight"


def test_train_command_names_the_flag_of_a_bad_single_fraction(tmp_path):
    from typer.testing import CliRunner

    from mmfuse_cli.cli import app

    result = CliRunner().invoke(
        app, ["train", "--task", "ivif", "--single-fraction", "0.5", "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "--single-fraction" in result.output
    result = CliRunner().invoke(
        app, ["train", "--task", "ivif", "--singles", str(tmp_path / "none"), "-o", str(tmp_path / "r")]
    )
    assert result.exit_code == 2 and "not a folder" in result.output


def test_load_singles_skips_small_images_and_non_images_and_refuses_an_empty_set(tmp_path):
    folder = tmp_path / "natural"
    folder.mkdir()
    write_image(folder / "big.png", smooth_scene(48, 40, seed=1), 8)
    write_image(folder / "small.png", smooth_scene(16, 16, seed=2), 8)
    (folder / "notes.txt").write_text("not an image")
    lines = []
    images = load_singles([folder], 32, lines.append)
    assert len(images) == 1 and images[0].shape == (48, 40) and images[0].dtype == np.float32
    assert any("small.png" in line and "smaller than the 32-pixel crop" in line for line in lines)
    with pytest.raises(ValueError, match="no usable images"):
        load_singles([tmp_path / "missing"], 32)


def test_a_run_with_single_images_trains_and_records_them(tmp_path):
    root = write_tiny_training_set(tmp_path / "data")
    natural = tmp_path / "natural"
    natural.mkdir()
    for i, image in enumerate(_textures(3, 48)):
        write_image(natural / f"{i}.png", image, 8)
    cfg = tiny_train_config(
        root, tmp_path / "run", 2, singles=[str(natural)], single_fraction=0.5, single_fusion_weight=0.0
    )
    lines = []
    train(cfg, log=lines.append)
    assert any("3 single images, 50% of the crops, fused-image terms x0" in line for line in lines)
    meta = load_checkpoint(tmp_path / "run/model.safetensors").metadata
    assert f"{natural}|single" in json.loads(meta["data"])
    assert json.loads(meta["train_config"])["single_fraction"] == 0.5
    assert json.loads(meta["train_config"])["single_fusion_weight"] == 0.0
    plain = dataclasses.replace(cfg, out_dir=str(tmp_path / "plain"), singles=[], single_fraction=0.0)
    train(plain, log=lambda s: None)
    mixed = load_checkpoint(tmp_path / "run/model.safetensors").net.state_dict()
    alone = load_checkpoint(tmp_path / "plain/model.safetensors").net.state_dict()
    assert any(not torch.equal(mixed[k], alone[k]) for k in mixed)  # the single images were trained on

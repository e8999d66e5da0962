"""Shared fixtures: test images made here (or shipped by scikit-image), never dataset files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

REPO = Path(__file__).resolve().parents[1]


def smooth_scene(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A gray float32 [0, 1] image with smooth shading and a few sharp edges (like a real scene)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = 0.4 + 0.2 * np.sin(6 * xx + rng.uniform(0, 3)) * np.cos(4 * yy + rng.uniform(0, 3))
    for _ in range(4):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(4, max(h, w) / 4)
        img[(np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r] += rng.uniform(
            -0.3, 0.3
        )
    return np.clip(img, 0, 1).astype(np.float32)


def camera(h: int = 128, w: int = 128) -> np.ndarray:
    """A crop of scikit-image's 'camera' photograph, float32 [0, 1]."""
    from skimage import data

    return (data.camera()[100 : 100 + h, 150 : 150 + w] / 255.0).astype(np.float32)


def astronaut(h: int = 128, w: int = 128) -> np.ndarray:
    """A crop of scikit-image's colour 'astronaut' photograph, float32 [0, 1] (H, W, 3)."""
    from skimage import data

    return (data.astronaut()[40 : 40 + h, 180 : 180 + w] / 255.0).astype(np.float32)


@pytest.fixture
def mmfuse_cmd() -> list[str]:
    """How to invoke the CLI in a subprocess."""
    return [sys.executable, "-m", "mmfuse_cli"]


@pytest.fixture(scope="session")
def _export_cache(tmp_path_factory):
    """One mmfuse export cache for the session (exports are keyed by the weights, so tests share them)."""
    return tmp_path_factory.mktemp("mmfuse_cache")


@pytest.fixture(autouse=True)
def _isolated_hub(tmp_path_factory, monkeypatch, _export_cache):
    """No test may touch a real hub cache, the user's mmfuse cache or the network."""
    monkeypatch.setenv("MMFUSE_CACHE", str(_export_cache))
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("MMFUSE_WEIGHTS_MANIFEST", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    os.environ.setdefault("OMP_NUM_THREADS", "2")


def write_tiny_checkpoint(folder: Path, seed: int = 1, head_std: float | None = 1e-3, **config) -> Path:
    """An untrained 3-level, 8-channel checkpoint (``seed``; the head drawn with ``head_std``, else left at zero)
    saved as ``folder/tiny.safetensors``: a real model file that fuses in milliseconds."""
    import torch

    from mmfuse_cli.model.checkpoint import save_checkpoint
    from mmfuse_cli.model.network import FusionModel, ModelConfig

    torch.manual_seed(seed)
    model = FusionModel(ModelConfig(base_channels=8, levels=3, **config))
    if head_std is not None:
        torch.nn.init.normal_(model.net.head.weight, std=head_std)
    return save_checkpoint(model, folder / "tiny.safetensors")


def write_tiny_training_set(root: Path, pairs: int = 6) -> Path:
    """``pairs`` 48x64 smooth IR/visible scenes as 8-bit PNGs under ``root/tno/train/{ir,vi}`` (a data root)."""
    from mmfuse_cli.io import write_image

    for i in range(pairs):
        for mod, seed in (("ir", i), ("vi", 100 + i)):
            (root / "tno/train" / mod).mkdir(parents=True, exist_ok=True)
            write_image(root / "tno/train" / mod / f"{i:02d}.png", smooth_scene(48, 64, seed=seed), 8)
    return root


def tiny_train_config(root: Path, out: Path, steps: int, **overrides):
    """A TrainConfig that trains a 2-level, 4-channel network on 32-px crops of ``root`` in seconds."""
    from mmfuse_cli.training.config import TrainConfig

    options = dict(
        task="ivif",
        data=str(root),
        out_dir=str(out),
        steps=steps,
        batch=2,
        crop=32,
        base_channels=4,
        levels=2,
        val_every=2,
        checkpoint_every=2,
        val_fraction=0.2,
        seed=5,
        threads=1,
    )
    return TrainConfig(**{**options, **overrides})

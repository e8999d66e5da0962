"""Bounded memory: ``max_memory`` picks tiles for large pairs only; tiles blend without a visible seam and stay
close to the untiled result."""

import numpy as np
import pytest
from conftest import astronaut, camera

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.config import DEFAULT_MAX_MEMORY, FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.engine.memory import MARGIN, MIN_AUTO_TILE, auto_tile, peak_estimate
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.weights.resolve import resolve_checkpoint

HALO = 32
DEG_A = Degradation(blur=1.5, scale=2, noise=0.02)
DEG_B = Degradation(blur=1.5, noise=0.02)


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(resolve_checkpoint(None, task="ivif", progress=False))


@pytest.mark.parametrize("backend", ["torch", "openvino", "onnxruntime"])
def test_auto_tile_only_tiles_what_would_not_fit(backend):
    assert auto_tile((480, 640), 1, backend, DEFAULT_MAX_MEMORY) is None
    assert auto_tile((3000, 4000), 1, backend, None) is None
    tile = auto_tile((2000, 3000), 1, backend, DEFAULT_MAX_MEMORY)
    assert tile is not None and tile % 64 == 0 and tile >= MIN_AUTO_TILE
    work = (tile + 2 * HALO) ** 2
    assert peak_estimate(6_000_000, work, 1, backend) <= MARGIN * DEFAULT_MAX_MEMORY
    assert peak_estimate(6_000_000, (tile + 64 + 2 * HALO) ** 2, 1, backend) > MARGIN * DEFAULT_MAX_MEMORY
    smaller = auto_tile((2000, 3000), 1, backend, DEFAULT_MAX_MEMORY * 3 // 4)
    assert smaller is not None and smaller < tile
    # a batch needs more room per tile; a 12 Mpx pair's per-pixel part leaves room for the smallest tile only
    assert auto_tile((2000, 3000), 2, backend, DEFAULT_MAX_MEMORY) <= tile
    assert auto_tile((3000, 4000), 1, backend, DEFAULT_MAX_MEMORY) == MIN_AUTO_TILE


def test_manual_tile_overrides_the_budget_and_the_budget_is_validated(shipped):
    fuser = Fuser(shipped, FuseConfig(device="cpu", backend="torch", tile=128))
    assert fuser.tile_for((3000, 4000), 1) == 128 and fuser.tile_for((100, 100), 1) == 128
    assert Fuser(shipped, FuseConfig(device="cpu", backend="torch")).tile_for((3000, 4000), 1) is not None
    assert Fuser(shipped, FuseConfig(device="cpu", max_memory=None)).tile_for((3000, 4000), 1) is None
    with pytest.raises(InvalidValueError) as exc:
        FuseConfig(max_memory=10)
    assert exc.value.field == "max_memory"


def _fuse(model, a, b, **config):
    return Fuser(model, FuseConfig(device="cpu", backend="torch", **config)).fuse(a, b, DEG_A, DEG_B)


def test_tiled_matches_untiled_within_2_levels(shipped):
    """2 x 2 tiles of 128 (+32 context) on a 224 x 192 pair under blur + noise (without the context: 9/255).

    Away from the image's own border the tiles agree within 2/255 (measured 0.48 / 0.06 / 0.47 levels: fused, a,
    b). Within 8 pixels of the left and right image borders they differ by up to 3.1 levels: the pseudo-inverse
    deconvolves a reflect-padded copy in the Fourier domain, so the border sees the far side of what it is given
    (the whole width, or the tile's), and the low luminance noise of the colour source (0.02 x 0.668) lets the
    sampler trust it more. docs/BENCHMARKS.md, Speed, "Tiles"."""
    a, b = camera(96, 112), astronaut(192, 224)
    whole = _fuse(shipped, a, b)
    tiled = _fuse(shipped, a, b, tile=128, overlap=32, halo=32)
    for x, y in ((tiled.fused, whole.fused), (tiled.a, whole.a), (tiled.b, whole.b)):
        diff = np.abs(x - y)
        assert float(diff[8:-8, 8:-8].max()) <= 2 / 255
        assert float(diff.max()) <= 4 / 255


def test_no_seam_on_a_smooth_gradient(shipped):
    """Both sources a smooth diagonal gradient: the tiled output has no step at the tile borders (its first
    differences there are as small as anywhere else)."""
    h, w = 192, 256
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gradient = (0.15 + 0.7 * (xx / w * 0.6 + yy / h * 0.4)).astype(np.float32)
    a = gradient.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    whole = _fuse(shipped, a, gradient)
    tiled = _fuse(shipped, a, gradient, tile=128, overlap=32, halo=32)
    assert float(np.abs(tiled.fused - whole.fused).max()) <= 2 / 255
    for out in (tiled.fused, tiled.a, tiled.b):
        # second differences: zero on a plane; a seam would show as a spike at a tile border
        along_w = np.abs(np.diff(out[8:-8, 8:-8], n=2, axis=1))
        along_h = np.abs(np.diff(out[8:-8, 8:-8], n=2, axis=0))
        assert float(along_w.max()) < 1 / 255 and float(along_h.max()) < 1 / 255

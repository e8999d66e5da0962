"""The bundled checkpoints do their job on images they never saw (guards against shipping a broken file)."""

import numpy as np
import pytest
from conftest import astronaut, camera

from mmfuse_cli.degradation.operators import build_operator
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.degradation.synth import degrade_array
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import quantize, to_gray
from mmfuse_cli.metrics import compute_metrics
from mmfuse_cli.metrics.pixel import psnr_reference as _psnr
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.weights.resolve import resolve_checkpoint


def _observe_8bit(clean: np.ndarray, degradation: Degradation, seed: int) -> np.ndarray:
    """What ``mmfuse degrade`` writes to an 8-bit file, read back as float32 [0, 1]."""
    return quantize(degrade_array(clean, degradation, seed), 8).astype(np.float32) / 255.0


@pytest.mark.parametrize("task", ["ivif", "mif"])
def test_shipped_checkpoint_denoises_unseen_8bit_photographs(task):
    model = load_checkpoint(resolve_checkpoint(f"drfusion-{task}-s", task=task, progress=False))
    assert model.config.task == task and model.config.quantisation_aware
    a, b = camera(128, 128), to_gray(astronaut(128, 128))
    noise = Degradation(noise=0.05)
    ya, yb = _observe_8bit(a, noise, 0), _observe_8bit(b, noise, 1)
    out = Fuser(model).fuse(ya, yb, noise, noise)
    # dense photographs are harder than the IR/visible/medical data it was trained on (+2.0..+4.4 dB measured);
    # the start is the noisy observation itself (identity operator)
    assert _psnr(out.a, a) > _psnr(ya, a) + 1.5
    assert _psnr(out.b, b) > _psnr(yb, b) + 1.5
    # the fused image beats the plain average of the noisy inputs on edge transfer and fidelity to the clean sources
    fused = compute_metrics(out.fused, a, b, names="Qabf,VIF")
    average = compute_metrics(0.5 * (ya + yb), a, b, names="Qabf,VIF")
    assert (
        fused["Qabf"] > average["Qabf"] + 0.02 and fused["VIF"] > average["VIF"] + 0.05
    )  # measured: +0.05, +0.10


def test_shipped_mif_checkpoint_restores_a_pixel_replicated_scan_when_told_its_grid():
    """A 64 x 64 scan stored at 128 x 128 as 2 x 2 blocks (as the Harvard atlas stores PET), then blurred: the
    blur wipes out the block edges, which no deconvolution brings back; told the grid, mmfuse restores them."""
    model = load_checkpoint(resolve_checkpoint("drfusion-mif-s", task="mif", progress=False))
    scan = np.repeat(np.repeat(camera(64, 64), 2, 0), 2, 1)
    mri = to_gray(astronaut(128, 128))
    blur = Degradation(blur=1.5)
    ya, yb = _observe_8bit(scan, blur, 0), _observe_8bit(mri, blur, 1)
    untold = Fuser(model).fuse(ya, yb, blur, blur)
    told = Fuser(model).fuse(ya, yb, Degradation(blur=1.5, grid=2), blur)
    # measured: pseudo-inverse start 32.4 dB, untold 33.0 dB, told 40.5 dB
    assert _psnr(told.a, scan) > _psnr(_pinv(ya, blur), scan) + 5.0
    assert _psnr(told.a, scan) > _psnr(untold.a, scan) + 5.0
    assert np.array_equal(told.b, untold.b)  # the MRI is not on a grid: unchanged


def _pinv(y: np.ndarray, degradation: Degradation) -> np.ndarray:
    """The pseudo-inverse start ``A+ y`` (H, W) in [0, 1]."""
    import torch

    with torch.inference_mode():
        return build_operator(degradation).pinv(torch.from_numpy(y)[None, None])[0, 0].clamp(0, 1).numpy()

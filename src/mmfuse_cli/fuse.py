"""Fusing one pair (or a batch of same-size pairs) with a trained model: colour handling, tiling, precision.

Source ``a`` is the IR / functional image (CT, PET, SPECT), ``b`` the visible image / MRI. Images are float32
in [0, 1], ``(h, w)`` or ``(h, w, 3)`` on their sensor grids; the output grid is ``h * scale`` by ``w * scale``
(both sources must agree on it). Colour: the luminance (BT.601 Y) of a colour source is fused; the chroma
(Cb, Cr) of the colour source is carried to the output grid through that source's pseudo-inverse ``A+`` and
recombined with the fused Y. If both sources are colour, ``b``'s chroma is used for IVIF (visible) and ``a``'s
for MIF (PET/SPECT). A 3-channel image whose channels are equal (e.g. LLVIP infrared JPEGs) counts as gray.
A source with a pixel grid (``Degradation.grid``) keeps it in its restored luminance and in the chroma carried
over (the fused image mixes in the other source's detail and is not held to it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from mmfuse_cli.degradation import Degradation
from mmfuse_cli.ensemble import FlipEnsemble
from mmfuse_cli.io import rgb_to_ycbcr, ycbcr_to_rgb
from mmfuse_cli.model import FusionModel
from mmfuse_cli.operators import project_to_grid
from mmfuse_cli.sampler import DampingMode, Observation, ObservationBatch, SampleOutput, is_finite, sample

Precision = Literal["auto", "fp32", "fp16", "bf16"]


class FusionError(ValueError):
    """A pair cannot be fused (sizes disagree, non-finite output, ...); the message says why."""


@dataclass
class FusedPair:
    """Result for one pair: fused image (gray or RGB) and the restored sources (gray), float32 [0, 1]."""

    fused: np.ndarray
    a: np.ndarray
    b: np.ndarray


def is_effectively_gray(pixels: np.ndarray, tolerance: float = 1.5 / 255) -> bool:
    """True for gray images and for RGB images whose three channels are equal within ``tolerance``."""
    if pixels.ndim == 2:
        return True
    return bool(np.abs(pixels[..., 0] - pixels[..., 1]).max() <= tolerance) and bool(
        np.abs(pixels[..., 0] - pixels[..., 2]).max() <= tolerance
    )


def output_size(shape: tuple[int, ...], degradation: Degradation) -> tuple[int, int]:
    return shape[0] * degradation.scale, shape[1] * degradation.scale


def check_sizes(a_shape, b_shape, deg_a: Degradation, deg_b: Degradation) -> tuple[int, int]:
    """The common output grid, or :class:`FusionError` if the declared scales do not explain the sizes."""
    grid_a, grid_b = output_size(a_shape, deg_a), output_size(b_shape, deg_b)
    if grid_a != grid_b:
        raise FusionError(
            f"size mismatch: a is {a_shape[1]}x{a_shape[0]} (scale {deg_a.scale} -> {grid_a[1]}x{grid_a[0]}), "
            f"b is {b_shape[1]}x{b_shape[0]} (scale {deg_b.scale} -> {grid_b[1]}x{grid_b[0]})"
        )
    return grid_a


class Fuser:
    """Runs a :class:`FusionModel` on pairs.

    Args:
        model: a loaded model (``load_checkpoint``).
        device: torch device to run on.
        steps: sampler steps T (default: the trained T).
        precision: network precision; ``auto`` = bf16 on CUDA, fp32 on CPU. Reduced precision falls back to
            fp32 for a batch whose output is not finite.
        tile: tile size in output pixels (``None`` = whole image); tiles overlap by ``overlap`` pixels and are
            blended with linear ramps.
        damping: sampler damping mode (``learned`` unless experimenting).
        flip_ensemble: average the network over four flips of its input at every step (:mod:`ensemble`):
            about 4x the time for +0.03 to +0.25 dB on the restored sources.
    """

    def __init__(
        self,
        model: FusionModel,
        device: torch.device | str = "cpu",
        steps: int | None = None,
        precision: Precision = "auto",
        tile: int | None = None,
        overlap: int = 32,
        damping: DampingMode = "learned",
        flip_ensemble: bool = False,
    ):
        self.model = model.to(device).eval()
        # NHWC (channels-last) weights let oneDNN pick its blocked convolution kernels: x1.37 (median) on a
        # 2-core AVX2 CPU, same values within 1e-5 (docs/BENCHMARKS.md, Speed). Converts the model in place.
        self.model.net.to(memory_format=torch.channels_last)
        self.device = torch.device(device)
        self.steps = steps or model.config.steps
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision in ("fp16", "bf16") and self.device.type != "cuda":
            raise ValueError(f"--precision {precision} needs CUDA; use fp32 on the CPU")
        self.precision = precision
        if tile is not None and tile < 64:
            raise ValueError(f"--tile must be >= 64 pixels, got {tile}")
        self.tile = tile
        self.overlap = overlap
        self.damping = damping
        self.task = model.config.task
        # what the sampler drives: the network, or the mean of its answers over four flips (x4 time, ensemble.py)
        self.denoiser = FlipEnsemble(self.model.net) if flip_ensemble else self.model.net

    # -- public ---------------------------------------------------------------------------------------------

    def fuse(
        self, a: np.ndarray, b: np.ndarray, deg_a: Degradation, deg_b: Degradation, bits: tuple[int, int] = (8, 8)
    ) -> FusedPair:
        """Fuse one pair (see the module docstring for shapes and colour)."""
        return self.fuse_batch([a], [b], deg_a, deg_b, bits)[0]

    def fuse_batch(
        self,
        a_list: list[np.ndarray],
        b_list: list[np.ndarray],
        deg_a: Degradation,
        deg_b: Degradation,
        bits: tuple[int, int] = (8, 8),
    ) -> list[FusedPair]:
        """Fuse pairs that share sizes, degradations and bit depths in one network batch.

        ``bits``: bit depth of the files ``a`` and ``b`` were read from (8 or 16; 0 = exact values), which tells
        a quantisation-aware model how much rounding noise the observations carry.

        Raises:
            FusionError: sizes disagree, or the model produced NaN/inf (nothing should be written).
        """
        grid = check_sizes(a_list[0].shape, b_list[0].shape, deg_a, deg_b)
        for a, b in zip(a_list, b_list):
            if a.shape[:2] != a_list[0].shape[:2] or b.shape[:2] != b_list[0].shape[:2]:
                raise FusionError("pairs in one batch must share sizes")
        ya = torch.from_numpy(np.stack([_luma(a) for a in a_list]))[:, None]
        yb = torch.from_numpy(np.stack([_luma(b) for b in b_list]))[:, None]
        out = self._sample_tiled(ya.to(self.device), yb.to(self.device), deg_a, deg_b, grid, bits)
        results = []
        for i, (a, b) in enumerate(zip(a_list, b_list)):
            fused_y = out.f[i, 0].float().clamp(0, 1).cpu().numpy()
            fused = self._recolor(fused_y, a, b, deg_a, deg_b)
            results.append(
                FusedPair(
                    fused=fused,
                    a=out.x1[i, 0].float().clamp(0, 1).cpu().numpy(),
                    b=out.x2[i, 0].float().clamp(0, 1).cpu().numpy(),
                )
            )
        return results

    # -- internals ------------------------------------------------------------------------------------------

    def _run_sampler(
        self, ya: torch.Tensor, yb: torch.Tensor, deg_a: Degradation, deg_b: Degradation, bits: tuple[int, int]
    ) -> SampleOutput:
        oa = ObservationBatch(Observation(ya, deg_a, bits[0]))
        ob = ObservationBatch(Observation(yb, deg_b, bits[1]))
        def run() -> SampleOutput:
            return sample(self.denoiser, oa, ob, self.model.sampler, self.steps, self.damping)

        with torch.inference_mode():
            if self.precision == "fp32":
                out = run()
            else:
                dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
                with torch.autocast(self.device.type, dtype=dtype):
                    out = run()
                out = SampleOutput(out.x1.float(), out.x2.float(), out.f.float(), out.m.float())
                if not is_finite(out):
                    out = run()  # the fp32 retry
        if not is_finite(out):
            raise FusionError("the model produced NaN or inf; no output written")
        return out

    def _sample_tiled(
        self, ya, yb, deg_a: Degradation, deg_b: Degradation, grid: tuple[int, int], bits: tuple[int, int]
    ) -> SampleOutput:
        height, width = grid
        if self.tile is None or (height <= self.tile and width <= self.tile):
            return self._run_sampler(ya, yb, deg_a, deg_b, bits)
        unit = int(np.lcm.reduce([deg_a.scale, deg_b.scale, deg_a.grid, deg_b.grid]))  # tiles keep both grids
        tile = max(unit, self.tile // unit * unit)
        overlap = max(unit, self.overlap // unit * unit)
        n = ya.shape[0]
        acc = torch.zeros(n, 4, height, width, device=ya.device)
        weight = torch.zeros(1, 1, height, width, device=ya.device)
        for top in _tile_starts(height, tile, overlap, unit):
            for left in _tile_starts(width, tile, overlap, unit):
                th, tw = min(tile, height - top), min(tile, width - left)
                sa, sb = deg_a.scale, deg_b.scale
                ta = ya[..., top // sa : (top + th) // sa, left // sa : (left + tw) // sa]
                tb = yb[..., top // sb : (top + th) // sb, left // sb : (left + tw) // sb]
                out = self._run_sampler(ta, tb, deg_a, deg_b, bits)
                ramp = _blend_ramp(th, tw, overlap, top > 0, left > 0, top + th < height, left + tw < width, ya.device)
                block = torch.cat([out.x1, out.x2, out.f, out.m], dim=1)
                acc[..., top : top + th, left : left + tw] += block * ramp
                weight[..., top : top + th, left : left + tw] += ramp
        acc = acc / weight
        x1, x2, f, m = acc[:, 0:1], acc[:, 1:2], acc[:, 2:3], acc[:, 3:4]
        if deg_a.grid > 1 or deg_b.grid > 1:
            # the blend ramps mix neighbouring tiles pixel by pixel: put the sources back on their grids, and move
            # the fused image with them as the sampler's correction does
            x1_grid, x2_grid = project_to_grid(x1, deg_a.grid), project_to_grid(x2, deg_b.grid)
            f = f + m * (x1_grid - x1) + (1 - m) * (x2_grid - x2)
            x1, x2 = x1_grid, x2_grid
        return SampleOutput(x1, x2, f, m)

    def _recolor(self, fused_y: np.ndarray, a: np.ndarray, b: np.ndarray, deg_a: Degradation, deg_b: Degradation):
        color_a, color_b = not is_effectively_gray(a), not is_effectively_gray(b)
        if not (color_a or color_b):
            return fused_y
        if color_a and color_b:
            use_a = self.task == "mif"
        else:
            use_a = color_a
        source, deg = (a, deg_a) if use_a else (b, deg_b)
        chroma = rgb_to_ycbcr(source)[..., 1:]
        op = deg.operator()
        t = torch.from_numpy(np.ascontiguousarray(chroma.transpose(2, 0, 1)))[None]
        with torch.inference_mode():
            up = project_to_grid(op.pinv(t), deg.grid)[0].numpy().transpose(1, 2, 0)
        ycc = np.concatenate([fused_y[..., None], up], axis=-1)
        return np.clip(ycbcr_to_rgb(ycc), 0.0, 1.0)


def _luma(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return np.ascontiguousarray(pixels, dtype=np.float32)
    return np.ascontiguousarray(rgb_to_ycbcr(pixels)[..., 0])


def _tile_starts(length: int, tile: int, overlap: int, unit: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = max(unit, tile - overlap)
    starts = list(range(0, length - tile, stride))
    last = (length - tile) // unit * unit
    if not starts or starts[-1] != last:
        starts.append(last)
    return starts


def _blend_ramp(h: int, w: int, overlap: int, top: bool, left: bool, bottom: bool, right: bool, device) -> torch.Tensor:
    """Weights ``(1, 1, h, w)`` rising linearly over ``overlap`` pixels on sides shared with another tile."""

    def axis(n: int, start: bool, end: bool) -> torch.Tensor:
        v = torch.ones(n, device=device)
        ramp = (torch.arange(overlap, device=device, dtype=torch.float32) + 1) / (overlap + 1)
        k = min(overlap, n)
        if start:
            v[:k] = torch.minimum(v[:k], ramp[:k])
        if end:
            v[n - k :] = torch.minimum(v[n - k :], ramp[:k].flip(0))
        return v

    return (axis(h, top, bottom)[:, None] * axis(w, left, right)[None, :])[None, None]

"""Running the sampler on overlapping tiles of a large pair and blending them back (bounded memory).

Tiles are cut on the output grid at multiples of every grid the pair has (both scales and pixel grids), so each
tile's observations are whole sensor pixels and whole grid blocks. Neighbouring tiles overlap by ``overlap``
output pixels and are blended with linear ramps on shared sides only. Each tile is sampled with a context margin
of ``halo`` output pixels on its inner sides, cropped off afterwards: the network's receptive field and the
correction's deconvolution then see the same neighbourhood as on the whole image, so the blended result stays
within 2/255 of the untiled one (``tests/test_tiling_memory.py``; without the margin up to 8/255 at tile borders).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.sampling.correction import project_onto_grids
from mmfuse_cli.sampling.sampler import SampleOutput

SampleFn = Callable[[torch.Tensor, torch.Tensor], SampleOutput]
"""Runs the sampler on one tile's observations ``(N, 1, h_a, w_a)``, ``(N, 1, h_b, w_b)``."""


def sample_tiled(
    run: SampleFn,
    ya: torch.Tensor,
    yb: torch.Tensor,
    deg_a: Degradation,
    deg_b: Degradation,
    grid: tuple[int, int],
    tile: int | None,
    overlap: int,
    halo: int = 0,
) -> SampleOutput:
    """``run`` on the whole pair when it fits in one ``tile`` (or ``tile`` is ``None``), else on overlapping
    tiles of at most ``tile`` x ``tile`` output pixels (plus ``halo`` pixels of context on inner sides),
    blended. ``grid`` is the output (height, width)."""
    height, width = grid
    if tile is None or (height <= tile and width <= tile):
        return run(ya, yb)
    unit = int(np.lcm.reduce([deg_a.scale, deg_b.scale, deg_a.grid, deg_b.grid]))  # tiles keep both grids
    tile = max(unit, tile // unit * unit)
    overlap = max(unit, overlap // unit * unit)
    halo = -(-halo // unit) * unit
    n = ya.shape[0]
    acc = torch.zeros(n, 4, height, width, device=ya.device)
    weight = torch.zeros(1, 1, height, width, device=ya.device)
    for top in tile_starts(height, tile, overlap, unit):
        for left in tile_starts(width, tile, overlap, unit):
            th, tw = min(tile, height - top), min(tile, width - left)
            t0, t1 = _context(top, th, halo, height, unit)
            l0, l1 = _context(left, tw, halo, width, unit)
            sa, sb = deg_a.scale, deg_b.scale
            ta = ya[..., t0 // sa : t1 // sa, l0 // sa : l1 // sa]
            tb = yb[..., t0 // sb : t1 // sb, l0 // sb : l1 // sb]
            full = run(ta, tb)
            crop = (..., slice(top - t0, top - t0 + th), slice(left - l0, left - l0 + tw))
            out = SampleOutput(full.x1[crop], full.x2[crop], full.f[crop], full.m[crop])
            ramp = blend_ramp(
                th, tw, overlap, top > 0, left > 0, top + th < height, left + tw < width, ya.device
            )
            block = torch.cat([out.x1, out.x2, out.f, out.m], dim=1)
            acc[..., top : top + th, left : left + tw] += block * ramp
            weight[..., top : top + th, left : left + tw] += ramp
    acc.div_(weight)  # in place: a 4000x3000 batch holds no second copy of the four planes
    x1, x2, f, m = acc[:, 0:1], acc[:, 1:2], acc[:, 2:3], acc[:, 3:4]
    # the blend ramps mix neighbouring tiles pixel by pixel: back onto the grids, as the sampler's correction does
    x1, x2, f = project_onto_grids(x1, x2, f, m, deg_a.grid, deg_b.grid)
    return SampleOutput(x1, x2, f, m)


def _context(start: int, size: int, halo: int, length: int, unit: int) -> tuple[int, int]:
    """The sampled span around ``[start, start + size)``: ``halo`` more on each side, extended inwards at the
    image borders (on multiples of ``unit``) so that the tiles of one size are sampled at one shape (a runtime
    compiled per shape, as OpenVINO is here, then compiles once)."""
    lo, hi = max(0, start - halo), min(length, start + size + halo)
    want = size + 2 * halo
    if hi - lo < want:
        if lo == 0:
            hi = min(length, want)
        else:  # hi == length
            lo = max(0, (length - want) // unit * unit)
    return lo, hi


def tile_starts(length: int, tile: int, overlap: int, unit: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length``, stepping ``tile - overlap``, on multiples of
    ``unit``; the last tile ends at the border."""
    if length <= tile:
        return [0]
    stride = max(unit, tile - overlap)
    starts = list(range(0, length - tile, stride))
    last = (length - tile) // unit * unit
    if not starts or starts[-1] != last:
        starts.append(last)
    return starts


def blend_ramp(
    h: int, w: int, overlap: int, top: bool, left: bool, bottom: bool, right: bool, device
) -> torch.Tensor:
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


__all__ = ["SampleFn", "blend_ramp", "sample_tiled", "tile_starts"]

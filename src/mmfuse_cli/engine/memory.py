"""Bounded memory: the tile size that keeps a pair's peak memory under a budget (``FuseConfig.max_memory``).

Model (peak RSS of ``mmfuse run`` on one pair, its VmHWM, measured per backend at 640x480 and 1280x960 untiled
and at 2560x1920 in tiles; docs/BENCHMARKS.md, Speed, "Memory"):

    peak = BASE + WHOLE * H * W + WORK[backend] * min(H * W, (tile + 2 halo)^2)     (bytes, batch 1)

* ``BASE``: the process with torch, the model and the runtime loaded;
* ``WHOLE``: what every output pixel costs however the pair is tiled (decoded inputs, luminance and chroma,
  the blended accumulators, the fused and restored images, the encoded output);
* ``WORK``: the sampler's working set per pixel of one tile (state, network activations, correction).

A pair is tiled when the untiled peak would exceed the budget; the tile is the largest square multiple of 64
pixels whose peak fits with :data:`MARGIN`, at least :data:`MIN_AUTO_TILE`. A batch of N pairs multiplies
``WHOLE`` and ``WORK`` by N.
"""

from __future__ import annotations

import math

from mmfuse_cli.engine.backends import BACKENDS

MIB = 2**20
BASE = 480 * MIB
"""Measured 380-480 MB (torch, OpenVINO, ONNX Runtime)."""
WHOLE = 127
"""Bytes per output pixel: measured 96 at 2560x1920 with torch (34 at 1280x960) and 127 at 4000x3000 with
OpenVINO in 448-pixel tiles (2041 MiB peak, docs/BENCHMARKS.md, Speed); the larger one is kept. At 12 Mpx this
part alone is 1.45 GiB, so such a pair gets the smallest tile, :data:`MIN_AUTO_TILE`."""


def work_bytes(backend: str) -> int:
    """``WORK``: bytes per sampled pixel of ``backend`` (:attr:`BackendSpec.work_bytes`; measured as the slope
    640x480 -> 1280x960, minus ``WHOLE``)."""
    return BACKENDS[backend].work_bytes


MARGIN = 0.85
"""Fraction of the budget the model may plan for (the rest absorbs allocator slack and the machine's noise)."""
MIN_AUTO_TILE = 256


def peak_estimate(pixels: int, tile_pixels: int, batch: int, backend: str) -> float:
    """Modelled peak RSS in bytes for ``batch`` pairs of ``pixels`` output pixels run in tiles of
    ``tile_pixels`` (the whole image when larger)."""
    return BASE + batch * (WHOLE * pixels + work_bytes(backend) * min(pixels, tile_pixels))


def minimum_peak(pixels: int, batch: int = 1, halo: int = 32) -> float:
    """The modelled peak RSS in bytes of a pair of ``pixels`` output pixels in the smallest automatic tiles, on
    the hungriest backend: what no tiling can go below."""
    tile = (MIN_AUTO_TILE + 2 * halo) ** 2
    work = max(spec.work_bytes for spec in BACKENDS.values())
    return BASE + batch * (WHOLE * pixels + work * min(pixels, tile))


def auto_tile(
    grid: tuple[int, int], batch: int, backend: str, max_memory: int | None, halo: int = 32
) -> int | None:
    """The tile size (output pixels per side, sampled with ``halo`` pixels of context around it) that keeps the
    modelled peak within ``max_memory`` bytes, or None when the whole pair fits (or there is no budget)."""
    height, width = grid
    pixels = height * width
    if max_memory is None or peak_estimate(pixels, pixels, batch, backend) <= MARGIN * max_memory:
        return None
    room = MARGIN * max_memory - BASE - batch * WHOLE * pixels
    side = math.isqrt(max(0, int(room / (batch * work_bytes(backend))))) if room > 0 else 0
    tile = max(MIN_AUTO_TILE, (side - 2 * halo) // 64 * 64)
    return tile if tile < max(height, width) else None


__all__ = [
    "BASE",
    "MARGIN",
    "MIN_AUTO_TILE",
    "WHOLE",
    "auto_tile",
    "minimum_peak",
    "peak_estimate",
    "work_bytes",
]

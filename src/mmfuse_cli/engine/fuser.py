"""Fusing one pair (or a batch of same-size pairs) with a trained model: the library's entry to fusion.

Source ``a`` is the IR / functional image (CT, PET, SPECT), ``b`` the visible image / MRI. Images are float32
in [0, 1], ``(h, w)`` or ``(h, w, 3)`` on their sensor grids; the output grid is ``h * scale`` by ``w * scale``
(both sources must agree on it). Each source's :class:`~mmfuse_cli.degradation.spec.Degradation` (blur, scale,
noise, pixel grid, bit depth) goes down to the sampler whole. Colour: :mod:`mmfuse_cli.engine.colour`;
tiling: :mod:`mmfuse_cli.engine.tiling`; where and how the network runs: :mod:`mmfuse_cli.engine.backend`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.device import resolve_device
from mmfuse_cli.engine.backend import NonFiniteOutputError, make_backend
from mmfuse_cli.engine.colour import luma, luma_noise, recolor
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.memory import auto_tile
from mmfuse_cli.engine.tiling import sample_tiled
from mmfuse_cli.model.network import FusionModel
from mmfuse_cli.sampling.observation import Observation, ObservationBatch


class FusionError(ValueError):
    """A pair cannot be fused (sizes disagree, non-finite output, ...); the message says why."""


@dataclass
class FusedPair:
    """Result for one pair: fused image (gray ``(H, W)`` or RGB ``(H, W, 3)``) and the restored sources (gray
    ``(H, W)``), float32 in [0, 1]."""

    fused: np.ndarray
    a: np.ndarray
    b: np.ndarray


def output_size(shape: tuple[int, ...], degradation: Degradation) -> tuple[int, int]:
    """The output grid ``(H, W)`` of a source of sensor shape ``(h, w[, c])``: its size times its scale."""
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
    """Runs a :class:`~mmfuse_cli.model.network.FusionModel` on pairs, as one :class:`FuseConfig` says.

    Args:
        model: a loaded model (:func:`~mmfuse_cli.model.checkpoint.load_checkpoint`); moved to the device.
        config: device, steps, precision, tiling, damping, flip ensemble (default: ``FuseConfig()``).

    Raises:
        InvalidValueError: the configuration cannot run here (CUDA asked for but absent, fp16 on the CPU, a
            backend that is not installed).
    """

    def __init__(self, model: FusionModel, config: FuseConfig | None = None):
        self.config = config or FuseConfig()
        self.device = resolve_device(self.config.device)
        self.backend = make_backend(model, self.device, self.config)
        self.model = self.backend.model
        self.task = model.config.task

    @property
    def steps(self) -> int:
        """Sampler steps T used."""
        return self.backend.steps

    @property
    def fallback_note(self) -> str | None:
        """Why ``backend="auto"`` runs on a slower backend than the fastest installed (one line, naming the
        cause, e.g. an unwritable export cache folder), or ``None``; a caller shows it as a warning."""
        return getattr(self.backend, "fallback_note", None)

    def tile_for(self, grid: tuple[int, int], batch: int) -> int | None:
        """The tile size used for ``batch`` pairs on output grid ``grid``: ``config.tile`` if set, else what
        ``config.max_memory`` allows (:func:`~mmfuse_cli.engine.memory.auto_tile`; ``None`` = whole image)."""
        if self.config.tile is not None:
            return self.config.tile
        return auto_tile(grid, batch, self.backend.name, self.config.max_memory, self.config.halo)

    def fuse(self, a: np.ndarray, b: np.ndarray, deg_a: Degradation, deg_b: Degradation) -> FusedPair:
        """Fuse one pair (see the module docstring for shapes and colour)."""
        return self.fuse_batch([a], [b], deg_a, deg_b)[0]

    def fuse_batch(
        self, a_list: list[np.ndarray], b_list: list[np.ndarray], deg_a: Degradation, deg_b: Degradation
    ) -> list[FusedPair]:
        """Fuse pairs that share sizes and degradations (bit depths included) in one network batch.

        Raises:
            FusionError: sizes disagree, or the model produced NaN/inf (nothing should be written).
        """
        grid = check_sizes(a_list[0].shape, b_list[0].shape, deg_a, deg_b)
        for a, b in zip(a_list, b_list):
            if a.shape[:2] != a_list[0].shape[:2] or b.shape[:2] != b_list[0].shape[:2]:
                raise FusionError("pairs in one batch must share sizes")
        # the sampler sees luminance: a colour source's per-channel noise becomes its luminance's (colour.py)
        luma_a = {luma_noise(a, deg_a) for a in a_list}
        luma_b = {luma_noise(b, deg_b) for b in b_list}
        if len(luma_a) > 1 or len(luma_b) > 1:  # gray and colour images in one batch: one at a time
            return [self.fuse_batch([a], [b], deg_a, deg_b)[0] for a, b in zip(a_list, b_list)]
        seen_a, seen_b = luma_a.pop(), luma_b.pop()
        ya = torch.from_numpy(np.stack([luma(a) for a in a_list]))[:, None].to(self.device)
        yb = torch.from_numpy(np.stack([luma(b) for b in b_list]))[:, None].to(self.device)

        def run(ta: torch.Tensor, tb: torch.Tensor):
            oa = ObservationBatch(Observation(ta, seen_a))
            ob = ObservationBatch(Observation(tb, seen_b))
            try:
                return self.backend.sample(oa, ob)
            except NonFiniteOutputError as exc:
                raise FusionError(str(exc)) from None

        tile = self.tile_for(grid, len(a_list))
        out = sample_tiled(run, ya, yb, deg_a, deg_b, grid, tile, self.config.overlap, self.config.halo)
        results = []
        for i, (a, b) in enumerate(zip(a_list, b_list)):
            fused_y = out.f[i, 0].float().clamp(0, 1).cpu().numpy()
            results.append(
                FusedPair(
                    fused=recolor(fused_y, a, b, deg_a, deg_b, self.task),
                    a=out.x1[i, 0].float().clamp(0, 1).cpu().numpy(),
                    b=out.x2[i, 0].float().clamp(0, 1).cpu().numpy(),
                )
            )
        return results


__all__ = ["FusedPair", "Fuser", "FusionError", "check_sizes", "output_size"]

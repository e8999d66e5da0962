"""A volume's intensities mapped to [0, 1], by one documented rule whose numbers go in run.csv.

:data:`INTENSITY_RULE`: the body is every voxel above ``min + 1 % of (p99.9 - min)`` of the whole volume (a
small threshold over the background: air in CT, the empty field of an MRI or a PET); ``low`` and ``high`` are the
0.5th and 99.5th percentiles of the body's voxels; a voxel ``x`` becomes ``clip((x - low) / (high - low), 0, 1)``.
A body of one value (a mask) maps the minimum to 0 and the body to 1. The row records ``low`` and ``high`` of each source, so ``x = low + x' (high - low)`` maps a value back.
Percentiles of volumes over :data:`EXACT_VOXELS` voxels are taken on an evenly strided subset (reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfuse_cli.volume_io.volume import VolumeError

BODY_FRACTION = 0.01
"""The body threshold: this fraction of the way from the minimum to the 99.9th percentile."""
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
EXACT_VOXELS = 2**24
INTENSITY_RULE = (
    f"p{LOW_PERCENTILE:g}-p{HIGH_PERCENTILE:g} of body voxels (> min + {BODY_FRACTION:.0%} of p99.9 - min), "
    "clipped to [0, 1]"
)


@dataclass(frozen=True)
class IntensityWindow:
    """How one volume maps to [0, 1]: voxels above ``threshold`` are body; ``low`` -> 0, ``high`` -> 1."""

    threshold: float
    low: float
    high: float

    def normalise(self, values: np.ndarray) -> np.ndarray:
        """``values`` mapped to [0, 1] (float32)."""
        out = (np.asarray(values, dtype=np.float32) - np.float32(self.low)) / np.float32(self.high - self.low)
        return np.clip(out, 0.0, 1.0, out=out)

    def restore(self, unit: np.ndarray) -> np.ndarray:
        """[0, 1] values back in the volume's own units (float32)."""
        return (
            np.asarray(unit, dtype=np.float32) * np.float32(self.high - self.low) + np.float32(self.low)
        ).astype(np.float32)

    def row(self, side: str) -> dict[str, float]:
        """The run.csv columns of this window (``{side}_intensity_low``, ``_high``, ``_body_threshold``)."""
        return {
            f"{side}_intensity_low": _round(self.low),
            f"{side}_intensity_high": _round(self.high),
            f"{side}_body_threshold": _round(self.threshold),
        }


def intensity_window(data: np.ndarray, path: Path) -> IntensityWindow:
    """The :class:`IntensityWindow` of ``data`` by :data:`INTENSITY_RULE`.

    Raises:
        VolumeError: (naming ``path``) the volume has no intensity range inside its body (it is constant).
    """
    flat = np.asarray(data).reshape(-1)
    if flat.size > EXACT_VOXELS:
        flat = flat[:: -(-flat.size // EXACT_VOXELS)]
    floor = float(flat.min())
    top = float(np.percentile(flat, 99.9))
    if top <= floor:
        top = float(flat.max())
    threshold = floor + BODY_FRACTION * (top - floor)
    body = flat[flat > threshold]
    if body.size == 0:
        raise VolumeError(f"{path}: a constant volume (every voxel {floor:g}): nothing to fuse")
    low, high = (float(v) for v in np.percentile(body, [LOW_PERCENTILE, HIGH_PERCENTILE]))
    if high <= low:  # a body of one value (a mask): the background is 0, the body 1
        low, high = floor, float(body.max())
    return IntensityWindow(threshold, low, high)


def _round(value: float) -> float:
    """Six significant digits: enough to map back, short in the table."""
    return float(f"{value:.6g}")


__all__ = ["INTENSITY_RULE", "IntensityWindow", "intensity_window"]

"""A volume pair made ready to fuse: both volumes read, their geometry checked, a brought onto b's grid, both mapped
to [0, 1], and one degradation per source decided for the whole volume.

* **Geometry** (:mod:`mmfuse_cli.degradation.resample`): b (the MRI) defines the output grid. Both affines must
  be orthogonal and non-degenerate, and a must cover part of b's grid; a is read on b's voxels through
  ``A_a^-1 A_b`` (none needed when a already lies on b's grid).
* **Intensities** (:mod:`mmfuse_cli.volume_io.intensity`): each volume by the documented percentile rule.
* **Degradation**, once per volume: the run's resolver (flag > sidecar > estimate, as for images) on up to
  :data:`PROBE_SLICES` slices spread over those where b has the most body, the median of the per-slice estimates
  of noise and blur (slices whose estimate could not be made left out). A resampled a's blur is the one its
  coarser voxels and the interpolation imply (origin ``geometry``) unless a flag or sidecar states one. Both
  scales are 1: a is resampled onto b's grid, so a stated scale other than 1 fails the pair. The bit depth is
  the stored samples' levels across the intensity window (0, exact, for float data); ``--input-bits`` wins.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mmfuse_cli.degradation.resample import (
    GeometryError,
    check_affine,
    coverage,
    describe,
    implied_blur,
    lattice_aligned,
    on_same_grid,
    resample,
    voxel_map,
)
from mmfuse_cli.degradation.resolve import DegradationResolver, ResolvedSource
from mmfuse_cli.degradation.spec import MAX_BITS, Degradation
from mmfuse_cli.pairing import Pair
from mmfuse_cli.volume_io import Volume, read_volume
from mmfuse_cli.volume_io.intensity import IntensityWindow, intensity_window

PROBE_SLICES = 5
"""Slices of a volume whose degradation estimates are combined (their median)."""
PROBE_BODY = 0.5
"""Probe slices are chosen among those with at least this share of the body of b's fullest slice."""


@dataclass
class PreparedVolumes:
    """Both volumes of a pair, ready to fuse slice by slice on b's grid.

    Attributes:
        pair: the pair.
        a, b: the volumes as read.
        mapping: b's voxel -> a's voxel (4 x 4); ``None`` when a lies on b's grid (read as it is).
        window_a, window_b: how each maps to [0, 1].
        coverage: the share of b's grid that a covers.
        source_a, source_b: the degradation each is fused with, and where it came from.
        notes: what the row should say.
        probes: the slices the degradations were estimated on.
    """

    pair: Pair
    a: Volume
    b: Volume
    mapping: np.ndarray | None
    window_a: IntensityWindow
    window_b: IntensityWindow
    coverage: float
    source_a: ResolvedSource = field(default_factory=lambda: ResolvedSource(Degradation()))
    source_b: ResolvedSource = field(default_factory=lambda: ResolvedSource(Degradation()))
    notes: list[str] = field(default_factory=list)
    probes: list[int] = field(default_factory=list)

    def a_slices(self, first: int, stop: int) -> np.ndarray:
        """a's voxels on b's slices ``first:stop``, in a's own units, ``(X_b, Y_b, stop - first)``."""
        if self.mapping is None:
            return self.a.data[:, :, first:stop]
        background = float(self.a.data.min())
        return resample(self.a.data, self.mapping, self.b.shape, first, stop, background)

    def slices(self, first: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both sources on b's slices ``first:stop`` mapped to [0, 1], and which of those slices hold any body
        (in either source; the others are blank)."""
        raw_a, raw_b = self.a_slices(first, stop), self.b.data[:, :, first:stop]
        has_a = (raw_a > self.window_a.threshold).any(axis=(0, 1))
        body = np.asarray(has_a | (raw_b > self.window_b.threshold).any(axis=(0, 1)))
        return self.window_a.normalise(raw_a), self.window_b.normalise(raw_b), body

    @property
    def resampled(self) -> bool:
        return self.mapping is not None

    def geometry_row(self) -> dict[str, object]:
        """The run.csv columns of the pair's geometry."""
        return {
            "a_geometry": describe(self.a.shape, self.a.affine),
            "b_geometry": describe(self.b.shape, self.b.affine),
            "a_resampled": self.resampled,
            "a_coverage": round(self.coverage, 4),
            "estimate_slices": " ".join(str(k) for k in self.probes),
        }


def prepare_volumes(
    pair: Pair,
    resolver: DegradationResolver,
    max_voxels: int | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> PreparedVolumes:
    """Read, check, map and resolve a volume pair (module docstring); ``on_warning`` gets the resolver's one-line
    warnings that hold for the whole volume (a noise no slice could be estimated on, a source assumed clean).

    Raises:
        VolumeError, GeometryError, ResolveError, ValueError: one line naming the file(s).
    """
    a, b = read_volume(pair.a, max_voxels), read_volume(pair.b, max_voxels)
    check_affine(a.affine, pair.a)
    check_affine(b.affine, pair.b)
    mapping = voxel_map(a.affine, b.affine)
    covered = coverage(mapping, a.shape, b.shape)
    if covered == 0.0:
        raise GeometryError(
            f"{pair.a} and {pair.b} do not overlap: a is {describe(a.shape, a.affine)}; "
            f"b is {describe(b.shape, b.affine)}"
        )
    prepared = PreparedVolumes(
        pair,
        a,
        b,
        None if on_same_grid(mapping, a.shape, b.shape) else mapping,
        intensity_window(a.data, pair.a),
        intensity_window(b.data, pair.b),
        covered,
    )
    for volume in (a, b):
        if volume.qform_code == 0 and volume.sform_code == 0:
            prepared.notes.append(f"{volume.path}: no qform or sform (codes 0): nibabel's default geometry")
    prepared.source_a, prepared.source_b = _resolve(prepared, resolver, on_warning)
    return prepared


def effective_bits(volume: Volume, window: IntensityWindow) -> int:
    """The bit depth the model is told: ``log2`` of the stored levels across the window, 1 to 16; 0 for float
    data (exact values)."""
    if volume.step <= 0:
        return 0
    levels = (window.high - window.low) / volume.step
    return int(min(MAX_BITS, max(1, round(math.log2(levels + 1)))))


def probe_slices(prepared: PreparedVolumes) -> list[int]:
    """Up to :data:`PROBE_SLICES` slices, evenly spread over those where b has at least :data:`PROBE_BODY` of its
    fullest slice's body."""
    body = (prepared.b.data > prepared.window_b.threshold).mean(axis=(0, 1))
    candidates = np.flatnonzero(body >= PROBE_BODY * body.max())
    picks = np.linspace(0, len(candidates) - 1, min(PROBE_SLICES, len(candidates))).round().astype(int)
    return sorted({int(candidates[i]) for i in picks})


def _resolve(
    prepared: PreparedVolumes, resolver: DegradationResolver, on_warning: Callable[[str], None] | None
) -> tuple[ResolvedSource, ResolvedSource]:
    """Both sources' degradations for the whole volume (module docstring)."""
    pair = prepared.pair
    bits_a = effective_bits(prepared.a, prepared.window_a)
    bits_b = effective_bits(prepared.b, prepared.window_b)
    said: list[str] = []  # the per-slice resolver's warnings: passed on where they hold for the whole volume
    probe = DegradationResolver(resolver.requests["a"], resolver.requests["b"], said.append, resolver.task)
    per_slice: list[tuple[ResolvedSource, ResolvedSource]] = []
    prepared.probes = probe_slices(prepared)
    for k in prepared.probes:
        a, b, _ = prepared.slices(k, k + 1)
        per_slice.append(probe.resolve_pair(pair.a, a[:, :, 0], bits_a, pair.b, b[:, :, 0], bits_b))
    source_a = _median("a", [s[0] for s in per_slice])
    source_b = _median("b", [s[1] for s in per_slice])
    unmade = {
        side
        for side, s in (("a", source_a), ("b", source_b))
        if any("noise: could not" in n for n in s.notes)
    }
    for message in said:
        noise_of = next((side for side in "ab" if f"noise of source {side} could not" in message), None)
        if on_warning is not None and (noise_of is None or noise_of in unmade):
            on_warning(message)
    for side, source in (("a", source_a), ("b", source_b)):
        if source.degradation.scale != 1:
            raise ValueError(
                f"{pair.a} + {pair.b}: a scale of {source.degradation.scale} for source {side} "
                f"({source.origin.get('scale')}) does not apply to volumes: a is resampled onto b's grid, and its "
                "coarser voxels are told as blur"
            )
    if prepared.resampled and source_a.origin.get("blur") not in ("flag", "sidecar"):
        assert prepared.mapping is not None
        blur = implied_blur(prepared.a.affine, prepared.b.affine, not lattice_aligned(prepared.mapping))
        if blur > 0:
            spread = {k: v for k, v in source_a.spread.items() if k != "blur"}
            source_a = dataclasses.replace(
                source_a,
                degradation=dataclasses.replace(source_a.degradation, blur=blur),
                origin={**source_a.origin, "blur": "geometry"},
                spread=spread,
                notes=tuple(n for n in source_a.notes if not n.startswith("a blur:")),
            )
    return source_a, source_b


def _median(side: str, resolved: list[ResolvedSource]) -> ResolvedSource:
    """One source's per-slice resolutions as one: the median of each estimated noise and blur over the slices
    where it could be made; the most common pixel grid."""
    first = resolved[0]
    values = {"noise": first.degradation.noise, "blur": first.degradation.blur}
    spread: dict[str, float] = {}
    notes: list[str] = []
    for name in ("noise", "blur"):
        if first.origin.get(name) != "estimated":
            continue
        failed = [any(n.startswith(f"{side} {name}:") for n in r.notes) for r in resolved]
        made = [r for r, bad in zip(resolved, failed) if not bad]
        if made:
            values[name] = round(float(np.median([getattr(r.degradation, name) for r in made])), 6)
            spread[name] = round(float(np.median([r.spread.get(name, 0.0) for r in made])), 6)
        else:
            values[name] = 0.0
            notes.append(f"{side} {name}: could not be estimated on {len(resolved)} slices; assumed none")
    grid = Counter(r.degradation.grid for r in resolved).most_common(1)[0][0]
    degradation = dataclasses.replace(
        first.degradation, noise=values["noise"], blur=values["blur"], grid=grid
    )
    return ResolvedSource(degradation, dict(first.origin), spread, tuple(notes))


__all__ = ["PROBE_SLICES", "PreparedVolumes", "effective_bits", "prepare_volumes", "probe_slices"]

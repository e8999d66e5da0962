"""Random degradations for training: the kinds (clean, noise, blur, down and their composites) and their ranges.

Draws come from a numpy ``Generator`` the caller seeds, so a training run is reproducible for a seed.
"""

from __future__ import annotations

import numpy as np

from mmfuse_cli.degradation.spec import Degradation

DEGRADATION_KINDS = (
    "clean",
    "noise",
    "blur",
    "down",
    "blur+noise",
    "down+noise",
    "blur+down",
    "blur+down+noise",
)


def random_degradation(
    rng: np.random.Generator, max_noise: float = 0.1, max_blur: float = 2.5, kind_p: np.ndarray | None = None
) -> Degradation:
    """A random degradation: its kind drawn from :data:`DEGRADATION_KINDS` (uniformly, or with the probabilities
    ``kind_p`` from :func:`kind_probabilities`), its parameters uniform in their ranges."""
    if kind_p is not None:
        kind = DEGRADATION_KINDS[rng.choice(len(DEGRADATION_KINDS), p=kind_p)]
    else:  # the draw every run before kind weights existed made: keeps those runs reproducible
        kind = DEGRADATION_KINDS[rng.integers(len(DEGRADATION_KINDS))]
    blur = float(rng.uniform(0.5, max_blur)) if "blur" in kind else 0.0
    scale = int(rng.choice([2, 4])) if "down" in kind else 1
    noise = float(rng.uniform(0.01, max_noise)) if "noise" in kind else 0.0
    return Degradation(blur=round(blur, 3), scale=scale, noise=round(noise, 4))


def parse_kind_weights(items: list[str]) -> dict[str, float]:
    """``["blur=3", "blur+noise=2"]`` -> ``{"blur": 3.0, "blur+noise": 2.0}``, checked by :func:`kind_probabilities`."""
    weights: dict[str, float] = {}
    for item in items:
        kind, _, value = item.partition("=")
        try:
            weights[kind.strip()] = float(value)
        except ValueError:
            raise ValueError(f"expected KIND=WEIGHT (e.g. blur=3), got {item!r}") from None
    if weights:
        kind_probabilities(weights)
    return weights


def kind_probabilities(kind_weights: dict) -> np.ndarray:
    """Probability of each kind in :data:`DEGRADATION_KINDS` under ``kind_weights`` (missing kinds weigh 1).

    Raises ValueError for an unknown kind, a negative weight or weights that sum to zero."""
    unknown = sorted(set(kind_weights) - set(DEGRADATION_KINDS))
    if unknown:
        raise ValueError(f"unknown degradation kind {unknown[0]!r}; kinds: {', '.join(DEGRADATION_KINDS)}")
    weights = np.array([float(kind_weights.get(kind, 1.0)) for kind in DEGRADATION_KINDS])
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"kind weights must be finite, >= 0 and not all 0, got {kind_weights}")
    return weights / weights.sum()


__all__ = ["DEGRADATION_KINDS", "kind_probabilities", "parse_kind_weights", "random_degradation"]

"""Statistics the report page and ``mmfuse evaluate``'s comparison table share: per-method mean and std of each
metric, the best method per metric (respecting lower-is-better metrics), histogram bins and best / worst
rankings. Pure functions over plain rows (``{column: value}``); no files, no metric code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Stat:
    """Mean and standard deviation (over the scored pairs, ddof = 0) of one metric for one method."""

    mean: float
    std: float
    n: int


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None (empty, NaN, inf, or not a number: a CSV cell as written)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def stat(values: Iterable[Any]) -> Stat | None:
    """Mean and std of the finite values; None when there are none."""
    xs = [x for x in (number(v) for v in values) if x is not None]
    if not xs:
        return None
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / len(xs)
    return Stat(mean, math.sqrt(var), len(xs))


def summarize(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], method_key: str = "method"
) -> dict[str, dict[str, Stat | None]]:
    """``{metric: {method: Stat}}`` over the rows whose ``status`` is ``ok`` (methods in first-seen order)."""
    methods: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        methods.setdefault(str(row.get(method_key) or ""), [])
        if row.get("status") == "ok":
            methods[str(row.get(method_key) or "")].append(row)
    return {m: {name: stat(r.get(m) for r in ok) for name, ok in methods.items()} for m in metrics}


def best_method(stats: Mapping[str, Stat | None], higher_is_better: bool = True) -> str | None:
    """The method with the best mean (highest, or lowest for a lower-is-better metric); None when no method has
    a value or there is only one method (nothing to compare); the first one on ties."""
    scored = [(name, s.mean) for name, s in stats.items() if s is not None]
    if len(stats) < 2 or not scored:
        return None
    pick = max if higher_is_better else min
    return pick(scored, key=lambda item: item[1])[0]


def histogram(values: Iterable[Any], bins: int = 12) -> dict[str, list[float] | list[int]]:
    """Equal-width bins over the finite values: ``{"edges": bins + 1 floats, "counts": bins ints}``; the last bin
    includes its right edge. A single distinct value gets one bin [v - 0.5, v + 0.5]; no values, empty lists."""
    xs = [x for x in (number(v) for v in values) if x is not None]
    if not xs:
        return {"edges": [], "counts": []}
    lo, hi = min(xs), max(xs)
    if hi == lo:
        return {"edges": [lo - 0.5, lo + 0.5], "counts": [len(xs)]}
    width = (hi - lo) / bins
    counts = [0] * bins
    for x in xs:
        counts[min(int((x - lo) / width), bins - 1)] += 1
    return {"edges": [lo + i * width for i in range(bins)] + [hi], "counts": counts}


def counts_in(values: Iterable[Any], edges: Sequence[float]) -> list[int]:
    """How many finite values fall in each bin of ``edges`` (from :func:`histogram`); values outside are left
    out, the last bin includes its right edge."""
    if len(edges) < 2:
        return []
    bins = len(edges) - 1
    lo, hi = edges[0], edges[-1]
    counts = [0] * bins
    for x in (number(v) for v in values):
        if x is None or x < lo or x > hi:
            continue
        counts[min(int((x - lo) / (hi - lo) * bins), bins - 1)] += 1
    return counts


def ranking(values: Sequence[Any], higher_is_better: bool = True) -> list[int]:
    """Indices of the finite values, best first (ties keep input order); missing values are left out."""
    scored = [(i, x) for i, x in enumerate(number(v) for v in values) if x is not None]
    scored.sort(key=lambda item: -item[1] if higher_is_better else item[1])
    return [i for i, _ in scored]


def best_worst(values: Sequence[Any], n: int, higher_is_better: bool = True) -> tuple[list[int], list[int]]:
    """The indices of the ``n`` best values (best first) and the ``n`` worst (worst first)."""
    order = ranking(values, higher_is_better)
    return order[:n], order[::-1][:n]

"""Score a folder of fused images against their sources (library behind ``mmfuse evaluate``).

Each image of the fused folder is matched by key (relative path without extension, see
:mod:`mmfuse_cli.pairing`) with the two source folders and, optionally, the two clean-reference folders.
Colour images (fused or source) are scored on their BT.601 luminance, the gray conversion CDD's evaluator uses.
A fused image that cannot be scored (a source missing, two files with one stem, an unreadable file, different
pixel sizes) becomes a ``failed`` result naming the file; the other pairs are still scored. Source pairs without
a fused image are listed but are not failures (scoring a subset of a benchmark is allowed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.io import ImageError, read_image, to_gray
from mmfuse_cli.metrics import CLEAN, CONVENTIONS, DEFAULT, compute_metrics
from mmfuse_cli.metrics.registry import Against
from mmfuse_cli.pairing import index_by_key
from mmfuse_cli.results.rows import ItemResult


@dataclass
class EvalJob:
    """Options of one ``evaluate`` run.

    Attributes:
        folders: role -> folder, roles ``fused``, ``a``, ``b`` (required) and ``a_clean``, ``b_clean``
            (both or neither).
        names: metric names (canonical, see :func:`mmfuse_cli.metrics.resolve_names`).
        convention: ``cdd`` / ``tang`` / ``vifb`` / ``liu``.
        against: source-referenced metrics against the ``given`` sources, the ``clean`` ones, or ``auto``
            (clean when clean folders are given).
        recursive: match files in sub-folders too (keys are relative paths).
    """

    folders: dict[str, Path]
    names: list[str] = field(default_factory=lambda: list(DEFAULT))
    convention: str = "cdd"
    against: str = "auto"
    recursive: bool = False

    def __post_init__(self) -> None:
        self.convention = self.convention.lower()
        if self.convention not in CONVENTIONS:
            raise InvalidValueError(
                "convention", f"must be one of {', '.join(CONVENTIONS)}, got {self.convention!r}"
            )
        if self.against not in ("auto", "given", "clean"):
            raise InvalidValueError("against", f"must be auto, given or clean, got {self.against!r}")
        missing = [r for r in ("fused", "a", "b") if r not in self.folders]
        if missing:
            raise ValueError(f"missing folder(s): {', '.join(missing)}")
        if ("a_clean" in self.folders) != ("b_clean" in self.folders):
            raise InvalidValueError("a_clean", "give both clean folders (a_clean and b_clean) or neither")
        if self.against == "clean" and "a_clean" not in self.folders:
            raise InvalidValueError("against", "clean needs both clean folders (a_clean and b_clean)")
        for role, folder in self.folders.items():
            if not Path(folder).is_dir():
                raise ValueError(f"{folder}: not a directory ({role.replace('_', '-')} folder)")

    @property
    def has_clean(self) -> bool:
        return "a_clean" in self.folders

    @property
    def columns(self) -> list[str]:
        """Metric columns of every row: the selected names, then the clean metrics when clean folders exist."""
        extra = [n for n in CLEAN if n not in self.names] if self.has_clean else []
        return list(self.names) + extra

    @property
    def reference(self) -> str:
        """What the source-referenced metrics were computed against: ``given`` or ``clean``."""
        return "clean" if self.has_clean and self.against in ("auto", "clean") else "given"


@dataclass(frozen=True)
class EvalItem:
    """The files of one key (None where a role has no file) and, if it cannot be scored, why."""

    key: str
    files: dict[str, Path]
    problem: str = ""


def match_folders(job: EvalJob) -> tuple[list[EvalItem], list[str]]:
    """Match the folders by key.

    Returns:
        One :class:`EvalItem` per image of the fused folder (sorted by key), and the keys that have a source
        pair but no fused image (not evaluated: scoring a subset of a benchmark is allowed; callers report the
        count). Extra files in the clean-reference folders are ignored as well.
    """
    indexes: dict[str, dict[str, Path]] = {}
    dupes: dict[str, dict[str, list[Path]]] = {}
    for role, folder in job.folders.items():
        indexes[role], dupes[role] = index_by_key(Path(folder), job.recursive)
    fused_keys = set(indexes["fused"]) | set(dupes["fused"])
    unfused = sorted((set(indexes["a"]) & set(indexes["b"])) - fused_keys)
    return [_item(key, job, indexes, dupes) for key in sorted(fused_keys)], unfused


def _item(key: str, job: EvalJob, indexes, dupes) -> EvalItem:
    files = {role: indexes[role][key] for role in job.folders if key in indexes[role]}
    for role in job.folders:
        if key in dupes[role]:
            names = ", ".join(str(p) for p in dupes[role][key])
            return EvalItem(key, files, f"duplicate stem in the {_label(role)} folder: {names}")
    missing = [role for role in job.folders if role not in files]
    if not missing:
        return EvalItem(key, files)
    where = ", ".join(f"{job.folders[r]}" for r in missing)
    what = " and ".join(_label(r) for r in missing)
    return EvalItem(key, files, f"{files['fused']}: no {what} image named '{key}.*' in {where}")


def _label(role: str) -> str:
    return {"fused": "fused", "a": "A", "b": "B", "a_clean": "clean A", "b_clean": "clean B"}[role]


def _load_gray(path: Path) -> np.ndarray:
    return to_gray(read_image(path).pixels)


def evaluate_item(item: EvalItem, job: EvalJob) -> ItemResult:
    """Score one key. Never raises for a bad file: the problem becomes a ``failed`` result naming the file."""
    start = time.perf_counter()
    if item.problem:
        return ItemResult(item.key, "failed", item.problem)
    try:
        images = {role: _load_gray(path) for role, path in item.files.items()}
    except ImageError as exc:
        return ItemResult(item.key, "failed", str(exc), time.perf_counter() - start)
    shape = images["fused"].shape
    for role, img in images.items():
        if img.shape != shape:
            reason = (
                f"{item.files['fused']}: size {shape[1]}x{shape[0]} does not match the {_label(role)} image "
                f"{item.files[role]} ({img.shape[1]}x{img.shape[0]})"
            )
            return ItemResult(item.key, "failed", reason, time.perf_counter() - start)
    try:
        values = compute_metrics(
            images["fused"],
            images["a"],
            images["b"],
            job.names,
            a_clean=images.get("a_clean"),
            b_clean=images.get("b_clean"),
            convention=job.convention,
            against=cast(Against, job.against),  # checked in EvalJob.__post_init__
        )
    except ValueError as exc:
        return ItemResult(item.key, "failed", f"{item.files['fused']}: {exc}", time.perf_counter() - start)
    return ItemResult(item.key, "ok", "", time.perf_counter() - start, str(item.files["fused"]), values)


def iter_evaluate(job: EvalJob, items: list[EvalItem] | None = None) -> Iterator[ItemResult]:
    """Yield one result per fused image, in key order."""
    for item in items if items is not None else match_folders(job)[0]:
        yield evaluate_item(item, job)


def evaluate_folders(
    job: EvalJob, on_item: Callable[[ItemResult], None] | None = None, items: list[EvalItem] | None = None
) -> list[ItemResult]:
    """Score every key of the job (or the given ``items``); ``on_item`` sees each result as it is produced."""
    results = []
    for result in iter_evaluate(job, items):
        results.append(result)
        if on_item:
            on_item(result)
    return results


def result_row(result: ItemResult, job: EvalJob) -> dict[str, Any]:
    """The CSV / JSON row of one result: item, status, one column per metric (None when not scored), seconds,
    reason, convention and the reference the source metrics used."""
    row: dict[str, Any] = {"item": result.key, "status": result.status}
    for name in job.columns:
        row[name] = result.extra.get(name)
    row.update(
        seconds=round(result.seconds, 4),
        reason=result.reason,
        convention=job.convention,
        reference=job.reference,
    )
    return row


def mean_row(results: list[ItemResult], job: EvalJob) -> dict[str, Any]:
    """Row ``item = "mean"``: per metric the arithmetic mean over the scored pairs (NaN values left out, as a
    metric that is undefined on one image should not blank the whole column); ``reason`` says how many."""
    ok = [r for r in results if r.status == "ok"]
    row: dict[str, Any] = {"item": "mean", "status": "mean"}
    for name in job.columns:
        values = [r.extra.get(name) for r in ok]
        defined = [v for v in values if v is not None and not math.isnan(v)]
        row[name] = float(np.mean(defined)) if defined else None
    row.update(
        seconds=round(sum(r.seconds for r in results), 4),
        reason=f"{len(ok)} of {len(results)} pair(s)",
        convention=job.convention,
        reference=job.reference,
    )
    return row

"""Several fused folders (one per method) scored in one call (library behind ``mmfuse evaluate F1 F2 ...``).

Each folder is one :class:`~mmfuse_cli.batch.evaluate.EvalJob` with the same sources, metrics and convention;
its method name is the folder's name, made unique. The rows are the single-folder rows with a ``method`` column
first and the files scored (``output``, ``a``, ``b``) last, so ``mmfuse report`` can show the images; each method
ends with a ``mean`` and a ``std`` row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmfuse_cli.batch.evaluate import EvalItem, EvalJob, mean_row, result_row
from mmfuse_cli.report.summary import stat
from mmfuse_cli.results.rows import ItemResult


def method_names(folders: Sequence[Path]) -> list[str]:
    """One name per folder: its name; where names collide, as many trailing path parts as tell them apart
    (``runs/a/fused``, ``runs/b/fused`` -> ``a/fused``, ``b/fused``); still equal (the same folder twice):
    ``-2``, ``-3`` ... appended."""
    parts = [Path(f).resolve().parts for f in folders]
    names = []
    for mine in parts:
        depth = 1
        if parts.count(mine) == 1:  # the same folder twice: its name, numbered below
            while depth < len(mine) and sum(1 for other in parts if other[-depth:] == mine[-depth:]) > 1:
                depth += 1
        names.append("/".join(mine[-depth:]))
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def method_jobs(job: EvalJob, folders: Sequence[Path]) -> list[tuple[str, EvalJob]]:
    """``(method name, job)`` per fused folder: ``job`` with its ``fused`` folder replaced.

    Raises:
        ValueError: a folder is not a directory (from :class:`EvalJob`).
    """
    return [
        (name, dataclasses.replace(job, folders={**job.folders, "fused": Path(folder)}))
        for name, folder in zip(method_names(folders), folders, strict=True)
    ]


def method_row(method: str, item: EvalItem, result: ItemResult, job: EvalJob) -> dict[str, Any]:
    """The row of one pair of one method: ``method`` first, then :func:`result_row`'s columns, then the files
    (``output`` = the fused image, ``a``, ``b``; empty where missing)."""
    row = {"method": method, **result_row(result, job)}
    row.update(
        {key: str(item.files.get(role, "")) for key, role in (("output", "fused"), ("a", "a"), ("b", "b"))}
    )
    return row


def method_summary_rows(method: str, results: list[ItemResult], job: EvalJob) -> list[dict[str, Any]]:
    """Rows ``mean`` (as :func:`mean_row`) and ``std`` (standard deviation over the same pairs, ddof = 0) of
    one method."""
    mean = {"method": method, **mean_row(results, job)}
    ok = [r for r in results if r.status == "ok"]
    std: dict[str, Any] = {"method": method, "item": "std", "status": "std"}
    for name in job.columns:
        s = stat(r.extra.get(name) for r in ok)
        std[name] = s.std if s else None
    std.update({k: mean[k] for k in ("seconds", "reason", "convention", "reference")})
    return [mean, std]

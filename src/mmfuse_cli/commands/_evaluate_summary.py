"""The per-method summary table of ``mmfuse evaluate F1 F2 ...`` on stderr: mean ± std of every metric per
method, the best method of each metric in bold (lowest for the lower-is-better metrics)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from mmfuse_cli.batch.evaluate import EvalJob
from mmfuse_cli.metrics import REGISTRY
from mmfuse_cli.report.summary import Stat, best_method, summarize


def _cell(s: Stat | None) -> str:
    return "-" if s is None else f"{s.mean:.4f} ± {s.std:.4f}"


def summary_tables(rows: list[dict[str, Any]], job: EvalJob, width: int) -> list[Table]:
    """One rich table per chunk of metric columns that fits ``width``: a row per method (and the pairs it
    scored), a column per metric, mean ± std over the scored pairs, the best in bold."""
    pairs = [r for r in rows if r.get("status") not in ("mean", "std")]
    stats = summarize(pairs, job.columns)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    counts = {m: sum(1 for r in pairs if r["method"] == m and r["status"] == "ok") for m in methods}
    totals = {m: sum(1 for r in pairs if r["method"] == m) for m in methods}
    labels = {m: f"{m} ({counts[m]}/{totals[m]})" for m in methods}
    first_w = max(len("method (scored/pairs)"), *(len(x) for x in labels.values())) + 3
    headers = {n: f"{n} {'↑' if REGISTRY[n].higher_is_better else '↓'}" for n in job.columns}
    widths = {n: max(len(headers[n]), *(len(_cell(stats[n][m])) for m in methods)) + 3 for n in job.columns}
    chunks: list[list[str]] = [[]]
    used = first_w + 1
    for name in job.columns:
        if chunks[-1] and used + widths[name] > width - 1:
            chunks.append([])
            used = first_w + 1
        chunks[-1].append(name)
        used += widths[name]
    best = {n: best_method(stats[n], REGISTRY[n].higher_is_better) for n in job.columns}
    title = f"methods: mean ± std, {job.convention} convention, vs {job.reference} sources (best in bold)"
    tables: list[Table] = []
    for chunk in chunks:
        table = Table(title=title if not tables else None)
        table.add_column("method (scored/pairs)", no_wrap=True)
        for name in chunk:
            table.add_column(headers[name], justify="right", no_wrap=True)
        for m in methods:
            cells = [Text(_cell(stats[n][m]), style="bold" if best[n] == m else "") for n in chunk]
            table.add_row(Text(labels[m]), *cells)
        tables.append(table)
    return tables

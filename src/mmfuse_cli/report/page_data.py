"""The data an HTML report page is built from: a run's ``run.csv`` or an ``evaluate`` table, read tolerantly,
turned into one JSON-ready dict (rows, metrics, failures, histograms, rankings, per-method summary).

Columns are read generically so the page keeps working when the tables grow: every numeric column that is a
known metric (or any other numeric column outside the fixed ones) is a metric; every ``a_*`` / ``b_*`` column is
a detail of that source, and a ``<name>_source`` / ``_origin`` / ``_provenance`` column next to ``<name>`` says
where that value came from (told / sidecar / estimated). Images are looked up by a callback, so this module does
no file work besides reading the table.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfuse_cli.report.summary import best_method, counts_in, histogram, number, ranking, summarize

FIXED = ("item", "status", "reason", "seconds", "output", "a", "b", "method", "convention", "reference")
"""Columns with a fixed meaning; never metrics."""

PROVENANCE_SUFFIXES = ("_source", "_origin", "_provenance", "_from")
"""A column ``a_noise_source`` (or ``_origin``, ``_provenance``, ``_from``) says where ``a_noise`` came from."""

SUMMARY_ITEMS = ("mean", "std")
"""Statuses of the summary rows ``evaluate`` appends; the page recomputes them from the pairs."""

IMAGE_ROLES = ("a", "b", "fused", "restored_a", "restored_b")

ImageLookup = Callable[[Mapping[str, str]], Mapping[str, Any]]
"""Row -> ``{role: {"thumb": url or None, "full": url} or None}`` (None: the file is missing)."""


class ReportError(ValueError):
    """The table cannot be read (missing, not CSV / JSON Lines, no ``item`` column); the message names it."""


@dataclass
class Table:
    """A run or evaluate table: the header in file order and every row as strings (missing cells empty)."""

    columns: list[str]
    rows: list[dict[str, str]]
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``compare`` for an evaluate table with a ``method`` column, else ``run``."""
        return "compare" if "method" in self.columns else "run"


def read_table(path: Path) -> Table:
    """Read a CSV file, or JSON Lines when the name ends in ``.jsonl`` / ``.json``.

    Read as mmfuse writes them: rows end only at a real line end (``newline=""``: a quoted name may hold
    ``\\n``, form feed, ``\\x1c``, ``\\x85`` or U+2028 and stays one row), and a name that is not UTF-8 comes
    back as the lone surrogates ``os.fsdecode`` gives it (``surrogateescape``), so it still names its file.

    Raises:
        ReportError: the file is missing, unreadable, not CSV / JSON Lines, or has no ``item`` column.
    """
    path = Path(path)
    try:
        # utf-8-sig: the same as utf-8, but a byte-order mark (a table saved by a spreadsheet) is not a name
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            if path.suffix.lower() in (".jsonl", ".json"):
                columns, rows = _json_lines(handle, path)
            else:
                reader = csv.DictReader(handle)
                try:
                    columns = [c for c in (reader.fieldnames or []) if c]
                    rows = [{k: _cell(v) for k, v in row.items() if k} for row in reader]
                except csv.Error as exc:
                    raise ReportError(f"{path}:{reader.line_num}: not a CSV table ({exc})") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if "item" not in columns:
        raise ReportError(f"{path}: not a run or evaluate table (no 'item' column)")
    return Table(columns, [{c: row.get(c, "") for c in columns} for row in rows], path)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # a row with more cells than the header
        return ",".join(map(str, value))
    return str(value)


def _json_lines(lines: Iterable[str], path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """One JSON object per line; a line ends only at ``\\n`` / ``\\r`` (the handle is opened with
    ``newline=""``), never at U+2028, ``\\x85`` or a form feed inside a string."""
    columns: list[str] = []
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            raise ReportError(f"{path}:{n}: not JSON Lines") from None
        if not isinstance(obj, dict):
            raise ReportError(f"{path}:{n}: not a JSON object")
        columns.extend(k for k in obj if k not in columns)
        rows.append({k: "" if v is None else str(v) for k, v in obj.items()})
    return columns, rows


_SURROGATE = re.compile("[\ud800-\udfff]")


def display_text(text: str) -> str:
    """``text`` as valid Unicode for the page: a byte of a name that is not UTF-8 (a lone surrogate
    U+DC80..U+DCFF from ``surrogateescape``) is shown as ``\\xNN``, any other lone surrogate as U+FFFD."""
    if not _SURROGATE.search(text):
        return text

    def show(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"

    return _SURROGATE.sub(show, text)


def displayable(value: Any) -> Any:
    """``value`` (JSON-ready: dicts, lists, strings, numbers) with every string and key through
    :func:`display_text`, so the page is valid UTF-8 whatever the file names."""
    if isinstance(value, str):
        return display_text(value)
    if isinstance(value, dict):
        return {display_text(k) if isinstance(k, str) else k: displayable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [displayable(v) for v in value]
    return value


def metric_columns(table: Table, directions: Mapping[str, bool]) -> list[str]:
    """Metric columns in table order: the known metrics (``directions``' keys) and any other column outside
    :data:`FIXED` and the ``a_*`` / ``b_*`` details whose cells are all numbers (at least one)."""
    out = []
    for col in table.columns:
        if col in FIXED or _side(col):
            continue
        cells = [r[col] for r in table.rows if r.get(col, "") != "" and r.get("status") not in SUMMARY_ITEMS]
        if col in directions or (cells and all(number(c) is not None or c.lower() == "nan" for c in cells)):
            out.append(col)
    return out


def _side(col: str) -> str:
    return col[0] if len(col) > 2 and col[:2] in ("a_", "b_") else ""


def source_columns(columns: Sequence[str], side: str) -> list[tuple[str, str, str | None]]:
    """``(label, column, provenance column or None)`` for every ``<side>_*`` column that is not itself a
    provenance column of another one; a provenance column without its value column stands alone."""
    mine = [c for c in columns if _side(c) == side]
    out = []
    for col in mine:
        base = next((col[: -len(s)] for s in PROVENANCE_SUFFIXES if col.endswith(s)), None)
        if base is not None and base in mine:
            continue  # shown next to its value
        prov = next((col + s for s in PROVENANCE_SUFFIXES if col + s in mine), None)
        out.append((col[2:].replace("_", " "), col, prov))
    return out


def source_details(row: Mapping[str, str], groups: Sequence[tuple[str, str, str | None]]) -> list[dict]:
    """The non-empty details of one source: ``[{"label", "value", "from"}]`` (``from`` empty when unknown)."""
    out = []
    for label, col, prov in groups:
        value = row.get(col, "")
        if value == "":
            continue
        out.append({"label": label, "value": value, "from": row.get(prov, "") if prov else ""})
    return out


def _summary_text(details: list[dict]) -> str:
    """One line for the table: the ``degradation`` detail if there is one, else every detail."""
    told = [f"{d['label']} from {d['from']}" for d in details if d["from"] and d["label"] != "degradation"]
    for d in details:
        if d["label"] == "degradation":
            text = d["value"] + (f" ({d['from']})" if d["from"] else "")
            return text + (f" [{', '.join(told)}]" if told else "")
    return "; ".join(f"{d['label']} {d['value']}" + (f" ({d['from']})" if d["from"] else "") for d in details)


def build_page_data(
    table: Table,
    directions: Mapping[str, bool],
    images: ImageLookup | None = None,
    title: str = "",
    bins: int = 12,
) -> dict[str, Any]:
    """The page's data: JSON-ready (floats finite or None, strings as given; the page escapes them).

    Args:
        table: from :func:`read_table` (possibly with extra rows and notes added by the caller).
        directions: metric name -> higher is better; metrics not listed count as higher-is-better.
        images: finds each row's images; None: no images.
        title: the page title (default: the table's path).
        bins: histogram bins per metric.
    """
    kind = table.kind
    metrics = metric_columns(table, directions)
    higher = {m: directions.get(m, True) for m in metrics}
    groups = {side: source_columns(table.columns, side) for side in ("a", "b")}
    rows: list[dict[str, Any]] = []
    for raw in table.rows:
        if raw.get("status") in SUMMARY_ITEMS:
            continue
        details = {side: source_details(raw, groups[side]) for side in ("a", "b")}
        found = dict(images(raw)) if images else {}
        rows.append(
            {
                "item": raw.get("item", ""),
                "method": raw.get("method", ""),
                "status": raw.get("status", "") or "unknown",
                "reason": raw.get("reason", ""),
                "seconds": number(raw.get("seconds")),
                "values": {m: number(raw.get(m)) for m in metrics},
                "sources": details,
                "degradation": {side: _summary_text(details[side]) for side in ("a", "b")},
                "images": {role: found.get(role) for role in IMAGE_ROLES if role in found},
            }
        )
    methods = list(dict.fromkeys(r["method"] for r in rows)) if kind == "compare" else [""]
    flat = [{"method": r["method"], "status": r["status"], **r["values"]} for r in rows]
    stats = summarize(flat, metrics)
    ok = [i for i, r in enumerate(rows) if r["status"] == "ok"]
    hist = {}
    for m in metrics:
        edges = histogram([rows[i]["values"][m] for i in ok], bins)["edges"]
        by_method = {
            name: counts_in([rows[i]["values"][m] for i in ok if rows[i]["method"] == name], edges)
            for name in methods
        }
        hist[m] = {"edges": edges, "counts": by_method}
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return displayable(
        {
            "kind": kind,
            "title": title or (str(table.path) if table.path else "mmfuse report"),
            "source": str(table.path) if table.path else "",
            "notes": list(table.notes),
            "metrics": [{"name": m, "higher": higher[m]} for m in metrics],
            "methods": methods if kind == "compare" else [],
            "counts": counts,
            "rows": rows,
            "failures": [
                {"item": r["item"], "method": r["method"], "status": r["status"], "reason": r["reason"]}
                for r in rows
                if r["status"] == "failed"
            ],
            "histograms": hist,
            "rank": {
                m: [ok[j] for j in ranking([rows[i]["values"][m] for i in ok], higher[m])] for m in metrics
            },
            "summary": {
                m: {
                    name: (None if s is None else {"mean": s.mean, "std": s.std, "n": s.n})
                    for name, s in st.items()
                }
                for m, st in stats.items()
            },
            "best": {m: best_method(stats[m], higher[m]) for m in metrics},
        }
    )

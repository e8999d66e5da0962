"""Build ``report/index.html`` for a run folder or an evaluate table (library behind ``mmfuse report``).

Reads the table (``OUT/run.csv``, or an evaluate CSV / JSON Lines with a ``method`` column for the comparison
page), finds every row's images (fused, sources, restored sources under ``OUT/sources/``), writes thumbnails,
renders the page and writes it atomically. Made for runs that are half finished or partly failed: a missing
``run.csv``, missing or unreadable images and fused images that have no row yet are shown as such, never raised.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mmfuse_cli.files import atomic_write_text
from mmfuse_cli.io import is_image_file
from mmfuse_cli.report.html import render_page
from mmfuse_cli.report.page_data import ReportError, Table, build_page_data, read_table
from mmfuse_cli.report.thumbs import make_thumb

REPORT_DIR = "report"
THUMBS_DIR = "thumbs"
RUN_TABLE = "run.csv"


@dataclass
class ReportResult:
    """What :func:`build_report` wrote: the page, how many rows and failures it shows, the thumbnails, the images
    that were missing or unreadable, and notes about the run (no run.csv, rows still to come)."""

    index: Path
    kind: str
    rows: int
    failures: int
    thumbs: int
    missing: int
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        """``report: 4 pair(s), 1 failed, 7 thumbnail(s) -> OUT/report/index.html``."""
        what = "row(s)" if self.kind == "compare" else "pair(s)"
        missing = f", {self.missing} image(s) missing" if self.missing else ""
        return f"report: {self.rows} {what}, {self.failures} failed, {self.thumbs} thumbnail(s){missing} -> {self.index}"


def locate(target: Path) -> tuple[Path | None, Path | None, Path]:
    """``(run folder or None, table or None, default report folder)`` for a run folder or a table file.

    Raises:
        ReportError: ``target`` is neither a folder nor a file.
    """
    target = Path(target)
    if target.is_dir():
        table = target / RUN_TABLE
        return target, table if table.is_file() else None, target / REPORT_DIR
    if target.is_file():
        run_dir = target.parent if target.name == RUN_TABLE else None
        return run_dir, target, target.parent / REPORT_DIR
    raise ReportError(
        f"{target}: no such folder or file (give a run's output folder or a run / evaluate CSV)"
    )


def unlisted_outputs(run_dir: Path, listed: set[str]) -> dict[str, Path]:
    """Fused images in ``run_dir`` that no row names (``sources/``, ``report/`` and hidden files left out):
    the pairs a run still going, or killed, finished after it last wrote run.csv."""
    found = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if rel.parts[0] in ("sources", REPORT_DIR) or any(p.startswith(".") for p in rel.parts):
            continue
        key = rel.with_suffix("").as_posix()
        if path.is_file() and is_image_file(path) and key not in listed:
            found[key] = path
    return found


def load_table(run_dir: Path | None, table_path: Path | None) -> Table:
    """The table to show: read from ``table_path``, plus one ``unlisted`` row per fused image of ``run_dir``
    that has no row; with no table at all, the images alone (and a note saying so)."""
    if table_path is not None:
        table = read_table(table_path)
    else:
        table = Table(["item", "status", "reason", "output"], [], run_dir / RUN_TABLE if run_dir else None)
        table.notes.append(f"no {RUN_TABLE} in {run_dir}: showing the fused images found there")
    if run_dir is not None and table.kind == "run":
        extra = unlisted_outputs(run_dir, {r.get("item", "") for r in table.rows})
        for col in ("item", "status", "reason", "output"):
            if col not in table.columns:
                table.columns.append(col)
        for key, path in extra.items():
            reason = f"no row in {RUN_TABLE} (the run was still going or stopped early)"
            table.rows.append(
                {**dict.fromkeys(table.columns, ""), "item": key, "status": "unlisted"}
                | {
                    "reason": reason,
                    "output": str(path),
                }
            )
        if extra and table_path is not None:
            table.notes.append(f"{len(extra)} fused image(s) in {run_dir} have no row in {RUN_TABLE} yet")
    return table


def _existing(*candidates: Path | None) -> Path | None:
    return next((c for c in candidates if c is not None and c.is_file()), None)


def row_files(row: Mapping[str, str], run_dir: Path | None) -> dict[str, Path | None]:
    """Every image role of a row -> its file, or None when the row names one that does not exist (roles the
    row has no reason to have are left out)."""
    out: dict[str, Path | None] = {}
    output, item = row.get("output", ""), row.get("item", "")
    suffix = Path(output).suffix if output else ""
    for side in ("a", "b"):
        if row.get(side):
            out[side] = _existing(Path(row[side]), run_dir / row[side] if run_dir else None)
    if output or (row.get("status") == "ok" and run_dir is not None):
        local = run_dir / f"{item}{suffix}" if run_dir is not None and suffix else None
        out["fused"] = _existing(Path(output) if output else None, local)
    if run_dir is not None and suffix:
        for side in ("a", "b"):
            restored = run_dir / "sources" / side / f"{item}{suffix}"
            if restored.is_file():
                out[f"restored_{side}"] = restored
    return out


def file_url(path: Path, base: Path) -> str:
    """A relative URL from the folder ``base`` to ``path`` (every character that is not safe quoted), or a
    ``file://`` URL when there is no relative path (another drive)."""
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(base))
    except ValueError:
        return Path(os.path.abspath(path)).as_uri()
    return quote(Path(rel).as_posix(), safe="/")


@dataclass
class Prepared:
    """A report before its thumbnails: the table, each row's files, and the distinct image files to thumbnail."""

    run_dir: Path | None
    table_path: Path | None
    table: Table
    files: list[dict[str, Path | None]]
    images: list[Path]


def prepare_report(run_dir: Path | None, table_path: Path | None) -> Prepared:
    """Read the table and find every row's images (see :func:`locate` for the arguments of a target).

    Raises:
        ReportError: the table cannot be read, or there is neither a table nor a run folder.
    """
    if run_dir is None and table_path is None:
        raise ReportError("nothing to report: no run folder and no table")
    table = load_table(run_dir, table_path)
    files = [row_files(r, run_dir) for r in table.rows]
    unique = sorted({p for f in files for p in f.values() if p is not None})
    return Prepared(run_dir, table_path, table, files, unique)


def write_report(
    prepared: Prepared,
    report_dir: Path,
    directions: Mapping[str, bool],
    title: str = "",
    on_thumb: Callable[[], None] | None = None,
    workers: int = 4,
) -> ReportResult:
    """Write ``report_dir/index.html`` and its thumbnails (``report_dir/thumbs/``; unused ones are removed).

    Args:
        directions: metric name -> higher is better (:data:`mmfuse_cli.metrics.REGISTRY`'s).
        on_thumb: called once per image of ``prepared.images`` handled (for a progress bar).
    Raises:
        OSError: the report folder cannot be written.
    """
    table, run_dir = prepared.table, prepared.run_dir
    report_dir = Path(report_dir)
    thumbs_dir = report_dir / THUMBS_DIR
    thumbs_dir.mkdir(parents=True, exist_ok=True)

    def thumb(path: Path) -> str | None:
        name = make_thumb(path, thumbs_dir)
        if on_thumb:
            on_thumb()
        return name

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="mmfuse-thumb") as pool:
        names = dict(zip(prepared.images, pool.map(thumb, prepared.images)))
    lookup = {id(row): f for row, f in zip(table.rows, prepared.files)}

    def images(row: Mapping[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role, path in lookup[id(row)].items():
            if path is None:
                out[role] = None
                continue
            name = names.get(path)
            out[role] = {
                "thumb": f"{THUMBS_DIR}/{name}" if name else None,
                "full": file_url(path, report_dir),
                "name": path.name,
            }
        return out

    default_title = str(run_dir) if run_dir is not None else str(prepared.table_path)
    data = build_page_data(table, directions, images, title or default_title)
    index = atomic_write_text(report_dir / "index.html", render_page(data))
    used = {n for n in names.values() if n}
    for stale in thumbs_dir.glob("*.jpg"):
        if stale.name not in used:
            stale.unlink(missing_ok=True)
    missing = sum(p is None for f in prepared.files for p in f.values()) + sum(
        n is None for n in names.values()
    )
    return ReportResult(
        index, data["kind"], len(data["rows"]), len(data["failures"]), len(used), missing, data["notes"]
    )


def build_report(
    target: Path, report_dir: Path | None, directions: Mapping[str, bool], title: str = ""
) -> ReportResult:
    """:func:`locate`, :func:`prepare_report` and :func:`write_report` in one call (report folder default:
    ``report/`` next to the table, or in the run folder)."""
    run_dir, table_path, default_dir = locate(target)
    return write_report(prepare_report(run_dir, table_path), report_dir or default_dir, directions, title)

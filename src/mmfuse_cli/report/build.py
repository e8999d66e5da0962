"""Build ``report/index.html`` for a run folder or an evaluate table (library behind ``mmfuse report``).

Reads the table (``OUT/run.csv``, or an evaluate CSV / JSON Lines with a ``method`` column for the comparison
page), finds every row's images (fused, sources, restored sources under ``OUT/sources/``), writes thumbnails,
renders the page and writes it atomically. Made for runs that are half finished or partly failed: a missing
``run.csv``, missing or unreadable images and fused images that have no row yet are shown as such, never raised.

The report folder may already hold other files: only what the report owns is ever replaced or removed. The
manifest ``.mmfuse-report.json`` lists the page and every thumbnail a report wrote; the next report into that
folder removes only the listed thumbnails it no longer uses, and refuses to overwrite an ``index.html`` that
neither a manifest lists nor carries mmfuse's generator tag (a page of an older mmfuse, with no manifest, does).
"""

from __future__ import annotations

import json
import os
import re
import stat
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
from mmfuse_cli.report.planes import is_volume_source, planes_label
from mmfuse_cli.report.thumbs import make_thumb
from mmfuse_cli.small_files import read_small_file

REPORT_DIR = "report"
THUMBS_DIR = "thumbs"
RUN_TABLE = "run.csv"
INDEX = "index.html"
MANIFEST = ".mmfuse-report.json"
"""In the report folder: what the last report wrote there (``format``, ``version``, ``index``, ``thumbs``)."""
MANIFEST_FORMAT = "mmfuse-report"
MANIFEST_VERSION = 1
MANIFEST_LIMIT = 16 << 20
"""Largest manifest read (a thumbnail name is 24 bytes listed: room for hundreds of thousands)."""
GENERATOR = b'<meta name="generator" content="mmfuse">'
"""In the head of every page :func:`mmfuse_cli.report.html.render_page` writes."""
LEGACY_MARKS = (b'<p class="kind">mmfuse report: ', b'<script type="application/json" id="report-data">')
"""Both in a page of an mmfuse from before the generator tag and the manifest."""
HEAD_BYTES = 1 << 20
"""How much of an existing ``index.html`` is read to find those marks (they come before the page's data)."""
LEGACY_PAGE_LIMIT = 256 << 20
"""Largest older page (no manifest) read for the thumbnails it shows, which the new report then owns."""
_LEGACY_THUMB = re.compile(rb'"thumb":"thumbs/([^"\\/]+)"')


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
    """The first candidate that is a file, or a DICOM series folder (a volume source)."""
    return next((c for c in candidates if c is not None and (c.is_file() or is_volume_source(c))), None)


def row_files(row: Mapping[str, str], run_dir: Path | None) -> dict[str, Path | None]:
    """Every image role of a row -> its file, or None when the row names one that does not exist (roles the
    row has no reason to have are left out)."""
    out: dict[str, Path | None] = {}
    output, item = row.get("output", ""), row.get("item", "")
    suffix = (".nii.gz" if output.lower().endswith(".nii.gz") else Path(output).suffix) if output else ""
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
    # the raw bytes of the name, so a name that is not UTF-8 (lone surrogates) links to its real file
    return quote(os.fsencode(Path(rel).as_posix()), safe="/")


@dataclass
class Prepared:
    """A report before its thumbnails: the table, each row's files, and the distinct image files to thumbnail."""

    run_dir: Path | None
    table_path: Path | None
    table: Table
    files: list[dict[str, Path | None]]
    images: list[Path]


def plain_thumb_name(name: object) -> bool:
    """True for a name a manifest may list: a plain ``*.jpg`` file name (no folder, not hidden, no NUL)."""
    return (
        isinstance(name, str)
        and name.endswith(".jpg")
        and len(name) > len(".jpg")
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
        and os.path.basename(name) == name
    )


def read_manifest(report_dir: Path) -> set[str] | None:
    """The thumbnails the manifest of ``report_dir`` lists, or None when there is no manifest of ours there
    (missing, not a regular file, too large, not JSON, another format or version, or any name in it that is
    not a plain ``*.jpg`` file name: a manifest that points outside ``thumbs/`` is not trusted at all)."""
    try:
        data = json.loads(read_small_file(Path(report_dir) / MANIFEST, MANIFEST_LIMIT))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    thumbs = data.get("thumbs")
    if data.get("version") != MANIFEST_VERSION or data.get("index") != INDEX or not isinstance(thumbs, list):
        return None
    if not all(plain_thumb_name(t) for t in thumbs):
        return None
    return set(thumbs)


def write_manifest(report_dir: Path, thumbs: set[str]) -> Path:
    """Write ``report_dir``'s manifest (atomically) listing the page and ``thumbs``."""
    data = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "index": INDEX, "thumbs": sorted(thumbs)}
    return atomic_write_text(Path(report_dir) / MANIFEST, json.dumps(data, indent=1) + "\n")


def _head(path: Path, size: int) -> bytes | None:
    """The first ``size`` bytes of the regular file at ``path``; None when it is something else (a FIFO is
    opened without blocking, never read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, got = [], 0
        while got < size:
            chunk = os.read(fd, size - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _is_our_page(head: bytes) -> bool:
    return GENERATOR in head or all(mark in head for mark in LEGACY_MARKS)


def _legacy_thumbs(index: Path) -> set[str]:
    """The thumbnails an older page of ours (no manifest) shows: written by that report, so now ours."""
    try:
        page = read_small_file(index, LEGACY_PAGE_LIMIT)
    except OSError:
        return set()
    names = {m.decode("utf-8", "surrogateescape") for m in _LEGACY_THUMB.findall(page)}
    return {n for n in names if plain_thumb_name(n)}


def claim_report_dir(report_dir: Path) -> set[str]:
    """Check that a report may be written into ``report_dir``; the thumbnails an earlier report of ours made
    there (the ones it may remove when the new page no longer uses them).

    Raises:
        ReportError: ``index.html`` there is not a page of ours (no manifest lists it and it has no mmfuse
            generator tag, or it is not a regular file), or the manifest's name is taken by something that is
            not a regular file.
    """
    report_dir = Path(report_dir)
    manifest, index = report_dir / MANIFEST, report_dir / INDEX
    try:
        mode = manifest.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # a folder to make (or a file there: the write says so)
        mode = None
    except OSError as exc:
        raise ReportError(f"{manifest}: cannot read ({exc.strerror or exc})") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise ReportError(
            f"{manifest}: not a regular file, not a report manifest of mmfuse; refusing to replace it "
            "(remove it, or give another folder with -o)"
        )
    listed = read_manifest(report_dir)
    if not os.path.lexists(index):
        return listed or set()
    try:
        head = _head(index, HEAD_BYTES)
        why = "not a regular file" if head is None else "no manifest lists it, no mmfuse generator tag in it"
    except FileNotFoundError:
        head, why = None, "a link to nothing"
    except OSError as exc:
        head, why = None, f"it cannot be read: {exc.strerror or exc}"
    if head is not None and (listed is not None or _is_our_page(head)):
        return listed if listed is not None else _legacy_thumbs(index)
    raise ReportError(
        f"{index}: not a page mmfuse wrote ({why}); refusing to overwrite it "
        "(move it away, or give another folder with -o)"
    )


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
    """Write ``report_dir/index.html``, its thumbnails (``report_dir/thumbs/``) and the manifest listing them;
    the thumbnails an earlier report listed that the page no longer uses are removed, nothing else is.

    Args:
        directions: metric name -> higher is better (:data:`mmfuse_cli.metrics.REGISTRY`'s).
        on_thumb: called once per image of ``prepared.images`` handled (for a progress bar).
    Raises:
        ReportError: ``report_dir`` holds an ``index.html`` that is not ours (see :func:`claim_report_dir`);
            nothing is written.
        OSError: the report folder cannot be written.
    """
    table, run_dir = prepared.table, prepared.run_dir
    report_dir = Path(report_dir)
    owned = claim_report_dir(report_dir)
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
            } | ({"planes": planes_label(role)} if is_volume_source(path) else {})
        return out

    default_title = str(run_dir) if run_dir is not None else str(prepared.table_path)
    data = build_page_data(table, directions, images, title or default_title)
    used = {n for n in names.values() if n}
    write_manifest(report_dir, owned | used)  # first: whatever happens next, every file of ours is listed
    index = atomic_write_text(report_dir / INDEX, render_page(data))
    for name in sorted(owned - used):
        _remove_thumb(thumbs_dir / name)
    write_manifest(report_dir, used)
    missing = sum(p is None for f in prepared.files for p in f.values()) + sum(
        n is None for n in names.values()
    )
    return ReportResult(
        index, data["kind"], len(data["rows"]), len(data["failures"]), len(used), missing, data["notes"]
    )


def _remove_thumb(path: Path) -> None:
    """Remove a thumbnail of ours that the page no longer shows: only a regular file (a link or anything else
    put there since is not the one the report wrote)."""
    try:
        if stat.S_ISREG(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass


def build_report(
    target: Path, report_dir: Path | None, directions: Mapping[str, bool], title: str = ""
) -> ReportResult:
    """:func:`locate`, :func:`prepare_report` and :func:`write_report` in one call (report folder default:
    ``report/`` next to the table, or in the run folder)."""
    run_dir, table_path, default_dir = locate(target)
    return write_report(prepare_report(run_dir, table_path), report_dir or default_dir, directions, title)

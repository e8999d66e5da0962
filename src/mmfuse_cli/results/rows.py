"""Per-item results and where their rows go: CSV (written atomically) and JSON Lines on stdout.

Shared by every batch job so that ``degrade``, ``run`` and ``evaluate`` report the same way: data on stdout (or a
file); human messages are :mod:`mmfuse_cli.results.console`'s.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mmfuse_cli.files import atomic_write_text, writes_in_place

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2


@dataclass
class ItemResult:
    """Outcome of one item (a file or a pair). ``status`` is ``ok``, ``failed`` or ``skipped``."""

    key: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    output: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    fatal: bool = False  # the failure will hit every later item too (e.g. a full disk): the batch should stop

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "item": self.key,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
            "output": self.output,
        }
        row.update(self.extra)
        return row


def exit_code(results: Iterable[ItemResult]) -> int:
    """0 when every item succeeded or was skipped, 1 when any failed."""
    return EXIT_ITEMS_FAILED if any(r.failed for r in results) else EXIT_OK


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, 6)
    return value


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    """CSV text with the union of the rows' keys as header (first-seen order). A row with a carriage return in a
    value (a file name may hold one) is written with every field quoted: the csv module's minimal quoting looks
    for the line terminator, ``\\n``, only, and a reader would split the row at a bare ``\\r``."""
    header: list[str] = []
    for row in rows:
        for key in row:
            if key not in header:
                header.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    quoted = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writeheader()
    for row in rows:
        clean = {k: _clean(v) for k, v in row.items()}
        has_cr = any(isinstance(v, str) and "\r" in v for v in clean.values())
        (quoted if has_cr else writer).writerow(clean)
    return buf.getvalue()


_UNDECODABLE = re.compile("[\udc80-\udcff]")
"""The lone surrogates ``os.fsdecode`` makes of the bytes of a file name that is not UTF-8."""


def json_line(row: dict[str, Any]) -> str:
    """One JSON object on one line (NaN/inf become null), valid UTF-8 whatever the file names.

    A name byte that is not UTF-8 (a lone surrogate U+DC80..U+DCFF, see
    :func:`mmfuse_cli.files.atomic_write_text`) is written as its JSON escape (backslash, ``udcXX``):
    ``json.loads`` gives back the same string, and ``os.fsencode`` of it the original bytes."""
    text = json.dumps({k: _clean(v) for k, v in row.items()}, ensure_ascii=False)
    return _UNDECODABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class RowSink:
    """Where per-item rows go: JSON Lines on stdout (``--json``) and/or a CSV file, written atomically.

    The CSV is rewritten as rows come, after ``flush_every`` new rows or ``flush_seconds`` since the last write,
    whichever is first, so a crash loses seconds of rows, and at :meth:`close`. A CSV path that is written through
    (a FIFO, ``/dev/stdout``: :func:`mmfuse_cli.files.writes_in_place`) is written once, at :meth:`close`.
    """

    def __init__(
        self,
        json_stdout: bool = False,
        csv_path: Path | None = None,
        stream: TextIO | None = None,
        flush_every: int = 20,
        flush_seconds: float = 2.0,
    ):
        self.json_stdout = json_stdout
        self.csv_path = csv_path
        self.stream = stream or sys.stdout
        self.rows: list[dict[str, Any]] = []
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._periodic = csv_path is not None and not _written_through(csv_path)
        self._written_rows = 0
        self._written_at = time.monotonic()

    def emit(self, row: dict[str, Any], stream_row: dict[str, Any] | None = None) -> None:
        """Record a row for the CSV (and print ``stream_row``, default the same row, as JSON when asked); rewrite
        the CSV when it is due."""
        self.rows.append(row)
        if self.json_stdout:
            try:
                self.stream.write(json_line(row if stream_row is None else stream_row) + "\n")
                self.stream.flush()
            except BrokenPipeError:  # e.g. `mmfuse run ... --json | head`: stop printing, keep working
                self.json_stdout = False
        if self._periodic and self._due():
            self.flush()

    def _due(self) -> bool:
        new = len(self.rows) - self._written_rows
        return new >= self.flush_every or time.monotonic() - self._written_at >= self.flush_seconds

    def flush(self) -> None:
        """Write the CSV with every row so far (a complete, valid table of what is finished)."""
        if self.csv_path is not None:
            atomic_write_text(self.csv_path, rows_to_csv(self.rows))
            self._written_rows, self._written_at = len(self.rows), time.monotonic()

    def close(self) -> None:
        """The final write of the CSV."""
        self.flush()


def _written_through(path: Path) -> bool:
    try:
        return writes_in_place(path)
    except OSError:  # a directory, a loop: the final write says so
        return False


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """The rows of an earlier CSV table by ``item`` (empty when there is none or it cannot be read): what a
    resumed run keeps for the items it skips. Read as it was written: ``newline=""`` (a quoted name may hold a
    line break) and ``surrogateescape`` (a name that is not UTF-8)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            return {row["item"]: row for row in csv.DictReader(handle) if row.get("item")}
    except (OSError, csv.Error, KeyError):
        return {}

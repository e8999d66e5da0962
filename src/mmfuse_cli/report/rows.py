"""Per-item results and where their rows go: CSV (written atomically) and JSON Lines on stdout.

Shared by every batch job so that ``degrade``, ``run`` and ``evaluate`` report the same way: data on stdout (or a
file); human messages are :mod:`mmfuse_cli.report.console`'s.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mmfuse_cli.files import atomic_write_text

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
    """CSV text with the union of the rows' keys as header (first-seen order)."""
    header: list[str] = []
    for row in rows:
        for key in row:
            if key not in header:
                header.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _clean(v) for k, v in row.items()})
    return buf.getvalue()


def json_line(row: dict[str, Any]) -> str:
    """One JSON object on one line (NaN/inf become null)."""
    return json.dumps({k: _clean(v) for k, v in row.items()}, ensure_ascii=False)


class RowSink:
    """Where per-item rows go: JSON Lines on stdout (``--json``) and/or a CSV file written atomically at the end."""

    def __init__(
        self,
        json_stdout: bool = False,
        csv_path: Path | None = None,
        stream: TextIO | None = None,
        flush_every: int = 100,
    ):
        self.json_stdout = json_stdout
        self.csv_path = csv_path
        self.stream = stream or sys.stdout
        self.rows: list[dict[str, Any]] = []
        self.flush_every = flush_every

    def emit(self, row: dict[str, Any]) -> None:
        """Record a row (and print it as JSON when asked). The CSV is rewritten every ``flush_every`` rows, so
        an interrupted run still leaves a complete, valid report of what it finished."""
        self.rows.append(row)
        if self.json_stdout:
            try:
                self.stream.write(json_line(row) + "\n")
                self.stream.flush()
            except BrokenPipeError:  # e.g. `mmfuse run ... --json | head`: stop printing, keep working
                self.json_stdout = False
        if self.csv_path is not None and self.flush_every and len(self.rows) % self.flush_every == 0:
            self.close()

    def close(self) -> None:
        if self.csv_path is not None:
            atomic_write_text(self.csv_path, rows_to_csv(self.rows))

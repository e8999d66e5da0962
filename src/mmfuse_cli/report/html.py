"""The report page: one self-contained HTML string (inline CSS and JS from ``report/assets``, the data embedded as
JSON), so it opens from ``file://`` with no network. Only the thumbnails and the full images are separate files,
linked by relative URL.

Everything user-supplied (file names, reasons, degradations) reaches the page as JSON and is put in the document by
the script with ``textContent`` / attributes, never as markup; the JSON is escaped so that no ``<``, ``>`` or
``&`` can end its ``<script>`` element.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any


def asset(name: str) -> str:
    """The text of a package data file under ``mmfuse_cli/report/assets``."""
    return resources.files("mmfuse_cli.report").joinpath("assets").joinpath(name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """``data`` as JSON that is safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render_page(data: dict[str, Any]) -> str:
    """The whole page for ``data`` (from :func:`mmfuse_cli.report.page_data.build_page_data`)."""
    title = html.escape(str(data.get("title") or "mmfuse report"))
    kind = "comparison of methods" if data.get("kind") == "compare" else "fusion run"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="mmfuse">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title} - mmfuse report</title>
<style>
{asset("report.css")}
</style>
</head>
<body>
<header><h1>{title}</h1><p class="kind">mmfuse report: {kind}</p><nav id="nav"></nav></header>
<main id="app"><noscript>This report needs JavaScript to show its tables and images.</noscript></main>
<div id="viewer" class="viewer" hidden></div>
<script type="application/json" id="report-data">{embed_json(data)}</script>
<script>
{asset("report.js")}
</script>
</body>
</html>
"""

"""`mmfuse report`: the data the page is built from (unit tests), the files it writes, and the page itself in a
real headless Chromium (Playwright driving Debian's `chromium`; skipped with the reason where none can be had)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from conftest import astronaut, camera
from typer.testing import CliRunner

from mmfuse_cli.cli import app
from mmfuse_cli.io import write_image
from mmfuse_cli.metrics import HIGHER_IS_BETTER as DIRECTIONS
from mmfuse_cli.model.checkpoint import save_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig
from mmfuse_cli.report.build import build_report, file_url, locate, prepare_report
from mmfuse_cli.report.html import embed_json, render_page
from mmfuse_cli.report.page_data import (
    ReportError,
    Table,
    build_page_data,
    metric_columns,
    read_table,
    source_columns,
)
from mmfuse_cli.report.summary import best_method, best_worst, counts_in, histogram, stat, summarize

runner = CliRunner()
ODD = 'we<ird> & "q" ünï#%'  # a file name that needs HTML escaping and URL quoting


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _run_folder(root: Path, n: int = 3, extra_rows: int = 0) -> Path:
    """A hand-made run: sources, fused images, restored a, a run.csv with provenance columns and one failure."""
    out, ir, vi = root / "out", root / "ir", root / "vi"
    for folder in (out / "sources" / "a", ir, vi):
        folder.mkdir(parents=True)
    rows = []
    names = [f"p{i}" for i in range(n - 1)] + [ODD]
    for i, name in enumerate(names):
        a, b = np.rot90(camera(48, 64), 2 * i).copy(), np.roll(astronaut(48, 64), 9 * i, axis=1)
        write_image(ir / f"{name}.png", a)
        write_image(vi / f"{name}.png", b)
        write_image(out / f"{name}.png", (a[..., None] + b) / 2)
        write_image(out / "sources" / "a" / f"{name}.png", a)
        rows.append(
            {
                "item": name,
                "status": "ok",
                "reason": "",
                "seconds": 0.1 + i,
                "output": str(out / f"{name}.png"),
                "a": str(ir / f"{name}.png"),
                "b": str(vi / f"{name}.png"),
                "a_degradation": "blur 1.5, x2 down, noise 0.05",
                "b_degradation": "noise 0.05",
                "a_noise": "0.05",
                "a_noise_source": "sidecar",
                "EN": 7.0 - 0.3 * ((i * 7) % 5),
                "SD": 40 + i,
            }
        )
    for j in range(extra_rows):  # many rows sharing the first images, for paging
        rows.append({**rows[j % n], "item": f"x{j:03d}", "EN": float(j % 17)})
    rows.append(
        {
            **dict.fromkeys(rows[0], ""),
            "item": "bad",
            "status": "failed",
            "reason": "ir/bad.png: <b>cannot decode</b>",
        }
    )
    (out / "run.csv").write_text(_csv(rows), encoding="utf-8")
    return out


# --- the page's data ---


def test_summary_statistics():
    assert stat(["1", 3, None, "", float("nan")]).mean == 2 and stat([1, 3]).std == 1 and stat([]) is None
    h = histogram([0, 1, 2, 3, 4, 10], bins=5)
    assert h["edges"][0] == 0 and h["edges"][-1] == 10 and sum(h["counts"]) == 6 and h["counts"][-1] == 1
    assert histogram([2, 2]) == {"edges": [1.5, 2.5], "counts": [2]} and histogram([None]) == {
        "edges": [],
        "counts": [],
    }
    assert counts_in([0, 5, 10, 11], h["edges"]) == [1, 0, 1, 0, 1]
    assert best_worst([3, None, 1, 2], 2) == ([0, 3], [2, 3])
    assert best_worst([3, None, 1, 2], 1, higher_is_better=False) == ([2], [0])
    stats = summarize([{"method": "x", "status": "ok", "Nabf": 0.2}, {"method": "y", "status": "ok", "Nabf": 0.1},
                       {"method": "y", "status": "failed", "Nabf": 0.0}], ["Nabf"])  # fmt: skip
    assert stats["Nabf"]["y"].n == 1 and best_method(stats["Nabf"], higher_is_better=False) == "y"
    assert (
        best_method(stats["Nabf"], higher_is_better=True) == "x"
        and best_method({"x": stats["Nabf"]["x"]}) is None
    )


def test_columns_are_read_generically(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text(
        "item,status,seconds,a,a_blur,a_blur_source,a_origin,b_scale,b_scale_provenance,EN,MyScore,note\n"
        "p0,ok,0.5,x.png,1.5,flag,estimated,2,sidecar,7.1,0.3,hello\n"
        "mean,mean,,,,,,,,7.1,0.3,\n"
    )
    table = read_table(path)
    assert table.kind == "run" and metric_columns(table, DIRECTIONS) == ["EN", "MyScore"]
    assert source_columns(table.columns, "a") == [
        ("blur", "a_blur", "a_blur_source"),
        ("origin", "a_origin", None),
    ]
    data = build_page_data(table, DIRECTIONS)
    assert [r["item"] for r in data["rows"]] == ["p0"]  # the summary row is recomputed, not shown
    row = data["rows"][0]
    assert row["sources"]["a"] == [{"label": "blur", "value": "1.5", "from": "flag"},
                                   {"label": "origin", "value": "estimated", "from": ""}]  # fmt: skip
    assert row["sources"]["b"] == [{"label": "scale", "value": "2", "from": "sidecar"}]
    assert row["degradation"]["a"] == "blur 1.5 (flag); origin estimated"
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps({"method": "m", "item": "p0", "status": "ok", "EN": None}) + "\n")
    assert read_table(jsonl).kind == "compare" and read_table(jsonl).rows[0]["EN"] == ""
    (tmp_path / "bad.csv").write_text("name,value\nx,1\n")
    with pytest.raises(ReportError, match="no 'item' column"):
        read_table(tmp_path / "bad.csv")
    with pytest.raises(ReportError, match="cannot read"):
        read_table(tmp_path / "none.csv")


def test_page_data_rows_failures_histograms_and_rankings(tmp_path):
    out = _run_folder(tmp_path)
    data = build_page_data(read_table(out / "run.csv"), DIRECTIONS)
    assert [r["status"] for r in data["rows"]] == ["ok", "ok", "ok", "failed"]
    assert data["counts"] == {"ok": 3, "failed": 1}
    assert data["failures"] == [
        {"item": "bad", "method": "", "status": "failed", "reason": "ir/bad.png: <b>cannot decode</b>"}
    ]
    assert [m["name"] for m in data["metrics"]] == ["EN", "SD"]
    ens = [r["values"]["EN"] for r in data["rows"]]
    assert data["rank"]["EN"] == sorted(range(3), key=lambda i: -ens[i])  # failed row left out
    assert sum(data["histograms"]["EN"]["counts"][""]) == 3 and len(data["histograms"]["EN"]["edges"]) == 13
    assert data["rows"][0]["degradation"]["a"] == "blur 1.5, x2 down, noise 0.05 [noise from sidecar]"
    lower = build_page_data(Table(["item", "status", "Nabf"], [{"item": "p", "status": "ok", "Nabf": "0.1"},
                                  {"item": "q", "status": "ok", "Nabf": "0.0"}]), DIRECTIONS)  # fmt: skip
    assert lower["rank"]["Nabf"] == [1, 0] and lower["metrics"] == [{"name": "Nabf", "higher": False}]


def test_escaping_of_names_in_the_page():
    data = {
        "title": "</script><b>&",
        "rows": [{"item": ODD + "</script><!--", "line": "\u2028"}],
        "kind": "run",
    }
    page = render_page(data)
    script = page.split('<script type="application/json" id="report-data">')[1].split("</script>")[0]
    assert "<" not in script and ">" not in script and "&" not in script
    assert json.loads(script)["rows"][0]["item"] == ODD + "</script><!--"
    assert "<title>&lt;/script&gt;&lt;b&gt;&amp; - mmfuse report</title>" in page
    assert json.loads(embed_json({"x": "\u2028"})) == {"x": "\u2028"}
    assert not re.findall(
        r"(?:https?:)?//(?!www\.w3\.org/2000/svg)", page
    )  # no URL to any server in the page
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing but local images


# --- the files ---


def test_report_of_a_run_writes_thumbnails_and_relative_links(tmp_path):
    out = _run_folder(tmp_path)
    result = build_report(out, None, DIRECTIONS)
    assert result.index == out / "report" / "index.html" and result.rows == 4 and result.failures == 1
    assert result.thumbs == 3 * 4 and result.missing == 0  # a, b, fused, restored a per pair
    data = _page_data(result.index)
    row = next(r for r in data["rows"] if r["item"] == ODD)
    assert set(row["images"]) == {"a", "b", "fused", "restored_a"}
    for image in row["images"].values():
        assert (result.index.parent / image["thumb"]).is_file()
        assert (result.index.parent / unquote(image["full"])).is_file()
        assert "#" not in image["full"] and '"' not in image["full"]
    assert file_url(tmp_path / "a b#.png", tmp_path / "r") == "../a%20b%23.png"
    # a second report reuses the thumbnails; a changed file gets a new one, the old one goes
    before = set(os.listdir(out / "report" / "thumbs"))
    write_image(out / "p0.png", camera(48, 64))
    os.utime(out / "p0.png", ns=(1, 1))
    build_report(out, None, DIRECTIONS)
    after = set(os.listdir(out / "report" / "thumbs"))
    assert len(after) == len(before) and len(after - before) == 1


def test_half_finished_and_broken_runs_never_crash(tmp_path):
    out = _run_folder(tmp_path)
    (out / "p1.png").unlink()  # listed as ok, but gone
    (out / "sources" / "a" / "p0.png").write_bytes(b"not a png")  # unreadable: no thumbnail, still linked
    write_image(out / "late.png", camera(48, 64))  # finished after run.csv was last written
    (out / ".late2.png.mmfuse-tmp").write_bytes(b"")  # an in-flight temporary: not an output
    result = build_report(out, None, DIRECTIONS)
    data = _page_data(result.index)
    rows = {r["item"]: r for r in data["rows"]}
    assert rows["p1"]["images"]["fused"] is None and rows["p0"]["images"]["restored_a"]["thumb"] is None
    assert rows["late"]["status"] == "unlisted" and "late2" not in str(rows)
    assert any("1 fused image(s)" in n for n in data["notes"]) and result.missing == 2
    (out / "run.csv").unlink()  # killed before the first write of run.csv
    data = _page_data(build_report(out, None, DIRECTIONS).index)
    assert {r["item"] for r in data["rows"]} == {"p0", ODD, "late"} and "no run.csv" in data["notes"][0]
    with pytest.raises(ReportError, match="no such folder"):
        locate(tmp_path / "nowhere")
    with pytest.raises(ReportError, match="cannot read"):
        prepare_report(None, out / "nothing.csv")


def _page_data(index: Path) -> dict:
    html = index.read_text(encoding="utf-8")
    return json.loads(html.split('id="report-data">')[1].split("</script>")[0])


def test_report_command(tmp_path):
    out = _run_folder(tmp_path)
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "report: 4 pair(s), 1 failed, 12 thumbnail(s)" in result.stderr and "index.html" in result.stderr
    custom = tmp_path / "elsewhere"
    assert (
        runner.invoke(
            app, ["report", str(out / "run.csv"), "-o", str(custom), "-q", "--title", "T"]
        ).exit_code
        == 0
    )
    assert "<title>T - mmfuse report</title>" in (custom / "index.html").read_text()
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "error:" in result.stderr


# --- a real run, a comparison, and the page in a real browser ---


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = FusionModel(ModelConfig(base_channels=8, levels=3))
    torch.manual_seed(0)
    torch.nn.init.normal_(model.net.head.weight, std=1e-3)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture
def real_run(tmp_path, checkpoint):
    """`mmfuse degrade` + `mmfuse run --save-sources --html-report` on three pairs (one with an odd name) and a
    corrupt one; then `mmfuse evaluate` of two methods and its comparison page."""
    clean_a, clean_b = tmp_path / "clean_a", tmp_path / "clean_b"
    clean_a.mkdir()
    clean_b.mkdir()
    for i, name in enumerate(["p0", "p1", ODD]):
        write_image(clean_a / f"{name}.png", np.rot90(camera(64, 64), i).copy(), 8)
        write_image(clean_b / f"{name}.png", np.rot90(astronaut(64, 64), i).copy(), 8)
    a, b = tmp_path / "a", tmp_path / "b"
    for src, dst, extra in ((clean_a, a, ["--scale", "2"]), (clean_b, b, [])):
        args = ["degrade", str(src), "-o", str(dst), "--blur", "1.5", "--noise", "0.05", "-q", *extra]
        assert runner.invoke(app, args).exit_code == 0
    (a / "zz.png").write_bytes(b"garbage")
    write_image(b / "zz.png", camera(64, 64), 8)
    out = tmp_path / "out"
    args = [
        "run",
        str(a),
        str(b),
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        "--save-sources",
        "--html-report",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "report: 4 pair(s), 1 failed" in result.stderr, result.output
    second = tmp_path / "plain"
    second.mkdir()
    for name in ["p0", "p1", ODD]:
        write_image(second / f"{name}.png", camera(64, 64) * 0.5)  # a poor "method": the same image for all
    table = tmp_path / "methods.csv"
    args = ["evaluate", str(out), str(second), "--a", str(clean_a), "--b", str(clean_b), "-m", "EN,Qabf,Nabf", "-o", str(table), "-q"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, ["report", str(table), "-q"]).exit_code == 0
    return out / "report" / "index.html", tmp_path / "report" / "index.html"


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _find_chromium() -> str | None:
    """Debian's chromium (``MMFUSE_CHROMIUM`` overrides); installed with apt-get when running as root."""
    for name in (os.environ.get("MMFUSE_CHROMIUM", ""), "chromium", "chromium-browser"):
        found = shutil.which(name) if name else None
        if found:
            return found
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, timeout=240
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return shutil.which("chromium")
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is not installed (pip install -e '.[test]')"
    )
    executable = _find_chromium()
    if executable is None:
        pytest.skip(
            "no Chromium: install Debian's `chromium` (apt-get install chromium) or set MMFUSE_CHROMIUM"
        )
    with sync_api.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


def _open(browser, index: Path):
    page = browser.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def _thumbs_decode(page) -> int:
    """Scroll every thumbnail into view (they are lazy), wait for it, and check it decoded; returns how many."""
    images = page.query_selector_all("img[src^='thumbs/']")
    for img in images:
        img.scroll_into_view_if_needed()
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15000)
    widths = page.eval_on_selector_all("img[src^='thumbs/']", "els => els.map(e => e.naturalWidth)")
    assert widths and all(w > 0 for w in widths), widths
    return len(widths)


def _column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(
        f"#pairs-table tbody tr td:nth-child({index})", "els => els.map(e => e.textContent)"
    )


def test_page_in_a_real_browser(browser, real_run, tmp_path):
    run_page, compare_page = real_run
    page, problems = _open(browser, run_page)
    assert page.locator("#pairs-table tbody tr").count() == 4
    assert (
        page.locator("#failures li").count() == 1
        and "cannot decode" in page.locator("#failures").inner_text()
    )
    assert _thumbs_decode(page) >= 3 * 5  # a, b, fused, restored a and b of three pairs
    assert ODD in page.locator("#pairs-table").inner_text()  # shown as text, not markup
    headers = page.eval_on_selector_all("#pairs-table th", "els => els.map(e => e.textContent)")
    en = headers.index("EN \u2191") + 1
    page.click("#pairs-table th[data-key='EN']")  # higher is better: best first
    first = [float(x) if x != "\u2013" else -1 for x in _column(page, en)]
    assert first == sorted(first, reverse=True)
    items_desc = _column(page, 1)
    page.click("#pairs-table th[data-key='EN']")
    items_asc = _column(page, 1)
    assert items_asc[:3] == items_desc[:3][::-1] and items_asc != items_desc
    assert page.locator("#histograms svg").count() == 4  # EN, SD, SF, AG
    best_en = page.inner_text("#bestworst .bw")
    page.select_option("#bw-metric", "SD")
    assert "by SD" in page.inner_text("#bestworst .bw") and page.inner_text("#bestworst .bw") != best_en
    page.fill("#filter", "p1")
    assert page.locator("#pairs-table tbody tr").count() == 1
    page.fill("#filter", "")
    page.click("#pairs-table tbody tr:first-child td.item a")  # the viewer: slider between a source and fused
    assert page.locator("#viewer").is_visible() and page.locator("#split").count() == 1
    page.locator("#split").fill("20")
    page.click("#toggle")
    page.wait_for_function("document.querySelector('#viewer img.over').complete")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    page.click("#viewer-close")
    assert problems == []
    assert shot.stat().st_size > 10_000
    page.close()

    page, problems = _open(browser, compare_page)
    assert (
        page.locator("#summary-table tbody tr").count() == 2
        and page.locator("#summary-table td.best").count() == 3
    )
    assert page.locator("#sidebyside .pair").count() == 3 and _thumbs_decode(page) > 0
    page.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
    assert problems == []
    page.close()


def test_large_tables_are_paginated_in_the_browser(browser, tmp_path):
    out = _run_folder(tmp_path, extra_rows=120)
    index = build_report(out, None, DIRECTIONS).index
    page, problems = _open(browser, index)
    assert page.locator("#pairs-table tbody tr").count() == 50 and "page 1 of 3" in page.inner_text(
        "#page-of"
    )
    page.click("#next-page")
    page.click("#next-page")
    assert page.locator("#pairs-table tbody tr").count() == 124 - 100
    page.select_option("#status-filter", "failed")
    assert _column(page, 1) == ["bad"]
    assert problems == []
    page.close()

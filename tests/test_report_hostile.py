"""`mmfuse report` against hostile inputs, with real files through the real CLI (a child process):

* tables whose item names hold line separators other than a line end (``\\n`` inside quotes, form feed,
  ``\\x1c``, ``\\x85``, U+2028) or bytes that are not UTF-8 (a Latin-1 file name): one row per row written, the
  names intact, the links pointing at the real files, the page valid UTF-8;
* a report folder that already holds files mmfuse did not write: they are never removed or overwritten; only
  what the manifest ``.mmfuse-report.json`` lists (or an older page of ours) is replaced or removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes

import numpy as np
import pytest
from conftest import astronaut, camera

from mmfuse_cli.io import write_image
from mmfuse_cli.report.build import file_url
from mmfuse_cli.results.rows import RowSink

CLI = [sys.executable, "-m", "mmfuse_cli", "report"]
MANIFEST = ".mmfuse-report.json"  # the report folder's manifest: what the report wrote there
LATIN1 = os.fsdecode(b"caf\xe9")  # a name from a Latin-1 disk: not UTF-8, a lone surrogate in Python
NAMES = [
    "plain",
    "line\nbreak",
    "form\x0cfeed",
    "file\x1csep",
    "next\x85line",
    "para\u2028sep",
    "all\n\x0c\x1c\x85\u2028of them",
    'quote"d, comma',
    LATIN1,
    "ünïcode",
    "tab\there",
]
"""Eleven items: one row each."""


def shown(name: str) -> str:
    """How the page shows a name: a byte that is not UTF-8 as ``\\xNN``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def report(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, errors="replace", timeout=timeout
    )


def page_data(index: Path) -> dict:
    """The JSON the page embeds; the page must be valid UTF-8 (strict decoding)."""
    text = index.read_bytes().decode("utf-8")
    return json.loads(text.split('id="report-data">')[1].split("</script>")[0])


def images(folder: Path, names: list[str], seed: int = 0) -> dict[str, tuple[Path, Path, Path]]:
    """A small real PNG pair and fused image per name: ``{name: (a, b, fused)}``."""
    out = {}
    for folder_name in ("a", "b", "fused"):
        (folder / folder_name).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        a = np.rot90(camera(24, 24), i + seed).copy()
        b = np.roll(astronaut(24, 24), 3 * i + seed, axis=1)
        paths = folder / "a" / f"{name}.png", folder / "b" / f"{name}.png", folder / "fused" / f"{name}.png"
        write_image(paths[0], a)
        write_image(paths[1], b)
        write_image(paths[2], (a[..., None] + b) / 2)
        out[name] = paths
    return out


def run_folder(root: Path, names: list[str] = NAMES) -> Path:
    """A run's output folder: fused images named by item and the ``run.csv`` a run writes (through
    :class:`RowSink`, as ``mmfuse run`` does)."""
    out = root / "out"
    files = images(root / "inputs", names)
    out.mkdir()
    sink = RowSink(csv_path=out / "run.csv", flush_every=3)
    for i, (name, (a, b, fused)) in enumerate(files.items()):
        target = out / f"{name}.png"
        fused.rename(target)
        sink.emit(
            {
                "item": name,
                "status": "ok",
                "reason": "",
                "seconds": 0.1 * i,
                "output": str(target),
                "a": str(a),
                "b": str(b),
                "a_degradation": f"blur {i}\u2028noise",
                "EN": 6.0 + 0.1 * i,
            }
        )
    sink.close()
    return out


def real_file(report_dir: Path, url: str) -> Path:
    """The file a relative link of the page points at (percent-decoded to the raw bytes of the name)."""
    return Path(os.fsdecode(os.path.join(os.fsencode(report_dir), unquote_to_bytes(url))))


# --- tables: one row per row written, whatever the names hold ---


@pytest.mark.parametrize("latin1", [True, False], ids=["latin1-name", "utf8-names"])
def test_run_csv_names_with_separators_and_latin1_bytes_stay_one_row_each(tmp_path, latin1):
    names = NAMES if latin1 else [n if n != LATIN1 else "caf\u00e9" for n in NAMES]
    out = run_folder(tmp_path, names)
    raw = (out / "run.csv").read_bytes()
    assert (b"caf\xe9" in raw) == latin1 and "\u2028".encode() in raw and raw.count(b"\n") > len(names) + 1
    done = report(out)
    assert done.returncode == 0, done.stderr
    assert f"report: {len(names)} pair(s), 0 failed, {3 * len(names)} thumbnail(s)" in done.stderr
    index = out / "report" / "index.html"
    data = page_data(index)
    assert len(data["rows"]) == len(names) and data["counts"] == {"ok": len(names)}  # no "unlisted" extras
    assert [r["item"] for r in data["rows"]] == [shown(n) for n in names]
    for name, row in zip(names, data["rows"]):
        assert set(row["images"]) == {"a", "b", "fused"}, name
        fused = row["images"]["fused"]
        assert fused["name"] == shown(f"{name}.png")
        assert real_file(index.parent, fused["full"]).samefile(out / f"{name}.png"), name
        assert all(c not in fused["full"] for c in '\n\x0c\x1c\x85\u2028"#'), fused["full"]
        for image in row["images"].values():
            assert (index.parent / image["thumb"]).is_file() and real_file(
                index.parent, image["full"]
            ).is_file()
    if latin1:  # shown as \xe9 in the (UTF-8) page, linked by its real byte
        latin = data["rows"][names.index(LATIN1)]
        assert latin["item"] == "caf\\xe9" and latin["images"]["fused"]["full"].endswith("/caf%E9.png")
    assert data["rows"][names.index("next\x85line")]["degradation"]["a"] == "blur 4\u2028noise"


def test_file_url_of_a_name_that_is_not_utf8_names_its_bytes(tmp_path):
    name = tmp_path / os.fsdecode(b"caf\xe9 #1.png")
    write_image(name, camera(8, 8))
    (tmp_path / "report").mkdir()
    url = file_url(name, tmp_path / "report")
    assert url == "../caf%E9%20%231.png" and real_file(tmp_path / "report", url).samefile(name)


def test_jsonl_table_rows_are_split_only_at_line_ends(tmp_path):
    """An evaluate ``--json`` table (JSON Lines as ``mmfuse evaluate --json`` prints them): U+2028, ``\\x85``
    and a form feed inside a string are part of the string, not line ends."""
    names = ["para\u2028sep", "next\x85line", "form\x0cfeed", "file\x1csep", LATIN1, "plain"]
    files = images(tmp_path / "m1", names)
    files2 = images(tmp_path / "m2", names, seed=1)
    table = tmp_path / "methods.jsonl"
    with open(table, "w", encoding="utf-8", newline="") as handle:
        sink = RowSink(json_stdout=True, stream=handle)
        for method, found in (("m1", files), ("m2", files2)):
            for i, (name, (a, b, fused)) in enumerate(found.items()):
                sink.emit({"method": method, "item": name, "status": "ok", "reason": "", "seconds": 0.1,
                           "EN": 5.0 + i, "output": str(fused), "a": str(a), "b": str(b)})  # fmt: skip
            sink.emit({"method": method, "item": "mean", "status": "mean", "EN": 7.5})
    text = table.read_text(encoding="utf-8")  # valid UTF-8: the Latin-1 byte is escaped in the JSON
    assert text.count("\n") == 2 * (len(names) + 1) and len(text.splitlines()) > text.count("\n")
    done = report(table, "-o", tmp_path / "page")
    assert done.returncode == 0, done.stderr
    data = page_data(tmp_path / "page" / "index.html")
    assert data["kind"] == "compare" and data["methods"] == ["m1", "m2"]
    assert [r["item"] for r in data["rows"]] == [shown(n) for n in names] * 2
    latin = data["rows"][names.index(LATIN1)]["images"]["fused"]
    assert real_file(tmp_path / "page", latin["full"]).samefile(files[LATIN1][2])


def test_a_broken_table_is_a_usage_error_not_a_crash(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item": "x"}\n{"item": \n')
    done = report(bad)
    assert done.returncode == 2 and "bad.jsonl:2: not JSON Lines" in done.stderr
    wide = tmp_path / "wide.csv"
    wide.write_text('item,status\n"' + "x" * 200_000 + '",ok\n')  # beyond the csv module's field limit
    done = report(wide)
    assert done.returncode == 2 and "not a CSV table" in done.stderr and "Traceback" not in done.stderr


# --- the report folder: only what the report owns is replaced or removed ---


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_foreign_page_is_refused_and_nothing_is_touched(tmp_path):
    out = run_folder(tmp_path, ["p0", "p1"])
    site = tmp_path / "site"
    (site / "thumbs").mkdir(parents=True)
    (site / "index.html").write_text("<!DOCTYPE html><html><body>my own page</body></html>\n")
    (site / "thumbs" / "holiday.jpg").write_bytes(b"\xff\xd8 my photo")
    (site / "thumbs" / "0123456789abcdef0123.jpg").write_bytes(b"\xff\xd8 looks like a thumbnail")
    before = snapshot(site)
    done = report(out, "-o", site)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "index.html: not a page mmfuse wrote" in lines[0]
    )
    assert "refusing to overwrite" in lines[0]
    assert snapshot(site) == before and not (site / MANIFEST).exists()


def test_foreign_thumbnails_survive_and_only_our_stale_ones_go(tmp_path):
    out = run_folder(tmp_path, ["p0", "p1", "p2"])
    site = tmp_path / "site"
    (site / "thumbs").mkdir(parents=True)
    foreign = {"holiday.jpg": b"\xff\xd8 my photo", "0123456789abcdef0123.jpg": b"\xff\xd8 not ours"}
    for name, content in foreign.items():
        (site / "thumbs" / name).write_bytes(content)
    assert report(out, "-o", site, "-q").returncode == 0
    manifest = json.loads((site / MANIFEST).read_text())
    assert (
        manifest["format"] == "mmfuse-report"
        and manifest["version"] == 1
        and manifest["index"] == "index.html"
    )
    ours = set(manifest["thumbs"])
    assert len(ours) == 9 and not ours & set(foreign)
    assert {p.name for p in (site / "thumbs").iterdir()} == ours | set(foreign)
    # a changed fused image: its old thumbnail is ours and stale, so it goes; the foreign ones stay
    write_image(out / "p0.png", camera(24, 24))
    os.utime(out / "p0.png", ns=(1, 1))
    (site / "thumbs" / "later.jpg").write_bytes(b"\xff\xd8 added by hand after the report")
    done = report(out, "-o", site)
    assert done.returncode == 0, done.stderr
    now = set(json.loads((site / MANIFEST).read_text())["thumbs"])
    assert len(now) == 9 and len(ours - now) == 1 and len(now - ours) == 1
    assert {p.name for p in (site / "thumbs").iterdir()} == now | set(foreign) | {"later.jpg"}
    for name, content in foreign.items():
        assert (site / "thumbs" / name).read_bytes() == content
    assert '<meta name="generator" content="mmfuse">' in (site / "index.html").read_text()


def test_a_page_of_an_older_mmfuse_is_refreshed_and_its_thumbnails_adopted(tmp_path):
    """An older report folder: index.html + thumbs, no manifest, no generator tag (as mmfuse wrote it before)."""
    out = run_folder(tmp_path, ["p0", "p1"])
    assert report(out, "-q").returncode == 0
    site = out / "report"
    old = set(json.loads((site / MANIFEST).read_text())["thumbs"])
    (site / MANIFEST).unlink()
    page = (site / "index.html").read_text()
    (site / "index.html").write_text(page.replace('<meta name="generator" content="mmfuse">\n', ""))
    (site / "thumbs" / "holiday.jpg").write_bytes(b"\xff\xd8 mine")
    write_image(out / "p1.png", camera(24, 24))
    os.utime(out / "p1.png", ns=(1, 1))
    done = report(out)
    assert done.returncode == 0, done.stderr
    now = set(json.loads((site / MANIFEST).read_text())["thumbs"])
    assert len(old - now) == 1 and {p.name for p in (site / "thumbs").iterdir()} == now | {"holiday.jpg"}


def test_a_tampered_or_broken_manifest_is_not_trusted(tmp_path):
    out = run_folder(tmp_path, ["p0"])
    assert report(out, "-q").returncode == 0
    site = out / "report"
    victim = tmp_path / "victim.jpg"
    victim.write_bytes(b"\xff\xd8 outside the report")
    (site / "thumbs" / "holiday.jpg").write_bytes(b"\xff\xd8 mine")
    for content in (
        json.dumps(
            {
                "format": "mmfuse-report",
                "version": 1,
                "index": "index.html",
                "thumbs": ["../../../victim.jpg", "holiday.jpg"],
            }
        ),  # fmt: skip
        json.dumps(
            {"format": "mmfuse-report", "version": 99, "index": "index.html", "thumbs": ["holiday.jpg"]}
        ),
        '{"format": "mmfuse-report", "thumbs": ["holiday.jpg"',
        "[" * 100_000,
    ):
        (site / MANIFEST).write_text(content)
        done = report(out)
        assert done.returncode == 0, (
            done.stderr
        )  # our page (generator tag): refreshed, the manifest rewritten
        assert victim.is_file() and (site / "thumbs" / "holiday.jpg").is_file()
        assert "holiday.jpg" not in json.loads((site / MANIFEST).read_text())["thumbs"]
    (site / MANIFEST).write_text("not json")
    (site / "index.html").write_text("<html>someone else's</html>")
    done = report(out)
    assert done.returncode == 2 and "not a page mmfuse wrote" in done.stderr
    assert (site / "index.html").read_text() == "<html>someone else's</html>"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_links_and_fifos_in_place_of_the_page_or_manifest_are_refused(tmp_path):
    out = run_folder(tmp_path, ["p0"])
    other = tmp_path / "notes.html"
    other.write_text("<html>my notes</html>")
    cases = {"link": tmp_path / "site-link", "fifo": tmp_path / "site-fifo", "manifest": tmp_path / "site-m"}
    for folder in cases.values():
        folder.mkdir()
    (cases["link"] / "index.html").symlink_to(other)
    os.mkfifo(cases["fifo"] / "index.html")
    os.mkfifo(cases["manifest"] / MANIFEST)
    for kind, folder in cases.items():
        done = report(out, "-o", folder, timeout=60)  # a FIFO written through would wait forever for a reader
        assert done.returncode == 2 and "refusing" in done.stderr, (kind, done.stderr)
        assert not (folder / "thumbs").exists(), kind
    assert other.read_text() == "<html>my notes</html>" and (cases["link"] / "index.html").is_symlink()

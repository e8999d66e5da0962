"""`mmfuse evaluate` through the CLI and its library: pairing, rows + mean, outputs, errors and exit codes."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from conftest import astronaut, camera
from typer.testing import CliRunner

from mmfuse_cli.batch.evaluate import EvalJob, evaluate_folders, match_folders, mean_row, result_row
from mmfuse_cli.cli import app
from mmfuse_cli.io import read_image, to_gray, write_image
from mmfuse_cli.metrics import CLEAN, DEFAULT, compute_metrics

runner = CliRunner()
NAMES = ["EN", "SD", "MI", "Qabf", "SSIM", "Nabf"]


@pytest.fixture
def folders(tmp_path):
    """Three pairs (one with a colour visible image) and their average as the fused image."""
    roots = {role: tmp_path / role for role in ("a", "b", "fused")}
    for folder in roots.values():
        folder.mkdir()
    for i, (y, x) in enumerate([(0, 0), (40, 30), (20, 60)]):
        a = camera(48, 64)[:, :] if i == 0 else np.roll(camera(48, 64), (y, x), axis=(0, 1))
        b = astronaut(48, 64) if i == 1 else to_gray(np.roll(astronaut(48, 64), (y, x), axis=(0, 1)))
        write_image(roots["a"] / f"p{i}.png", a)
        write_image(roots["b"] / f"p{i}.jpg" if i == 2 else roots["b"] / f"p{i}.png", b)
        fused = (a + to_gray(b)) / 2 if i != 1 else np.stack([(a + c) / 2 for c in np.moveaxis(b, -1, 0)], -1)
        write_image(roots["fused"] / f"p{i}.png", fused)
    return roots


def _invoke(roots, *extra):
    args = [
        "evaluate",
        str(roots["fused"]),
        "--a",
        str(roots["a"]),
        "--b",
        str(roots["b"]),
        "-m",
        ",".join(NAMES),
    ]
    return runner.invoke(app, [*args, *extra])


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_on_stdout_has_one_row_per_pair_and_a_mean(folders):
    result = _invoke(folders)
    assert result.exit_code == 0, result.stderr
    rows = _csv_rows(result.stdout)
    assert [r["item"] for r in rows] == ["p0", "p1", "p2", "mean"]
    assert list(rows[0])[: 2 + len(NAMES)] == ["item", "status", *NAMES]
    assert {r["convention"] for r in rows} == {"cdd"} and {r["reference"] for r in rows} == {"given"}
    for name in NAMES:
        values = [float(r[name]) for r in rows[:3]]
        assert float(rows[3][name]) == pytest.approx(np.mean(values), abs=2e-6)
    assert "fusion metrics" in result.stderr and "Qabf" in result.stderr  # the table goes to stderr


def test_values_equal_the_library_on_the_same_files(folders):
    result = _invoke(folders)
    row = _csv_rows(result.stdout)[1]  # p1: colour visible image and colour fused image -> luminance
    load = lambda role, name: to_gray(read_image(folders[role] / name).pixels)  # noqa: E731
    expected = compute_metrics(load("fused", "p1.png"), load("a", "p1.png"), load("b", "p1.png"), NAMES)
    for name in NAMES:
        assert float(row[name]) == pytest.approx(expected[name], abs=1e-6)


def test_json_lines_and_output_file(folders, tmp_path):
    result = _invoke(folders, "--json", "-q")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [x["item"] for x in lines] == ["p0", "p1", "p2", "mean"]
    assert result.stderr == ""  # quiet: no table
    out = tmp_path / "metrics.csv"
    result = _invoke(folders, "-o", str(out), "-m", "en,QABF")  # -m given twice: the last wins
    assert result.exit_code == 0 and result.stdout == ""
    rows = _csv_rows(out.read_text())
    assert list(rows[0])[2:4] == ["EN", "Qabf"] and len(rows) == 4
    out_json = tmp_path / "metrics.jsonl"
    assert _invoke(folders, "-o", str(out_json), "--json").exit_code == 0
    assert len(out_json.read_text().splitlines()) == 4


def test_missing_and_mismatched_files_are_reported_and_skipped(folders):
    write_image(folders["fused"] / "extra.png", camera(48, 64))  # no sources
    write_image(folders["fused"] / "p2.png", camera(40, 64))  # wrong size
    (folders["a"] / "p0.png").unlink()
    write_image(folders["a"] / "only_a.png", camera(48, 64))  # a source without a fused image: not an error
    result = _invoke(folders)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert any("extra.png" in e and "no A and B image" in e for e in errors)
    assert any("p0.png" in e and "no A image" in e for e in errors)
    assert any("p2.png" in e and "does not match" in e for e in errors)
    rows = _csv_rows(result.stdout)
    status = {r["item"]: r["status"] for r in rows}
    assert status == {"extra": "failed", "p0": "failed", "p1": "ok", "p2": "failed", "mean": "mean"}
    assert rows[-1]["reason"] == "1 of 4 pair(s)"
    assert float(rows[-1]["EN"]) == pytest.approx(float(next(r for r in rows if r["item"] == "p1")["EN"]))


def test_duplicate_stems_and_unreadable_files(folders):
    write_image(folders["a"] / "p1.jpg", camera(48, 64))
    (folders["fused"] / "p0.png").write_bytes(b"not a png")
    result = _invoke(folders)
    assert result.exit_code == 1
    assert "duplicate stem" in result.stderr and "cannot decode" in result.stderr
    assert [r["status"] for r in _csv_rows(result.stdout)] == ["failed", "failed", "ok", "mean"]


def test_clean_references_add_restoration_columns(folders, tmp_path):
    clean_a, clean_b = tmp_path / "clean_a", tmp_path / "clean_b"
    clean_a.mkdir()
    clean_b.mkdir()
    for name in ("p0", "p1", "p2"):
        write_image(clean_a / f"{name}.png", read_image(folders["a"] / f"{name}.png").pixels)
        b = next(folders["b"].glob(f"{name}.*"))
        write_image(clean_b / f"{name}.png", read_image(b).pixels)
    result = _invoke(folders, "--a-clean", str(clean_a), "--b-clean", str(clean_b), "-m", "CC")
    assert result.exit_code == 0, result.stderr
    rows = _csv_rows(result.stdout)
    assert all(c in rows[0] for c in CLEAN) and rows[0]["reference"] == "clean"
    assert rows[0]["PSNR_A"] == "" or float(rows[0]["PSNR_A"]) > 100  # identical files: inf (empty in CSV)
    assert float(rows[0]["SSIM_A"]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args",
    [["-m", "EN,nope"], ["--convention", "matlab"], ["--against", "clean"], ["--against", "sideways"]],
)
def test_usage_errors_exit_2(folders, args):
    result = _invoke(folders, *args)
    assert result.exit_code == 2
    assert "error:" in result.stderr or "Usage" in result.stderr


def test_missing_folders_and_half_clean_are_usage_errors(folders, tmp_path):
    result = runner.invoke(
        app, ["evaluate", str(tmp_path / "nope"), "--a", str(folders["a"]), "--b", str(folders["b"])]
    )
    assert result.exit_code == 2 and "not a directory" in result.stderr
    assert _invoke(folders, "--a-clean", str(folders["a"])).exit_code == 2
    assert _invoke(folders, "-o", str(tmp_path / "no" / "dir.csv")).exit_code == 2


def test_empty_fused_folder_fails(folders, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["evaluate", str(empty), "--a", str(folders["a"]), "--b", str(folders["b"])])
    assert result.exit_code == 1 and "no images" in result.stderr


def test_library_job_defaults_and_rows(folders):
    job = EvalJob({"fused": folders["fused"], "a": folders["a"], "b": folders["b"]})
    assert job.names == list(DEFAULT) and job.reference == "given"
    items, unfused = match_folders(job)
    assert [i.key for i in items] == ["p0", "p1", "p2"] and unfused == []
    seen = []
    results = evaluate_folders(job, seen.append)
    assert [r.status for r in results] == ["ok"] * 3 and len(seen) == 3
    row = result_row(results[0], job)
    assert list(row)[: 2 + len(DEFAULT)] == ["item", "status", *DEFAULT]
    mean = mean_row(results, job)
    assert mean["Qabf"] == pytest.approx(np.mean([r.extra["Qabf"] for r in results]))


# --- several fused folders (one per method) in one call ---


@pytest.fixture
def two_methods(folders, tmp_path):
    """A second method: the pixel-wise maximum of the sources (in its own folder named like the first)."""
    other = tmp_path / "other" / "fused"
    other.mkdir(parents=True)
    for fused in sorted(folders["fused"].glob("*.png")):
        a = read_image(folders["a"] / fused.name).pixels
        b = to_gray(read_image(next(folders["b"].glob(f"{fused.stem}.*"))).pixels)
        write_image(other / fused.name, np.maximum(a, b))
    return folders["fused"], other


def test_several_folders_give_one_table_with_a_method_column(folders, two_methods, tmp_path):
    first, second = two_methods
    out = tmp_path / "methods.csv"
    result = _invoke(folders, str(second), "-o", str(out))  # FUSED FUSED2 --a --b
    assert result.exit_code == 0, result.stderr
    rows = _csv_rows(out.read_text())
    assert list(rows[0])[: 3 + len(NAMES)] == ["method", "item", "status", *NAMES]
    assert list(rows[0])[-3:] == ["output", "a", "b"]
    methods = [name for name in dict.fromkeys(r["method"] for r in rows)]
    assert methods == [f"{tmp_path.name}/fused", "other/fused"]  # both folders are named fused: told apart
    for method, folder in zip(methods, (first, second)):
        mine = [r for r in rows if r["method"] == method]
        assert [r["item"] for r in mine] == ["p0", "p1", "p2", "mean", "std"]
        assert mine[0]["output"] == str(folder / "p0.png") and mine[0]["a"] == str(folders["a"] / "p0.png")
        values = [float(r["Qabf"]) for r in mine[:3]]
        assert float(mine[3]["Qabf"]) == pytest.approx(np.mean(values), abs=2e-6)
        assert float(mine[4]["Qabf"]) == pytest.approx(np.std(values), abs=2e-6)
    # the per-pair values are those of the single-folder evaluation
    single = _csv_rows(_invoke(folders, "-q").stdout)
    assert [r["EN"] for r in single[:3]] == [r["EN"] for r in rows[:3]]
    assert "mean ± std" in result.stderr and "other/fused (3/3)" in result.stderr


def test_several_folders_json_lines_failures_and_empty_folders(folders, two_methods, tmp_path):
    _, second = two_methods
    write_image(second / "p1.png", camera(40, 64))  # wrong size: fails in that method only
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke(folders, str(second), str(empty), "--json", "-q")
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    status = {(x["method"], x["item"]): x["status"] for x in lines}
    first = f"{tmp_path.name}/fused"
    assert [status[(first, k)] for k in ("p0", "p1", "p2", "mean", "std")] == [
        "ok",
        "ok",
        "ok",
        "mean",
        "std",
    ]
    assert [status[("other/fused", k)] for k in ("p0", "p1", "p2")] == ["ok", "failed", "ok"]
    assert not any(method == "empty" for method, _ in status)
    assert "does not match" in result.stderr and "empty: no images to evaluate" in result.stderr


def test_method_names_and_the_summary_table(folders, two_methods):
    from rich.console import Console

    from mmfuse_cli.batch.compare import method_jobs, method_names
    from mmfuse_cli.commands._evaluate_summary import summary_tables

    assert method_names([folders["a"], folders["b"]]) == ["a", "b"]
    assert method_names([folders["a"], folders["a"]]) == ["a", "a-2"]
    job = EvalJob({"fused": folders["fused"], "a": folders["a"], "b": folders["b"]}, ["Qabf", "Nabf"])
    jobs = method_jobs(job, [folders["fused"], folders["fused"]])
    assert [j.folders["fused"] for _, j in jobs] == [folders["fused"]] * 2
    rows = [
        {"method": "x", "item": "p", "status": "ok", "Qabf": 0.5, "Nabf": 0.2},
        {"method": "y", "item": "p", "status": "ok", "Qabf": 0.4, "Nabf": 0.1},
        {"method": "y", "item": "q", "status": "failed", "Qabf": None, "Nabf": None},
    ]
    (table,) = summary_tables(rows, job, 200)
    cells = {col.header: list(col.cells) for col in table.columns}
    assert [str(c) for c in cells["method (scored/pairs)"]] == ["x (1/1)", "y (1/2)"]
    assert [c.style for c in cells["Qabf ↑"]] == ["bold", ""]  # higher is better
    assert [c.style for c in cells["Nabf ↓"]] == ["", "bold"]  # lower is better
    console = Console(record=True, width=200)
    console.print(table)
    assert "0.5000 ± 0.0000" in console.export_text()

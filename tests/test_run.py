"""`mmfuse run` end to end on generated pairs with a small checkpoint made here."""

import csv
import json
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import astronaut, camera
from typer.testing import CliRunner

from mmfuse_cli.batch.pipeline import run_pairs
from mmfuse_cli.batch.stages import RunOptions
from mmfuse_cli.cli import app
from mmfuse_cli.degradation.resolve import SourceRequest
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import read_image, rgb_to_ycbcr, to_gray, write_image
from mmfuse_cli.model.checkpoint import save_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig
from mmfuse_cli.pairing import pair_folders

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = FusionModel(ModelConfig(base_channels=8, levels=3))
    torch.manual_seed(0)
    torch.nn.init.normal_(model.net.head.weight, std=1e-3)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture
def pairs(tmp_path):
    """Three clean pairs (IR gray, visible colour) degraded with `mmfuse degrade` (sidecars included)."""
    clean_a, clean_b = tmp_path / "clean_a", tmp_path / "clean_b"
    clean_a.mkdir()
    clean_b.mkdir()
    for i in range(3):
        write_image(clean_a / f"p{i}.png", np.rot90(camera(64, 64), i).copy(), 8)
        write_image(clean_b / f"p{i}.png", np.rot90(astronaut(64, 64), i).copy(), 8)
    a, b = tmp_path / "a", tmp_path / "b"
    assert (
        runner.invoke(
            app,
            ["degrade", str(clean_a), "-o", str(a), "--blur", "1.5", "--scale", "2", "--noise", "0.05", "-q"],
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["degrade", str(clean_b), "-o", str(b), "--blur", "1.5", "--noise", "0.05", "-q"]
        ).exit_code
        == 0
    )
    return a, b


def _rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_run_fuses_every_pair_keeps_colour_and_reports(pairs, checkpoint, tmp_path):
    a, b = pairs
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", str(a), str(b), "-o", str(out), "--model", str(checkpoint), "--save-sources", "-q"]
    )
    assert result.exit_code == 0, result.output
    rows = _rows(out / "run.csv")
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert {"EN", "SD", "SF", "AG"} <= set(rows[0])
    # what the model was told, from the sidecars `mmfuse degrade` wrote
    assert rows[0]["a_degradation"] == "blur 1.5, x2 down, noise 0.05"
    assert rows[0]["b_degradation"] == "blur 1.5, noise 0.05"
    assert 0 < float(rows[0]["EN"]) <= 8 and float(rows[0]["SD"]) > 0
    fused = read_image(out / "p0.png")
    assert fused.pixels.shape == (64, 64, 3)  # output grid = a (32x32) x 2 = b (64x64); colour kept
    vis = read_image(b / "p0.png").pixels
    # chroma comes from the visible image (through the identity/blur pseudo-inverse: close to it)
    chroma_err = np.abs(rgb_to_ycbcr(fused.pixels)[..., 1:] - rgb_to_ycbcr(vis)[..., 1:]).mean()
    assert chroma_err < 0.03
    assert read_image(out / "sources/a/p0.png").pixels.shape == (64, 64)


def test_bad_pairs_fail_with_reasons_and_the_rest_finish(pairs, checkpoint, tmp_path):
    a, b = pairs
    (a / "p1.png").write_bytes(b"garbage")  # corrupt file in the middle
    write_image(a / "p3.png", camera(30, 30), 8)  # size not explained by scale 2
    write_image(b / "p3.png", camera(64, 64), 8)
    write_image(a / "p4.png", camera(32, 32), 8)  # no partner
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(a), str(b), "-o", str(out), "--model", str(checkpoint), "-q"])
    assert result.exit_code == 1
    rows = {r["item"]: r for r in _rows(out / "run.csv")}
    assert rows["p0"]["status"] == "ok" and rows["p2"]["status"] == "ok"
    assert rows["p1"]["status"] == "failed" and "cannot decode" in rows["p1"]["reason"]
    assert rows["p3"]["status"] == "failed" and "size mismatch" in rows["p3"]["reason"]
    assert any(r["status"] == "failed" and "no partner" in r["reason"] for r in rows.values())
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p2.png"]
    assert not list(out.glob(".*"))  # no temporary files left


def test_skip_existing_resumes(pairs, checkpoint, tmp_path):
    a, b = pairs
    out = tmp_path / "out"
    args = ["run", str(a), str(b), "-o", str(out), "--model", str(checkpoint), "-q"]
    assert runner.invoke(app, args).exit_code == 0
    before = {r["item"]: r for r in _rows(out / "run.csv")}
    first = (out / "p1.png").read_bytes()
    (out / "p1.png").unlink()
    result = runner.invoke(app, [*args, "--skip-existing"])
    assert result.exit_code == 0
    after = {r["item"]: r for r in _rows(out / "run.csv")}
    # the skipped pairs keep their whole rows of the first run (metrics, provenance): nothing is lost
    assert {k: r["status"] for k, r in after.items()} == {"p0": "ok", "p1": "ok", "p2": "ok"}
    assert after["p0"] == before["p0"] and after["p2"] == before["p2"]
    assert len(after["p0"]) > 20  # the full table, not a five-column stub
    assert (out / "p1.png").read_bytes() == first  # deterministic on CPU


def test_non_finite_model_output_fails_the_pair_and_writes_nothing(pairs, checkpoint, tmp_path):
    from mmfuse_cli.model.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    with torch.no_grad():
        model.net.head.bias.fill_(float("nan"))
    a, b = pairs
    options = RunOptions(output_dir=tmp_path / "out")
    results = run_pairs(pair_folders(a, b).pairs, Fuser(model), options)
    assert [r.status for r in results] == ["failed"] * 3
    assert all("NaN" in r.reason for r in results)
    assert list((tmp_path / "out").iterdir()) == []


def test_flags_override_and_tiles_match_whole_image(checkpoint, tmp_path):
    from mmfuse_cli.model.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    x = camera(128, 160)
    deg = Degradation(blur=1.0, noise=0.02)
    whole = Fuser(model).fuse(x, x[::-1].copy(), deg, deg)
    tiled = Fuser(model, FuseConfig(tile=64, overlap=16)).fuse(x, x[::-1].copy(), deg, deg)
    assert tiled.fused.shape == whole.fused.shape
    assert np.abs(tiled.fused - whole.fused).mean() < 0.01


def test_fuser_runs_the_network_channels_last_with_the_values_of_the_plain_layout(checkpoint):
    from mmfuse_cli.model.checkpoint import load_checkpoint
    from mmfuse_cli.sampling.observation import Observation, ObservationBatch
    from mmfuse_cli.sampling.sampler import sample

    model = load_checkpoint(checkpoint)
    for block in model.net.down_blocks[0]:  # make the residual blocks do something measurable
        torch.nn.init.normal_(block.conv2.weight, std=0.05)
    torch.nn.init.normal_(model.net.head.weight, std=0.05)
    x = camera(96, 128)
    deg = Degradation(blur=1.0, noise=0.02)
    ya, yb = (torch.from_numpy(v.copy())[None, None] for v in (x, x[::-1]))
    with torch.inference_mode():
        plain = sample(
            model.net,
            ObservationBatch(Observation(ya, deg)),
            ObservationBatch(Observation(yb, deg)),
            model.sampler,
        )
    exact = replace(deg, bits=0)
    fused = Fuser(model, FuseConfig(backend="torch")).fuse(x, x[::-1].copy(), exact, exact)
    assert model.net.stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert (
        np.abs(plain.f[0, 0].clamp(0, 1).numpy() - plain.x1[0, 0].clamp(0, 1).numpy()).max() > 1e-3
    )  # not trivial
    np.testing.assert_allclose(fused.fused, plain.f[0, 0].clamp(0, 1).numpy(), atol=1e-5)
    np.testing.assert_allclose(fused.a, plain.x1[0, 0].clamp(0, 1).numpy(), atol=1e-5)


def test_flip_ensemble_flag_reaches_the_fuser(pairs, checkpoint, tmp_path):
    a, b = pairs
    outputs = {}
    for name, extra in (("plain", []), ("ensemble", ["--flip-ensemble"])):
        args = ["run", str(a), str(b), "-o", str(tmp_path / name), "--model", str(checkpoint), "-q", *extra]
        assert runner.invoke(app, args).exit_code == 0
        outputs[name] = read_image(tmp_path / name / "p0.png").pixels
    # the tiny test network is not flip-symmetric: averaging it over flips changes the output, a little
    gap = np.abs(outputs["ensemble"].astype(float) - outputs["plain"].astype(float))
    assert 0 < gap.mean() < 0.05


def test_usage_errors_exit_2(pairs, checkpoint, tmp_path):
    a, b = pairs
    base = ["run", str(a), str(b), "-o", str(tmp_path / "o"), "--model", str(checkpoint)]
    assert runner.invoke(app, [*base, "--format", "gif"]).exit_code == 2
    assert runner.invoke(app, [*base, "--a-noise", "-1"]).exit_code == 2
    assert runner.invoke(app, [*base, "--task", "xray"]).exit_code == 2
    assert (
        runner.invoke(
            app,
            ["run", str(a), str(b), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "none.safetensors")],
        ).exit_code
        == 2
    )


def test_pairs_from_stdin_and_json_lines_through_a_real_shell(pairs, checkpoint, tmp_path, mmfuse_cmd):
    a, b = pairs
    out = tmp_path / "out"
    cmd = " ".join(mmfuse_cmd)
    script = (
        f'for f in {a}/*.png; do printf \'%s\\t%s\\n\' "$f" "{b}/$(basename $f)"; done'
        f" | {cmd} run --pairs - -o {out} --model {checkpoint} --json"
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["status"] for r in lines] == ["ok"] * 3
    assert sorted(r["item"] for r in lines) == ["p0", "p1", "p2"]
    assert "fused 3 pair(s)" in proc.stderr  # humans read stderr; stdout is data only


def _bit_depth_recording_fuser(checkpoint) -> tuple[Fuser, list]:
    """A Fuser whose ``fuse_batch`` records the bit depths of the degradations it is called with (in call order)."""
    from mmfuse_cli.model.checkpoint import load_checkpoint

    fuser = Fuser(load_checkpoint(checkpoint))
    seen: list = []
    original = fuser.fuse_batch

    def recording(a_list, b_list, deg_a, deg_b):
        seen.append((deg_a.bits, deg_b.bits))
        return original(a_list, b_list, deg_a, deg_b)

    fuser.fuse_batch = recording
    return fuser, seen


def _folders(tmp_path, depths: dict[str, tuple[int, int]]):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for stem, (depth_a, depth_b) in depths.items():
        write_image(a / f"{stem}.png", camera(32, 32), depth_a)
        write_image(b / f"{stem}.png", camera(32, 32)[::-1].copy(), depth_b)
    return a, b


def test_run_tells_the_model_each_files_bit_depth(tmp_path, checkpoint):
    a, b = _folders(tmp_path, {"p8": (8, 8), "p16": (16, 8)})
    fuser, seen = _bit_depth_recording_fuser(checkpoint)
    results = run_pairs(pair_folders(a, b).pairs, fuser, RunOptions(output_dir=tmp_path / "out", batch=4))
    assert [r.status for r in results] == ["ok", "ok"]
    assert sorted(seen) == [(8, 8), (16, 8)]  # and the two depths were not batched together


def test_input_bits_overrides_what_the_model_is_told(tmp_path, checkpoint):
    a, b = _folders(tmp_path, {"p": (8, 16)})
    fuser, seen = _bit_depth_recording_fuser(checkpoint)
    run_pairs(pair_folders(a, b).pairs, fuser, RunOptions(output_dir=tmp_path / "o1"))
    run_pairs(
        pair_folders(a, b).pairs,
        fuser,
        RunOptions(
            output_dir=tmp_path / "o2", source_a=SourceRequest(bits=0), source_b=SourceRequest(bits=0)
        ),
    )
    assert seen == [(8, 16), (0, 0)]
    result = runner.invoke(
        app,
        ["run", str(a), str(b), "-o", str(tmp_path / "o3"), "--model", str(checkpoint), "--input-bits", "17"],
    )
    assert result.exit_code == 2 and "--input-bits" in result.output


def _max_block_spread(pixels: np.ndarray, grid: int = 2) -> float:
    """Largest max - min inside the grid x grid blocks from the top-left pixel (0 = every block is one value)."""
    h, w = pixels.shape[0] // grid * grid, pixels.shape[1] // grid * grid
    blocks = pixels[:h, :w].reshape(h // grid, grid, w // grid, grid, -1)
    return float((blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).max())


def test_a_source_stored_as_pixel_blocks_comes_back_as_blocks_with_the_grid_flag(checkpoint, tmp_path):
    """Like the Harvard atlas's PET: a colour 48 x 40 scan stored at 96 x 80 by repeating each pixel 2 x 2."""
    low = np.stack([np.rot90(camera(48, 48), k)[:, :40] for k in range(3)], axis=-1)
    clean_a = np.repeat(np.repeat(low, 2, 0), 2, 1)
    clean_b = camera(96, 80)
    for folder, img in (("clean_a", clean_a), ("clean_b", clean_b)):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "s.png", img, 8)
    for side in ("a", "b"):
        degrade = [
            "degrade",
            str(tmp_path / f"clean_{side}"),
            "-o",
            str(tmp_path / side),
            "--blur",
            "1.5",
            "-q",
        ]
        assert runner.invoke(app, degrade).exit_code == 0
    base = [
        "run",
        str(tmp_path / "a"),
        str(tmp_path / "b"),
        "--model",
        str(checkpoint),
        "--save-sources",
        "-q",
    ]
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "plain")]).exit_code == 0
    result = runner.invoke(app, [*base, "-o", str(tmp_path / "grid"), "--a-grid", "2"])
    assert result.exit_code == 0, result.output
    assert _rows(tmp_path / "grid/run.csv")[0]["a_degradation"] == "blur 1.5 (2x2 pixel grid)"
    truth = to_gray(clean_a.astype(np.float32))
    plain = read_image(tmp_path / "plain/sources/a/s.png").pixels
    on_grid = read_image(tmp_path / "grid/sources/a/s.png").pixels
    assert _max_block_spread(plain[..., None]) > 0.05 and _max_block_spread(on_grid[..., None]) == 0.0
    # the blur erased the block edges; putting them back removes error whatever the model (a projection)
    assert np.mean((on_grid - truth) ** 2) < 0.9 * np.mean((plain - truth) ** 2)
    # the sidecar's degradation (blur 1.5) still applies: the flag sets only the grid
    assert np.mean((on_grid - truth) ** 2) < np.mean((read_image(tmp_path / "a/s.png").pixels - clean_a) ** 2)

    # the PET's colour (chroma) is carried over on the same blocks
    def chroma_spread(run: str) -> float:  # mean over blocks: the fused luminance is not held to the grid
        chroma = rgb_to_ycbcr(read_image(tmp_path / run / "s.png").pixels)[..., 1:]
        blocks = chroma.reshape(48, 2, 40, 2, 2)
        return float((blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).mean())

    assert chroma_spread("grid") < 0.3 * chroma_spread("plain")
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "bad"), "--a-grid", "0"]).exit_code == 2


def test_tiles_keep_a_sources_pixel_grid(checkpoint):
    from mmfuse_cli.model.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint)
    blocky = np.repeat(
        np.repeat(camera(70, 80), 2, 0), 2, 1
    )  # 140 x 160; odd tile and overlap sizes are rounded to the grid
    deg = Degradation(blur=1.0, noise=0.02, grid=2)
    whole = Fuser(model).fuse(blocky, blocky[::-1].copy(), deg, Degradation(blur=1.0, noise=0.02))
    tiled = Fuser(model, FuseConfig(tile=65, overlap=15)).fuse(
        blocky, blocky[::-1].copy(), deg, Degradation(blur=1.0, noise=0.02)
    )
    assert _max_block_spread(whole.a[..., None]) < 1e-6 and _max_block_spread(tiled.a[..., None]) < 1e-6
    assert np.abs(tiled.a - whole.a).mean() < 0.01 and np.abs(tiled.fused - whole.fused).mean() < 0.01


def test_a_grid_stated_for_undegraded_files_that_lack_it_fails_those_pairs_only(checkpoint, tmp_path):
    """Projecting a sharp, ordinary image onto 2 x 2 blocks would blur it: such a pair fails with the reason."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_image(a / "blocks.png", np.repeat(np.repeat(camera(32, 32), 2, 0), 2, 1), 8)
    write_image(a / "plain.png", camera(64, 64), 8)
    for stem in ("blocks", "plain"):
        write_image(b / f"{stem}.png", astronaut(64, 64), 8)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", str(a), str(b), "-o", str(out), "--model", str(checkpoint), "--a-grid", "2", "-q"]
    )
    assert result.exit_code == 1
    rows = {r["item"]: r for r in _rows(out / "run.csv")}
    assert rows["blocks"]["status"] == "ok" and rows["plain"]["status"] == "failed"
    assert (
        "plain.png: a 2x2 pixel grid was stated, but this undegraded file is not stored as 2x2 blocks"
        in rows["plain"]["reason"]
    )
    assert not (out / "plain.png").exists()

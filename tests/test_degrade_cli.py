"""`mmfuse degrade` through the CLI: values, determinism, bit depth, colour, errors and exit codes."""

import json
import os

import numpy as np
import pytest
from conftest import astronaut, camera
from typer.testing import CliRunner

from mmfuse_cli.cli import app
from mmfuse_cli.degradation.sidecar import read_sidecar
from mmfuse_cli.io import read_image, write_image

runner = CliRunner()


@pytest.fixture
def clean(tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    write_image(folder / "g8.png", camera(64, 64), 8)
    write_image(folder / "g16.tif", camera(64, 64), 16)
    write_image(folder / "rgb.jpg", astronaut(64, 64), 8)
    return folder


def test_degrade_writes_same_names_sizes_depths_and_sidecar(clean, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "degrade",
            str(clean),
            "-o",
            str(out),
            "--blur",
            "1.5",
            "--noise",
            "0.05",
            "--scale",
            "2",
            "--seed",
            "7",
        ],
    )
    assert result.exit_code == 0, result.output
    g8, g16, rgb = read_image(out / "g8.png"), read_image(out / "g16.tif"), read_image(out / "rgb.jpg")
    assert g8.pixels.shape == (32, 32) and g8.bit_depth == 8
    assert g16.bit_depth == 16 and g16.pixels.shape == (32, 32)
    assert rgb.pixels.shape == (32, 32, 3)
    side = read_sidecar(out / "degradation.json")
    assert side.degradation.as_dict() == {"blur": 1.5, "scale": 2, "noise": 0.05}
    assert side.seed == 7 and side.files == ["g16.tif", "g8.png", "rgb.jpg"]
    raw = json.loads((out / "degradation.json").read_text())
    assert raw["schema_version"] == 1 and raw["operator"]["type"] == "composite" and raw["mmfuse_version"]


def test_noise_level_is_what_was_asked(tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    write_image(folder / "f.png", np.full((128, 128), 0.5, np.float32), 16)
    runner.invoke(app, ["degrade", str(folder), "-o", str(tmp_path / "o"), "--noise", "0.05"])
    noisy = read_image(tmp_path / "o/f.png").pixels
    assert noisy.std() == pytest.approx(0.05, rel=0.08)
    assert noisy.mean() == pytest.approx(0.5, abs=0.01)


def test_same_seed_is_byte_identical_other_seed_differs(clean, tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        runner.invoke(
            app, ["degrade", str(clean), "-o", str(tmp_path / name), "--noise", "0.05", "--seed", seed]
        )
    for f in ("g8.png", "g16.tif", "rgb.jpg"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert (tmp_path / "a/g8.png").read_bytes() != (tmp_path / "c/g8.png").read_bytes()


def test_colour_images_are_degraded_per_channel(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    img = np.zeros((32, 32, 3), np.float32)
    img[..., 0] = 1.0  # pure red stays red after blur (no channel mixing)
    write_image(folder / "red.png", img, 8)
    runner.invoke(app, ["degrade", str(folder), "-o", str(tmp_path / "o"), "--blur", "2"])
    out = read_image(tmp_path / "o/red.png").pixels
    assert np.allclose(out[..., 0], 1.0, atol=1 / 255) and np.allclose(out[..., 1:], 0.0, atol=1 / 255)


def test_bad_files_are_reported_and_the_rest_finish(clean, tmp_path):
    (clean / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (clean / "empty.tif").write_bytes(b"")
    write_image(clean / "odd.png", camera(33, 32), 8)
    result = runner.invoke(app, ["degrade", str(clean), "-o", str(tmp_path / "o"), "--scale", "2", "--json"])
    assert result.exit_code == 1
    rows = {json.loads(line)["item"]: json.loads(line) for line in result.stdout.splitlines()}
    assert rows["g8.png"]["status"] == "ok"
    assert rows["broken.png"]["status"] == "failed" and "broken.png" in rows["broken.png"]["reason"]
    assert "empty" in rows["empty.tif"]["reason"]
    assert "not divisible" in rows["odd.png"]["reason"]
    assert "error:" in result.output and "broken.png" in result.output
    assert not (tmp_path / "o/broken.png").exists()


@pytest.mark.parametrize(
    "args",
    [["--noise", "-0.1"], ["--scale", "0"], ["--blur", "-1"], ["--scale", "1000"], ["--bit-depth", "12"]],
)
def test_bad_flag_values_are_usage_errors(clean, tmp_path, args):
    result = runner.invoke(app, ["degrade", str(clean), "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_missing_input_folder_and_unwritable_output(clean, tmp_path):
    assert runner.invoke(app, ["degrade", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]).exit_code == 2
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere; unwritable folders cannot be simulated")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert runner.invoke(app, ["degrade", str(clean), "-o", str(locked / "o")]).exit_code in (1, 2)


def test_output_file_is_a_regular_file_where_a_folder_is_needed(clean, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["degrade", str(clean), "-o", str(blocker)])
    assert result.exit_code == 2
    assert "file" in result.output


def test_recursive_keeps_the_tree(tmp_path):
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    write_image(src / "x/1.png", camera(16, 16), 8)
    assert (
        runner.invoke(
            app, ["degrade", str(src), "-o", str(tmp_path / "o"), "--noise", "0.01", "-r"]
        ).exit_code
        == 0
    )
    assert (tmp_path / "o/x/1.png").exists()


def test_version_help_and_info():
    assert runner.invoke(app, ["--version"]).output.startswith("mmfuse ")
    help_text = runner.invoke(app, ["--help"]).output
    for command in ("run", "degrade", "evaluate", "weights", "train", "info"):
        assert command in help_text
    info = runner.invoke(app, ["info"]).output
    assert "device" in info and "threads" in info and "torch" in info


def test_inputs_stored_as_pixel_blocks_get_a_note_naming_the_run_flag(clean, tmp_path):
    blocky = tmp_path / "blocky"
    blocky.mkdir()
    for i in range(3):
        write_image(
            blocky / f"s{i}.png", np.kron(np.rot90(camera(32, 32), i), np.ones((2, 2), np.float32)), 8
        )
    result = runner.invoke(app, ["degrade", str(blocky), "-o", str(tmp_path / "o1"), "--blur", "1.5"])
    assert result.exit_code == 0
    assert "stored as 2x2 pixel blocks (3 checked)" in result.output and "--a-grid 2" in result.output
    assert read_sidecar(tmp_path / "o1/degradation.json").degradation.grid == 1  # a note, not a claim
    result = runner.invoke(app, ["degrade", str(clean), "-o", str(tmp_path / "o2"), "--blur", "1.5"])
    assert result.exit_code == 0 and "pixel blocks" not in result.output


def test_pixel_grid_detection_is_exact_and_ignores_flat_images():
    from mmfuse_cli.degradation.grid import detect_pixel_grid

    low = (camera(20, 24) * 255).astype(np.uint8)
    assert detect_pixel_grid(np.kron(low, np.ones((2, 2), np.uint8))) == 2
    assert detect_pixel_grid(np.kron(low, np.ones((4, 4), np.uint8))) == 4
    assert (
        detect_pixel_grid(np.kron(low, np.ones((2, 2), np.uint8))[1:, 1:]) == 1
    )  # grid off the top-left pixel
    rgb = np.stack([np.kron(low, np.ones((2, 2), np.uint8))] * 3, axis=-1)
    assert detect_pixel_grid(rgb) == 2
    rgb[5, 7, 1] += 1  # one sample off in one channel breaks it
    assert detect_pixel_grid(rgb) == 1
    assert detect_pixel_grid(low) == 1 and detect_pixel_grid(np.zeros((64, 64))) == 1
    assert (
        detect_pixel_grid(np.kron(low, np.ones((2, 2), np.uint8))[:-1, :-3]) == 2
    )  # cut border blocks ignored


def test_a_grid_claim_is_judged_by_block_spreads_and_survives_jpeg(tmp_path):
    from mmfuse_cli.degradation.grid import grid_claim_holds

    blocky = np.repeat(np.repeat(camera(48, 48), 2, 0), 2, 1)
    write_image(tmp_path / "blocky.jpg", blocky, 8)
    assert grid_claim_holds(blocky, 2) and grid_claim_holds(read_image(tmp_path / "blocky.jpg").pixels, 2)
    assert not grid_claim_holds(blocky[1:, 1:], 2)  # blocks off the top-left pixel
    assert not grid_claim_holds(camera(96, 96), 2) and not grid_claim_holds(blocky, 4)
    assert grid_claim_holds(np.full((32, 32), 0.5, np.float32), 2)  # too flat to tell

"""Blind estimates: each estimator on synthetic images with known parameters, size-ratio inference, the
resolution order (flag > sidecar > estimate), the noise unit of colour sources, and one blind run that beats
assume-clean against the clean reference."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from conftest import astronaut, camera, smooth_scene
from typer.testing import CliRunner

from mmfuse_cli.batch.estimate import estimate_image
from mmfuse_cli.cli import app
from mmfuse_cli.degradation.estimate import estimate_blur, estimate_noise, infer_scales
from mmfuse_cli.degradation.grid import detect_grid
from mmfuse_cli.degradation.resolve import AUTO, DegradationResolver, SourceRequest
from mmfuse_cli.degradation.sidecar import Sidecar, write_sidecar
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.degradation.synth import degrade_array
from mmfuse_cli.engine.colour import LUMA_NOISE_GAIN
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import read_image, write_image
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.weights.resolve import resolve_checkpoint

runner = CliRunner()


def _quantised(x: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(x, 0, 1) * 255) / 255).astype(np.float32)


@pytest.mark.parametrize("sigma", [0.015, 0.03, 0.05, 0.1])
def test_noise_estimate_on_a_photograph_is_within_tolerance(sigma):
    clean = camera(256, 256)
    noisy = _quantised(degrade_array(clean, Degradation(noise=sigma), 3))
    value = estimate_noise(noisy, bits=8).value
    assert abs(value - sigma) <= 0.003 + 0.1 * sigma


def test_noise_on_a_black_background_is_not_read_low():
    """A medical-like image: a bright disc on black; clipping at 0 removes half the background's noise."""
    yy, xx = np.mgrid[0:256, 0:256]
    scan = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 70**2, 0.3 + 0.4 * smooth_scene(256, 256), 0.0)
    noisy = _quantised(degrade_array(scan.astype(np.float32), Degradation(noise=0.05), 1))
    assert abs(estimate_noise(noisy).value - 0.05) <= 0.006


def test_clean_images_read_almost_no_noise_and_flat_ones_have_no_blur_estimate():
    assert estimate_noise(camera(256, 256)).value < 0.01
    assert estimate_noise(astronaut(256, 256)).value < 0.01
    flat = np.full((64, 64), 0.5, np.float32)
    assert estimate_noise(flat).value == 0.0
    blur = estimate_blur(flat)
    assert blur.value is None and "flat" in blur.note
    assert estimate_noise(np.zeros((4, 4), np.float32)).value is None  # too small: a fallback, not a crash


def test_colour_noise_is_read_per_channel_as_degrade_adds_it():
    noisy = _quantised(degrade_array(astronaut(256, 256), Degradation(noise=0.05), 2))
    assert abs(estimate_noise(noisy).value - 0.05) <= 0.006


def _rectangles(size: int = 256, seed: int = 0) -> np.ndarray:
    """Random overlapping rectangles with exact (one-pixel) edges: an image whose own edge width is ~0."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 0.5, np.float32)
    for _ in range(40):
        y, x = rng.integers(0, size - 20, 2)
        h, w = rng.integers(10, 60, 2)
        img[y : y + h, x : x + w] = rng.uniform(0.1, 0.9)
    return img


@pytest.mark.parametrize("noise", [0.0, 0.03])
def test_blur_estimate_is_within_tolerance_of_the_blur_beyond_sharp(noise):
    """For the medical model (sharp CT/MRI training images) a sharp-edged image reads its added blur; the infrared
    / visible model, trained on softer cameras too, reads less of it (a soft camera's clean image is sharp to it),
    never more; a clean image reads no blur at all."""
    clean = _rectangles()
    readings = {}
    for blur in (1.0, 1.5, 2.0, 2.5):
        observed = _quantised(degrade_array(clean, Degradation(blur=blur, noise=noise), 4))
        mif = estimate_blur(observed, noise, task="mif").value
        ivif = estimate_blur(observed, noise, task="ivif").value
        assert abs(mif - blur) <= 0.45 and ivif <= mif + 1e-6
        readings[blur] = (mif, ivif)
    assert [m for m, _ in readings.values()] == sorted(m for m, _ in readings.values())  # monotone
    assert readings[2.5][1] >= 1.5  # a strong blur is read by both
    quantised_clean = _quantised(clean)
    assert estimate_blur(quantised_clean, task="mif").value == 0.0
    assert estimate_blur(_quantised(camera(256, 256)), task="ivif").value == 0.0


def test_pixel_replicated_images_read_no_noise():
    blocks = np.repeat(np.repeat(camera(64, 64), 2, axis=0), 2, axis=1)
    assert estimate_noise(blocks).value == 0.0


def test_a_clean_file_stored_as_blocks_is_read_as_undegraded_on_its_grid(tmp_path):
    """The Harvard PET/SPECT case: exact 2x2 blocks mean the file is undegraded on a 2x2 grid; a blurred copy shows no
    blocks and is estimated as usual; --assume-clean and a stated grid are left alone."""
    blocks = _quantised(np.repeat(np.repeat(camera(64, 64), 2, axis=0), 2, axis=1))
    mri = _quantised(astronaut(128, 128).mean(axis=-1))
    assert detect_grid(blocks) == 2 and detect_grid(mri) == 1 and detect_grid(camera(128, 128)) == 1
    args = (tmp_path / "a.png", blocks, 8, tmp_path / "b.png", mri, 8)
    ra, rb = DegradationResolver(task="mif").resolve_pair(*args)
    assert (ra.degradation.grid, ra.degradation.noise, ra.degradation.blur) == (2, 0.0, 0.0)
    assert ra.origin["grid"] == ra.origin["blur"] == "estimated" and rb.degradation.grid == 1
    clean, _ = DegradationResolver(SourceRequest(assume_clean=True)).resolve_pair(*args)
    stated, _ = DegradationResolver(SourceRequest(grid=1)).resolve_pair(*args)
    assert clean.degradation.grid == stated.degradation.grid == 1
    blurred = _quantised(degrade_array(blocks, Degradation(blur=1.5), 0))
    assert detect_grid(blurred) == 1
    write_image(tmp_path / "pet.png", blocks, 8)  # `mmfuse estimate` reads it as `run` does
    row = estimate_image(tmp_path / "pet.png", task="mif").extra
    assert (row["grid"], row["noise"], row["blur"]) == (2, 0.0, 0.0)


def test_scale_from_sizes():
    assert infer_scales((256, 256), (256, 256)) == (1, 1)
    assert infer_scales((128, 128, 3), (256, 256)) == (2, 1)
    assert infer_scales((768, 1024), (192, 256)) == (1, 4)
    assert infer_scales((240, 320), (481, 641)) == (2, 1)  # the 1-pixel remainder of an odd size
    assert infer_scales((100, 100), (250, 250)) is None  # not an integer ratio
    assert infer_scales((100, 200), (200, 200)) is None  # different aspect ratio


def test_resolution_order_flag_then_sidecar_then_estimate(tmp_path):
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    noisy = _quantised(degrade_array(camera(128, 128), Degradation(noise=0.04), 5))
    write_sidecar(a_dir, Sidecar(Degradation(blur=1.0, noise=0.02)))
    a, b = a_dir / "x.png", b_dir / "x.png"
    args = (a, noisy, 8, b, noisy, 8)
    # sidecar for a (both values), estimate for b
    ra, rb = DegradationResolver(SourceRequest(), SourceRequest()).resolve_pair(*args)
    assert (ra.degradation.blur, ra.degradation.noise, ra.origin["noise"]) == (1.0, 0.02, "sidecar")
    assert rb.origin["noise"] == "estimated" and abs(rb.degradation.noise - 0.04) < 0.006
    assert rb.origin["scale"] == "estimated" and rb.degradation.scale == 1
    # a flag beats the sidecar for its parameter only; auto asks for the estimate over the sidecar
    ra, _ = DegradationResolver(SourceRequest(noise=0.07), SourceRequest()).resolve_pair(*args)
    assert (ra.degradation.noise, ra.origin["noise"], ra.degradation.blur, ra.origin["blur"]) == (
        0.07,
        "flag",
        1.0,
        "sidecar",
    )
    ra, _ = DegradationResolver(SourceRequest(noise=AUTO), SourceRequest()).resolve_pair(*args)
    assert ra.origin["noise"] == "estimated" and abs(ra.degradation.noise - 0.04) < 0.006
    # assume-clean: what nothing states is none
    _, rb = DegradationResolver(SourceRequest(), SourceRequest(assume_clean=True)).resolve_pair(*args)
    assert (rb.degradation.noise, rb.degradation.blur, rb.origin["noise"]) == (0.0, 0.0, "default")


def test_the_sampler_sees_a_colour_sources_luminance_noise(tmp_path):
    """`mmfuse degrade --noise 0.05` adds 0.05 per RGB channel; the fused luminance carries 0.05 x 0.668."""
    model = load_checkpoint(resolve_checkpoint(None, task="ivif"))
    fuser = Fuser(model)
    seen = []
    original = fuser.backend.sample

    def recording(oa, ob):
        seen.append((oa.items[0].degradation.noise, ob.items[0].degradation.noise))
        return original(oa, ob)

    fuser.backend.sample = recording
    clean_dir, noisy_dir = tmp_path / "clean", tmp_path / "noisy"
    clean_dir.mkdir()
    write_image(clean_dir / "x.png", astronaut(64, 64), 8)
    assert (
        runner.invoke(
            app, ["degrade", str(clean_dir), "-o", str(noisy_dir), "--noise", "0.05", "-q"]
        ).exit_code
        == 0
    )
    sidecar = json.loads((noisy_dir / "degradation.json").read_text())
    assert sidecar["degradation"]["noise"] == 0.05  # the file's unit: per channel
    colour = read_image(noisy_dir / "x.png").pixels
    gray = camera(64, 64)
    fuser.fuse(gray, colour, Degradation(noise=0.05), Degradation(noise=0.05))
    assert seen[0][0] == pytest.approx(0.05) and seen[0][1] == pytest.approx(0.05 * LUMA_NOISE_GAIN)


def test_a_blind_run_beats_assume_clean_against_the_clean_reference(tmp_path):
    torch.manual_seed(0)
    clean_a, clean_b = tmp_path / "ca", tmp_path / "cb"
    clean_a.mkdir()
    clean_b.mkdir()
    for i in range(2):
        write_image(clean_a / f"p{i}.png", np.rot90(camera(128, 128), i).copy(), 8)
        write_image(clean_b / f"p{i}.png", np.rot90(camera(128, 128), i + 2).copy(), 8)
    a, b = tmp_path / "a", tmp_path / "b"
    for src, dst, seed in ((clean_a, a, 1), (clean_b, b, 2)):
        result = runner.invoke(
            app, ["degrade", str(src), "-o", str(dst), "--noise", "0.05", "--seed", str(seed), "-q"]
        )
        assert result.exit_code == 0
        (dst / "degradation.json").unlink()  # nobody wrote the degradation down
    outputs = {}
    for mode, extra in (("blind", []), ("clean", ["--assume-clean"])):
        out = tmp_path / mode
        result = runner.invoke(app, ["run", str(a), str(b), "-o", str(out), "--save-sources", "-q", *extra])
        assert result.exit_code == 0, result.output
        outputs[mode] = out
    rows = {r["item"]: r for r in csv.DictReader(open(outputs["blind"] / "run.csv", encoding="utf-8"))}
    assert rows["p0"]["a_noise_from"] == "estimated" and abs(float(rows["p0"]["a_noise"]) - 0.05) < 0.008
    assert rows["p0"]["a_scale_from"] == "estimated" and rows["p0"]["a_scale"] == "1"

    def psnr(mode: str, key: str) -> float:
        restored = read_image(outputs[mode] / "sources" / "a" / f"{key}.png").pixels
        reference = read_image(clean_a / f"{key}.png").pixels
        return float(10 * np.log10(1 / np.mean((restored - reference) ** 2)))

    for key in ("p0", "p1"):
        assert psnr("blind", key) > psnr("clean", key) + 3.0


def test_estimate_command_prints_pins_and_run_uses_it(tmp_path):
    clean, noisy = tmp_path / "clean", tmp_path / "noisy"
    clean.mkdir()
    for i in range(3):
        write_image(clean / f"p{i}.png", np.rot90(camera(128, 128), i).copy(), 8)
    assert (
        runner.invoke(app, ["degrade", str(clean), "-o", str(noisy), "--noise", "0.03", "-q"]).exit_code == 0
    )
    (noisy / "degradation.json").unlink()
    result = runner.invoke(app, ["estimate", str(noisy), "--write-sidecar"])
    assert result.exit_code == 0, result.output
    assert "p0" in result.output and "over 3 image(s)" in result.output
    pinned = json.loads((noisy / "degradation.json").read_text())
    assert abs(pinned["degradation"]["noise"] - 0.03) < 0.005 and pinned["estimate"]["images"] == 3
    result = runner.invoke(app, ["estimate", str(noisy), "--json"])
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert {r["item"] for r in rows} == {"p0", "p1", "p2"} and all(0.02 < r["noise"] < 0.04 for r in rows)


def test_a_non_integer_size_ratio_fails_that_pair_naming_both_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_image(a / "odd.png", camera(100, 100), 8)
    write_image(b / "odd.png", camera(128, 128)[:, :], 8)
    write_image(a / "fine.png", camera(64, 64), 8)
    write_image(b / "fine.png", camera(128, 128), 8)  # exactly x2: a is low-resolution
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(a), str(b), "-o", str(out), "-q"])
    assert result.exit_code == 1
    rows = {r["item"]: r for r in csv.DictReader(open(out / "run.csv", encoding="utf-8"))}
    assert rows["fine"]["status"] == "ok" and rows["fine"]["a_scale"] == "2"
    assert rows["odd"]["status"] == "failed"
    assert str(a / "odd.png") in rows["odd"]["reason"] and str(b / "odd.png") in rows["odd"]["reason"]
    assert "100x100" in rows["odd"]["reason"] and "128x128" in rows["odd"]["reason"]

"""No input may kill a batch: every combination of bit depth, channels, input format, output format and size class
either fuses or fails with a reason, with a run.csv row for every pair and decodable outputs of the right type.

One CLI run per output format over a folder holding the whole matrix (a tiny checkpoint made here), so the matrix
stays quick.
"""

from __future__ import annotations

import csv
import itertools

import imagecodecs
import numpy as np
import pytest
import tifffile
import torch
from conftest import astronaut, camera
from PIL import Image
from typer.testing import CliRunner

from mmfuse_cli.cli import app
from mmfuse_cli.io import read_image
from mmfuse_cli.model.checkpoint import save_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig

runner = CliRunner()

# source a (IR / functional) and source b (visible / MRI) kinds: (channels, bits, extension)
A_KINDS = {
    "g8png": (1, 8, "png"),
    "g16png": (1, 16, "png"),
    "g16tif": (1, 16, "tif"),
    "rgb8jpg": (3, 8, "jpg"),
}
B_KINDS = {
    "rgb8jpg": (3, 8, "jpg"),
    "rgb8png": (3, 8, "png"),
    "rgb16tif": (3, 16, "tif"),
    "rgb16png": (3, 16, "png"),
    "g8png": (1, 8, "png"),
    "rgba8png": (4, 8, "png"),
    "pal8png": ("P", 8, "png"),
    "g16tif": (1, 16, "tif"),
}
SIZES = {"normal": (40, 56), "odd": (13, 9)}  # (h, w); degenerate sizes have their own test below


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = FusionModel(ModelConfig(base_channels=8, levels=3))
    torch.manual_seed(0)
    torch.nn.init.normal_(model.net.head.weight, std=1e-3)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _pixels(channels, h: int, w: int, seed: int) -> np.ndarray:
    gray = np.roll(camera(128, 128), seed * 7, axis=1)[:h, :w]
    if channels == 1:
        return gray
    colour = np.roll(astronaut(128, 128), seed * 5, axis=0)[:h, :w]
    if channels == 4:
        return np.concatenate([colour, np.full((h, w, 1), 0.8, np.float32)], axis=-1)
    return colour


def write_kind(path, kind: tuple, h: int, w: int, seed: int = 0) -> None:
    """Write a test image of ``kind`` = (channels or "P", bits, ext) at ``path`` (extension included)."""
    channels, bits, ext = kind
    if channels == "P":
        Image.fromarray((_pixels(3, h, w, seed) * 255).astype(np.uint8)).quantize(16).save(path)
        return
    data = _pixels(channels, h, w, seed)
    peak = 65535 if bits == 16 else 255
    raw = np.round(data * peak).astype(np.uint16 if bits == 16 else np.uint8)
    if ext == "tif":
        tifffile.imwrite(path, raw, photometric="rgb" if raw.ndim == 3 else "minisblack")
    elif ext == "png" and bits == 16:
        path.write_bytes(imagecodecs.png_encode(raw))
    else:
        Image.fromarray(raw).save(path, quality=95) if ext == "jpg" else Image.fromarray(raw).save(path)


def _rows(path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["item"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """Folders a/ and b/ with one pair per (a kind, b kind, size class); returns them and the expected keys."""
    root = tmp_path_factory.mktemp("matrix")
    a_dir, b_dir = root / "a", root / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    keys = {}
    for (an, ak), (bn, bk), (sn, (h, w)) in itertools.product(
        A_KINDS.items(), B_KINDS.items(), SIZES.items()
    ):
        key = f"{an}-{bn}-{sn}"
        write_kind(a_dir / f"{key}.{ak[2]}", ak, h, w, 1)
        write_kind(b_dir / f"{key}.{bk[2]}", bk, h, w, 2)
        keys[key] = (ak, bk, (h, w))
    return a_dir, b_dir, keys


@pytest.mark.parametrize("out_format", ["png", "tif", "jpg"])
def test_every_pair_of_the_matrix_is_fused_and_recorded(matrix, checkpoint, tmp_path, out_format):
    a_dir, b_dir, keys = matrix
    out = tmp_path / "out"
    args = [
        "run",
        str(a_dir),
        str(b_dir),
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        "--format",
        out_format,
        "-q",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = _rows(out / "run.csv")
    assert set(rows) == set(keys)
    for key, (ak, bk, (h, w)) in keys.items():
        assert rows[key]["status"] == "ok", (key, rows[key]["reason"])
        image = read_image(out / f"{key}.{out_format}")
        colour = ak[0] in (3, 4, "P") or bk[0] in (3, 4, "P")
        assert image.pixels.shape == ((h, w, 3) if colour else (h, w)), key
        # the output keeps the deeper input's depth where the format can hold it
        expected_depth = 8 if out_format == "jpg" else max(ak[1], bk[1])
        assert image.bit_depth == expected_depth, key


def test_a_sixteen_bit_colour_png_is_a_real_48_bit_png(matrix, checkpoint, tmp_path):
    a_dir, b_dir, _ = matrix
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", str(a_dir), str(b_dir), "-o", str(out), "--model", str(checkpoint), "-q"]
    )
    assert result.exit_code == 0, result.output
    raw = imagecodecs.png_decode((out / "g16tif-rgb8jpg-normal.png").read_bytes())
    assert raw.dtype == np.uint16 and raw.shape == (40, 56, 3)
    assert len(np.unique(raw)) > 256  # real 16-bit samples, not 8-bit ones scaled up
    assert (out / "g16tif-rgb8jpg-normal.png").read_bytes()[24:26] == bytes([16, 2])  # IHDR: depth 16, RGB


def test_a_sixteen_bit_colour_png_input_keeps_its_precision(tmp_path):
    raw = (np.linspace(0, 1, 30 * 20 * 3).reshape(30, 20, 3) * 65535).astype(np.uint16)
    (tmp_path / "x.png").write_bytes(imagecodecs.png_encode(raw))
    image = read_image(tmp_path / "x.png")
    assert image.bit_depth == 16
    assert np.abs(image.pixels - raw / 65535.0).max() < 1e-7


DEGENERATE = {
    "1x1": (1, 1),
    "1x17": (1, 17),
    "17x1": (17, 1),
    "2x2": (2, 2),
    "5x7": (5, 7),
    "long": (3, 33000),
}


def test_degenerate_sizes_special_names_and_mixed_extensions(checkpoint, tmp_path):
    a_dir, b_dir, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    a_dir.mkdir()
    b_dir.mkdir()
    for name, (h, w) in DEGENERATE.items():
        data = np.tile(camera(128, 128), (1, 1 + w // 128))[:h, :w]
        Image.fromarray((data * 255).astype(np.uint8)).save(a_dir / f"{name}.png")
        Image.fromarray((data[::-1] * 255).astype(np.uint8)).save(b_dir / f"{name}.png")
    for name in ("météo °C", "a b c", "日本"):
        write_kind(a_dir / f"{name}.tif", (1, 16, "tif"), 24, 24)
        write_kind(b_dir / f"{name}.jpg", (3, 8, "jpg"), 24, 24)
    write_kind(a_dir / "twice.png", (1, 8, "png"), 24, 24)  # two files with one stem: a reported failure
    write_kind(a_dir / "twice.tif", (1, 16, "tif"), 24, 24)
    write_kind(b_dir / "twice.png", (1, 8, "png"), 24, 24)
    write_kind(a_dir / "wrongsize.png", (1, 8, "png"), 24, 24)  # sizes no scale explains: a reported failure
    write_kind(b_dir / "wrongsize.png", (1, 8, "png"), 24, 30)
    result = runner.invoke(app, ["run", str(a_dir), str(b_dir), "-o", str(out), "--model", str(checkpoint)])
    assert result.exit_code == 1  # two pairs failed, the others fused
    assert "Traceback" not in result.output
    rows = _rows(out / "run.csv")
    for name, (h, w) in DEGENERATE.items():
        assert rows[name]["status"] == "ok", (name, rows[name]["reason"])
        assert read_image(out / f"{name}.png").pixels.shape == (h, w)
    for name in ("météo °C", "a b c", "日本"):
        assert rows[name]["status"] == "ok"
        assert read_image(out / f"{name}.png").pixels.shape == (24, 24, 3)
    assert rows["twice"]["status"] == "failed" and "duplicate stem" in rows["twice"]["reason"]
    assert rows["wrongsize"]["status"] == "failed" and "size mismatch" in rows["wrongsize"]["reason"]
    assert "wrongsize.png" in rows["wrongsize"]["reason"]

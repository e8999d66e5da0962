"""Decompression bombs are refused from the header, before a pixel is decoded: small files that ask for
gigabytes (zlib TIFF, 16-bit RGB PNG, header-only TIFF / BMP / JPEG, animated PNG) fail fast, with one error
naming the file, its size and the limit, while the process stays small. The limit: flag > MMFUSE_MAX_PIXELS >
100 megapixels, 0 = none; through the real CLI, a refused image is that command's usual per-file failure."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import camera
from PIL import Image

from mmfuse_cli import limits
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.io import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageTooLargeError,
    check_pixel_limit,
    pixel_limit,
    read_image,
    read_image_size,
    set_max_pixels,
    write_image,
)


@pytest.fixture(autouse=True)
def _no_limit_set(monkeypatch):
    """Each test starts from the default: no process limit, no MMFUSE_MAX_PIXELS."""
    monkeypatch.setattr(limits, "_process_limit", None)
    monkeypatch.delenv(limits.MAX_PIXELS_ENV, raising=False)


# ------------------------------------------------------------------------------------------- bomb builders


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(path: Path, width: int, height: int, depth: int, colour: int, idat: bytes, frames: int = 0) -> Path:
    """A PNG with this IHDR, an optional acTL (animated, ``frames``) and one IDAT of ``idat``."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    actl = _png_chunk(b"acTL", struct.pack(">II", frames, 0)) if frames else b""
    body = _png_chunk(b"IHDR", ihdr) + actl + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def png_header_only(path: Path, width: int, height: int, depth: int = 16, colour: int = 2) -> Path:
    """IHDR claims the size (default 16-bit RGB, decoded by imagecodecs); the IDAT holds 64 zero bytes."""
    return _png(path, width, height, depth, colour, zlib.compress(b"\0" * 64))


def png_zero_bomb(path: Path, side: int) -> Path:
    """A valid 8-bit gray PNG of side x side zeros: every row compressed, a few hundred KB on disk."""
    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)  # filter byte + samples
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return _png(path, side, side, 8, 0, idat)


def tiff_zlib_bomb(path: Path, side: int, tile: int = 1024) -> Path:
    """A valid zlib TIFF of side x side zeros, written tile by tile (never the whole array in memory)."""
    zeros = np.zeros((tile, tile), np.uint8)
    tiles = (zeros for _ in range((side // tile) ** 2))
    tifffile.imwrite(path, tiles, shape=(side, side), dtype=np.uint8, tile=(tile, tile), compression="zlib")
    return path


def _ifd_entry(tag: int, kind: int, value: int) -> bytes:
    """One TIFF directory entry of one SHORT (kind 3) or LONG (kind 4), the value left-justified."""
    field = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
    return struct.pack("<HHI", tag, kind, 1) + field


def tiff_header_only(path: Path, width: int, height: int, bits: int = 16) -> Path:
    """A little-endian TIFF whose one IFD claims an uncompressed gray strip of width x height that is not there."""
    end = 8 + 2 + 12 * 9 + 4  # header, entry count, 9 entries, next-IFD offset: the strip would start here
    entries = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1), (273, 4, end)]
    entries += [(277, 3, 1), (278, 4, height), (279, 4, width * height * bits // 8)]
    ifd = struct.pack("<H", len(entries)) + b"".join(_ifd_entry(*e) for e in entries) + b"\0" * 4
    path.write_bytes(b"II*\0" + struct.pack("<I", 8) + ifd)
    return path


def bmp_header_only(path: Path, width: int, height: int) -> Path:
    """A 24-bit BMP header claiming width x height, no pixel data (read through Pillow)."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info)
    return path


def jpeg_header_only(path: Path, width: int, height: int) -> Path:
    """SOI, a baseline SOF0 claiming width x height (one component), SOS, EOI: no tables, no scan data."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    path.write_bytes(b"\xff\xd8" + sof + sos + b"\xff\xd9")
    return path


def _bombs(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, the size its refusal must state)."""
    return {
        "zlib TIFF 12288x12288": (tiff_zlib_bomb(folder / "zlib.tif", 12288), "12288x12288"),
        "header-only TIFF 42000x42000 16-bit": (
            tiff_header_only(folder / "hdr.tif", 42000, 42000),
            "42000x42000",
        ),
        "16-bit RGB PNG 20000x20000": (png_header_only(folder / "rgb16.png", 20000, 20000), "20000x20000"),
        "8-bit PNG 12000x12000 of zeros": (png_zero_bomb(folder / "zeros.png", 12000), "12000x12000"),
        "animated PNG 1000x1000x200": (
            _png(folder / "anim.png", 1000, 1000, 8, 0, b"", 200),
            "1000x1000x200",
        ),
        "BMP header 20000x20000": (bmp_header_only(folder / "big.bmp", 20000, 20000), "20000x20000"),
        "JPEG header 60000x60000": (jpeg_header_only(folder / "big.jpg", 60000, 60000), "60000x60000"),
    }


_REFUSE_ALL = """
import json, sys, time
from mmfuse_cli.io import ImageError, read_image
results = {}
for path in sys.argv[1:]:
    start = time.perf_counter()
    try:
        read_image(path)
        results[path] = ["decoded", 0.0]
    except ImageError as exc:
        results[path] = [str(exc), time.perf_counter() - start]
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"results": results, "rss_mb": peak_kb / 1024}))
"""
"""Peak RSS from VmHWM, this process's own: ru_maxrss would include the forking test process's (Linux keeps it
across exec)."""


# ------------------------------------------------------------------------------------------------- tests


def test_every_bomb_is_refused_fast_with_the_size_and_the_limit_and_the_process_stays_small(tmp_path):
    bombs = _bombs(tmp_path)
    assert all(path.stat().st_size < 1_000_000 for path, _ in bombs.values())  # small files, huge images
    env = {k: v for k, v in os.environ.items() if k != limits.MAX_PIXELS_ENV}
    done = subprocess.run(
        [sys.executable, "-c", _REFUSE_ALL, *(str(p) for p, _ in bombs.values())],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    report = json.loads(done.stdout)
    for name, (path, size) in bombs.items():
        message, seconds = report["results"][str(path)]
        assert message.startswith(f"{path}: {size}"), (name, message)
        assert f"above the limit of {DEFAULT_MAX_PIXELS} pixels" in message and "--max-pixels" in message
        assert "MMFUSE_MAX_PIXELS" in message and "\n" not in message
        assert seconds < 2.0, (name, seconds)
    # decoding even the smallest of them would take 150 MB of uint8 and 600 MB of float32
    assert report["rss_mb"] < 250, report["rss_mb"]


def test_the_default_admits_a_4000x3000_pair_and_stops_just_above_100_megapixels(tmp_path):
    check_pixel_limit(png_header_only(tmp_path / "a.png", 4000, 3000))
    check_pixel_limit(tiff_header_only(tmp_path / "b.tif", 4000, 3000))
    check_pixel_limit(png_header_only(tmp_path / "edge.png", 10000, 10000))
    with pytest.raises(ImageTooLargeError) as info:
        check_pixel_limit(png_header_only(tmp_path / "over.png", 10000, 10001))
    assert info.value.limit == DEFAULT_MAX_PIXELS and info.value.size.pixels == 100_010_000


def test_header_sizes_match_what_the_decoders_produce(tmp_path):
    for ext, depth in ((".png", 8), (".png", 16), (".tif", 16), (".jpg", 8), (".bmp", 8)):
        path = write_image(tmp_path / f"img{depth}{ext}", camera(48, 80), depth)
        size = read_image_size(path)
        assert (size.width, size.height, size.frames) == (80, 48, 1), ext
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((5, 32, 40), np.uint8))
    assert read_image_size(stack).pixels == 5 * 32 * 40
    colour16 = write_image(tmp_path / "rgb16.png", np.stack([camera(20, 30)] * 3, -1), 16)
    assert read_image_size(colour16).describe() == "30x20"


def test_a_broken_header_is_one_decode_error_without_warnings(tmp_path):
    for name, content in (
        ("bad.tif", b"II*\0garbage"),
        ("bad.png", b"\x89PNG\r\n\x1a\nshort"),
        ("bad.jpg", b"x"),
    ):
        (tmp_path / name).write_bytes(content)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ImageError, match=f"{name}: cannot decode image"):
                read_image(tmp_path / name)


def test_a_limit_given_to_read_image_or_set_for_the_process_is_applied(tmp_path):
    path = write_image(tmp_path / "small.png", camera(64, 64), 8)
    with pytest.raises(ImageTooLargeError, match=r"small\.png: 64x64 = 4096 pixels, above the limit of 1000"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=4096).pixels.shape == (64, 64)
    assert set_max_pixels(1000) == 1000
    with pytest.raises(ImageTooLargeError):
        read_image(path)
    assert read_image(path, max_pixels=0).pixels.shape == (64, 64)  # explicit beats the process limit
    set_max_pixels(0)
    read_image(path)


def test_limit_resolution_flag_then_environment_then_default(monkeypatch):
    assert pixel_limit() == DEFAULT_MAX_PIXELS == 100_000_000
    monkeypatch.setenv("MMFUSE_MAX_PIXELS", " 5000 ")
    assert pixel_limit() == 5000 and pixel_limit(7) == 7 and pixel_limit(0) == 0
    monkeypatch.setenv("MMFUSE_MAX_PIXELS", "0")
    assert pixel_limit() == 0
    for bad in ("lots", "-1", "1.5e8"):
        monkeypatch.setenv("MMFUSE_MAX_PIXELS", bad)
        with pytest.raises(
            InvalidValueError, match=f"MMFUSE_MAX_PIXELS must be a whole number.*{bad}"
        ) as info:
            pixel_limit()
        assert info.value.field == "MMFUSE_MAX_PIXELS"
        assert pixel_limit(10) == 10  # a flag does not need the environment
    for bad in (-1, 2.5, True):
        with pytest.raises(InvalidValueError, match="max_pixels must be") as info:
            pixel_limit(bad)


def test_a_bad_environment_value_is_a_per_file_error_naming_the_variable(tmp_path, monkeypatch):
    path = write_image(tmp_path / "small.png", camera(8, 8), 8)
    monkeypatch.setenv("MMFUSE_MAX_PIXELS", "many")
    with pytest.raises(ImageError, match=r"small\.png: cannot check the image size \(MMFUSE_MAX_PIXELS must"):
        read_image(path)


def test_our_refusal_comes_before_pillows_own_bomb_check(tmp_path, monkeypatch):
    assert Image.MAX_IMAGE_PIXELS is None  # switched off: mmfuse's limit, which the user can raise, decides
    path = write_image(tmp_path / "photo.jpg", camera(64, 64), 8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # someone turned it back on, lower than ours
    with pytest.raises(ImageTooLargeError, match=r"photo\.jpg: 64x64 = 4096 pixels, above the limit of 1000"):
        read_image(path, max_pixels=1000)


# ------------------------------------------------------------------------------------- through the real CLI


def _cli(mmfuse_cmd, *args, env_limit: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != limits.MAX_PIXELS_ENV}
    if env_limit is not None:
        env[limits.MAX_PIXELS_ENV] = env_limit
    return subprocess.run([*mmfuse_cmd, *args], capture_output=True, text=True, env=env)


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    """fused/, a/, b/ with one 64x64 image ``scene.png`` each (4096 pixels)."""
    out = {}
    for name in ("fused", "a", "b"):
        out[name] = tmp_path / name
        out[name].mkdir()
        write_image(out[name] / "scene.png", camera(64, 64), 8)
    return out


@pytest.mark.parametrize(
    "how,flag,env_limit,refused",
    [
        ("flag", "1000", None, True),
        ("environment", None, "1000", True),
        ("flag over environment", "5000", "1000", False),
    ],
)
def test_estimate_refuses_above_the_limit_as_a_failed_row(
    mmfuse_cmd, folders, tmp_path, how, flag, env_limit, refused
):
    rows = tmp_path / "rows.csv"
    args = ["estimate", str(folders["a"]), "-o", str(rows), "-q"] + (["--max-pixels", flag] if flag else [])
    done = _cli(mmfuse_cmd, *args, env_limit=env_limit)
    row = next(csv.DictReader(rows.open()))
    if refused:
        assert done.returncode == 1, done.stderr
        assert row["status"] == "failed" and "64x64 = 4096 pixels, above the limit of 1000" in row["reason"]
        assert f"{folders['a'] / 'scene.png'}: 64x64" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert row["status"] == "ok"


def test_degrade_and_evaluate_refuse_above_the_flag_per_file(mmfuse_cmd, folders, tmp_path):
    done = _cli(
        mmfuse_cmd,
        "degrade",
        str(folders["a"]),
        "-o",
        str(tmp_path / "deg"),
        "--max-pixels",
        "1000",
        "--json",
    )
    assert done.returncode == 1
    row = json.loads(done.stdout.splitlines()[0])
    assert row["status"] == "failed" and "above the limit of 1000 pixels" in row["reason"]
    args = [
        "evaluate",
        str(folders["fused"]),
        "--a",
        str(folders["a"]),
        "--b",
        str(folders["b"]),
        "--json",
        "-q",
    ]
    done = _cli(mmfuse_cmd, *args, "--max-pixels", "1000")
    assert done.returncode == 1
    assert "above the limit of 1000 pixels" in json.loads(done.stdout.splitlines()[0])["reason"]
    assert _cli(mmfuse_cmd, *args, "--max-pixels", "4096").returncode == 0


@pytest.mark.parametrize("command", ["estimate", "evaluate", "degrade", "report"])
def test_a_bad_limit_is_a_usage_error_before_any_work(mmfuse_cmd, folders, tmp_path, command):
    args = {
        "estimate": ["estimate", str(folders["a"])],
        "evaluate": ["evaluate", str(folders["fused"]), "--a", str(folders["a"]), "--b", str(folders["b"])],
        "degrade": ["degrade", str(folders["a"]), "-o", str(tmp_path / "deg")],
        "report": ["report", str(folders["a"])],
    }[command]
    done = _cli(mmfuse_cmd, *args, "--max-pixels", "-5")
    assert done.returncode == 2 and done.stderr.strip() == (
        "error: --max-pixels must be a whole number of pixels >= 0 (0 = no limit), got -5"
    )
    done = _cli(mmfuse_cmd, *args, env_limit="lots")
    assert done.returncode == 2 and "error: MMFUSE_MAX_PIXELS must be a whole number" in done.stderr
    assert not (tmp_path / "deg").exists()

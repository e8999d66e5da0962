import warnings

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import astronaut, camera

from mmfuse_cli.io import ImageError, quantize, read_image, rgb_to_ycbcr, to_gray, write_image, ycbcr_to_rgb


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("depth", [8, 16])
def test_lossless_round_trip_keeps_values_and_depth(tmp_path, ext, depth):
    img = camera(40, 50)
    path = write_image(tmp_path / f"x{ext}", img, depth)
    back = read_image(path)
    assert back.bit_depth == depth
    assert back.pixels.dtype == np.float32 and back.pixels.shape == (40, 50)
    step = 1 / (255 if depth == 8 else 65535)
    assert np.abs(back.pixels - img).max() <= step / 2 + 1e-7


def test_sixteen_bit_keeps_precision_eight_bit_cannot(tmp_path):
    ramp = np.linspace(0, 1, 1000, dtype=np.float32).reshape(20, 50)
    b16 = read_image(write_image(tmp_path / "r16.png", ramp, 16)).pixels
    b8 = read_image(write_image(tmp_path / "r8.png", ramp, 8)).pixels
    assert len(np.unique(b16)) == 1000
    assert len(np.unique(b8)) <= 256


def test_rgb_jpeg_and_bmp(tmp_path):
    img = astronaut(32, 48)
    jpg = read_image(write_image(tmp_path / "c.jpg", img, 8))
    assert jpg.pixels.shape == (32, 48, 3) and jpg.bit_depth == 8
    assert np.abs(jpg.pixels - img).mean() < 0.03  # lossy but close
    bmp = read_image(write_image(tmp_path / "c.bmp", img, 8))
    assert np.abs(bmp.pixels - img).max() <= 0.5 / 255 + 1e-6


def test_sixteen_bit_jpeg_is_refused(tmp_path):
    with pytest.raises(ImageError, match="16-bit"):
        write_image(tmp_path / "c.jpg", camera(8, 8), 16)
    assert list(tmp_path.iterdir()) == []


def test_rgba_drops_alpha_with_warning(tmp_path):
    rgba = np.zeros((6, 7, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128
    iio.imwrite(tmp_path / "a.png", rgba)
    with pytest.warns(UserWarning, match="alpha"):
        img = read_image(tmp_path / "a.png")
    assert img.pixels.shape == (6, 7, 3)
    assert np.allclose(img.pixels[..., 0], 200 / 255)


@pytest.mark.parametrize(
    "content,ext,match",
    [
        (b"", ".png", "empty file"),
        (b"this is not an image at all", ".png", "cannot decode"),
        (b"GIF89a", ".gif", "unsupported extension"),
    ],
)
def test_bad_files_raise_one_line_error_naming_the_file(tmp_path, content, ext, match):
    path = tmp_path / f"bad{ext}"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=match) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_png_is_an_error(tmp_path):
    good = write_image(tmp_path / "g.png", camera(64, 64), 8)
    data = good.read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="t.png"):
        read_image(tmp_path / "t.png")


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_ycbcr_round_trip_and_gray_luminance():
    rgb = astronaut(64, 64)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert np.abs(back - rgb).max() < 1e-5
    gray = np.full((4, 4, 3), 0.3, np.float32)
    ycc = rgb_to_ycbcr(gray)
    assert np.allclose(ycc[..., 0], 0.3, atol=1e-6) and np.allclose(ycc[..., 1:], 0.5, atol=1e-6)
    # BT.601 luma weights
    assert to_gray(np.array([[[1.0, 0.0, 0.0]]], np.float32))[0, 0] == pytest.approx(0.299, abs=1e-6)


def test_write_is_atomic_and_leaves_no_temp_file_on_failure(tmp_path):
    bad = np.full((4, 4), np.nan, np.float32)
    with pytest.raises(ImageError, match="NaN"):
        write_image(tmp_path / "n.png", bad, 8)
    assert list(tmp_path.iterdir()) == []
    # overwriting replaces the file in one step; permissions follow the umask, not 0600
    path = write_image(tmp_path / "o.png", camera(8, 8), 8)
    assert path.stat().st_mode & 0o044


def test_quantize_clips_and_rounds():
    q = quantize(np.array([-0.5, 0.0, 0.5, 1.0, 2.0], np.float32), 8)
    assert q.tolist() == [0, 0, 128, 255, 255]


def test_read_ignores_warnings_from_decoder(tmp_path):
    path = write_image(tmp_path / "w.png", camera(8, 8), 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(path)

"""Image files in and out, and BT.601 colour conversion.

Images inside mmfuse are numpy ``float32`` arrays with values in ``[0, 1]``, shaped ``(H, W)`` for gray or
``(H, W, 3)`` for RGB. Files are 8-bit or 16-bit PNG / TIFF, 8-bit JPEG / BMP; palette images are expanded to
RGB, alpha is dropped. Every write is atomic: the pixels go to a hidden temporary file in the destination folder,
which is flushed, fsync'ed and renamed over the final name, so a crash never leaves a truncated image under the
final name.

16-bit colour PNG (48-bit RGB, 64-bit RGBA) goes through libpng (:mod:`imagecodecs`): Pillow, behind imageio,
cannot write it and silently reads it as 8-bit. Every other PNG goes through imageio as before.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import imageio.v3 as iio
import numpy as np

from mmfuse_cli.files import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
"""File extensions mmfuse reads (case-insensitive)."""

SIXTEEN_BIT_EXTENSIONS = (".png", ".tif", ".tiff")
"""Formats that can store 16-bit samples; JPEG and BMP are 8-bit only."""


class ImageError(ValueError):
    """An image could not be read or written; the message names the file and the problem."""


@dataclass(frozen=True)
class LoadedImage:
    """Pixels of one image file.

    Attributes:
        pixels: float32 in [0, 1], ``(H, W)`` gray or ``(H, W, 3)`` RGB.
        bit_depth: 8 or 16, the sample depth stored in the file.
        path: the file it came from.
    """

    pixels: np.ndarray
    bit_depth: int
    path: Path

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3


def is_image_file(path: Path) -> bool:
    """True when ``path`` has one of :data:`IMAGE_EXTENSIONS`."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file into float32 [0, 1].

    Gray+alpha and RGBA lose their alpha channel (with a warning). A 3-channel image whose channels are equal
    stays RGB (callers that want luminance use :func:`to_gray`).

    Raises:
        ImageError: unknown extension, missing, empty, truncated or undecodable file, unsupported sample type.
    """
    path = Path(path)
    if not is_image_file(path):
        raise ImageError(
            f"{path}: unsupported extension '{path.suffix}' (expected one of {', '.join(IMAGE_EXTENSIONS)})"
        )
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = _decode_16bit_colour_png(path) if path.suffix.lower() == ".png" else None
            if raw is None:
                raw = iio.imread(path)
    except Exception as exc:  # imageio raises many types for corrupt files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{path}: cannot decode image ({reason})") from None
    raw = np.asarray(raw)
    if raw.ndim == 3 and raw.shape[0] in (1, 3, 4) and raw.shape[-1] not in (1, 3, 4):
        raw = np.moveaxis(raw, 0, -1)  # planar TIFF
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim == 3 and raw.shape[-1] in (2, 4):
        warnings.warn(f"{path}: alpha channel dropped", stacklevel=2)
        raw = raw[..., :-1]
        if raw.shape[-1] == 1:
            raw = raw[..., 0]
    if raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[-1] != 3):
        raise ImageError(f"{path}: unsupported image layout {raw.shape} (expected gray, RGB or RGBA)")
    if raw.shape[0] < 1 or raw.shape[1] < 1:
        raise ImageError(f"{path}: image has no pixels")
    pixels, depth = _to_unit_float(raw, path)
    return LoadedImage(pixels=pixels, bit_depth=depth, path=path)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_16bit_colour_png(path: Path) -> np.ndarray | None:
    """The samples of a 16-bit PNG with colour or alpha (uint16), or ``None`` for any other PNG (read by imageio).

    The IHDR chunk follows the 8-byte signature: length, type, width, height, then bit depth and colour type.
    """
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    bit_depth, colour_type = head[24], head[25]
    if bit_depth != 16 or colour_type == 0:
        return None
    return imagecodecs.png_decode(path.read_bytes())


def _to_unit_float(raw: np.ndarray, path: Path) -> tuple[np.ndarray, int]:
    if raw.dtype == np.bool_:
        return raw.astype(np.float32), 8
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0, 8
    if raw.dtype in (np.uint16, np.int32, np.uint32) and raw.dtype != np.uint8:
        if raw.dtype != np.uint16 and raw.max(initial=0) > 65535:
            raise ImageError(f"{path}: samples exceed the 16-bit range")
        return raw.astype(np.float32) / 65535.0, 16
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all():
            raise ImageError(f"{path}: floating-point image contains NaN or inf")
        return np.clip(raw.astype(np.float32), 0.0, 1.0), 16
    raise ImageError(f"{path}: unsupported sample type {raw.dtype}")


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """Luminance (BT.601 Y) of an RGB image, or the image itself if already gray. float32 [0, 1], (H, W)."""
    if pixels.ndim == 2:
        return pixels
    # the same arithmetic as rgb_to_ycbcr, a band of rows at a time: a 12 Mpx image needs 9 MB of float64
    # temporaries, not 550 MB
    out = np.empty(pixels.shape[:-1], np.float32)
    for start in range(0, pixels.shape[0], GRAY_ROWS):
        out[start : start + GRAY_ROWS] = rgb_to_ycbcr(pixels[start : start + GRAY_ROWS])[..., 0]
    return out


GRAY_ROWS = 64
"""Rows per band in :func:`to_gray`."""


def quantize(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round float [0, 1] pixels to unsigned integers of ``bit_depth`` (8 or 16) bits, clipping first."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
    if not np.isfinite(pixels).all():
        raise ImageError("image contains NaN or inf; refusing to write it")
    peak = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.round(np.clip(pixels, 0.0, 1.0) * peak).astype(dtype)


def write_image(path: str | os.PathLike, pixels: np.ndarray, bit_depth: int = 8) -> Path:
    """Atomically write float [0, 1] pixels, ``(H, W)`` or ``(H, W, 3)``, as an 8- or 16-bit image.

    JPEG and BMP cannot hold 16 bits: asking for it raises :class:`ImageError` rather than silently
    dropping precision. The file appears under its final name only once it is complete.

    Returns:
        The final path.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ImageError(f"{path}: unsupported output extension '{path.suffix}'")
    if bit_depth == 16 and ext not in SIXTEEN_BIT_EXTENSIONS:
        raise ImageError(f"{path}: {ext} cannot store 16-bit samples; use .png or .tif")
    data = quantize(pixels, bit_depth)
    if ext == ".png" and data.dtype == np.uint16 and data.ndim == 3:
        encoded = imagecodecs.png_encode(data)  # 48-bit RGB: Pillow cannot
    else:
        extra = {"quality": 95} if ext in (".jpg", ".jpeg") else {}
        encoded = iio.imwrite("<bytes>", data, extension=ext, **extra)
    atomic_write_bytes(path, encoded)
    return path


# --- BT.601 full-range (JPEG) colour conversion -------------------------------------------------------------

_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    dtype=np.float64,
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range RGB -> YCbCr. Input and output float32 ``(..., 3)`` in [0, 1] (Cb, Cr centred at 0.5)."""
    out = rgb.astype(np.float64) @ _RGB_TO_YCBCR.T + _CHROMA_OFFSET
    return out.astype(np.float32)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`; float32 ``(..., 3)``. Not clipped (callers clip when writing)."""
    out = (ycbcr.astype(np.float64) - _CHROMA_OFFSET) @ _YCBCR_TO_RGB.T
    return out.astype(np.float32)

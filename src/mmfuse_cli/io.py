"""Image files in and out, and BT.601 colour conversion.

Images inside mmfuse are numpy ``float32`` arrays with values in ``[0, 1]``, shaped ``(H, W)`` for gray or
``(H, W, 3)`` for RGB. Files are 8-bit or 16-bit PNG / TIFF, 8-bit JPEG / BMP; palette images are expanded to
RGB, alpha is dropped. Every write goes through :func:`mmfuse_cli.files.atomic_write_bytes`: a regular file gets
a hidden temporary file in its folder, flushed, fsync'ed and renamed over the final name, so a crash never leaves a
truncated image under the final name; a symlink's target is written that way (the link stays); a device, FIFO
or open descriptor is written through, never replaced.

16-bit colour PNG (48-bit RGB, 64-bit RGBA) goes through libpng (:mod:`imagecodecs`): Pillow, behind imageio,
cannot write it and silently reads it as 8-bit. Every other PNG goes through imageio as before.

Decompression bombs: before decoding, :func:`read_image` reads the image's size from its header (the PNG IHDR
chunk, the TIFF's first series, Pillow's lazy open for the rest) and refuses an image with more pixels than the
limit of :mod:`mmfuse_cli.limits` (default 100 megapixels; ``--max-pixels``, ``MMFUSE_MAX_PIXELS``) with an
:class:`ImageTooLargeError`. Pillow's own ``MAX_IMAGE_PIXELS`` check is switched off: mmfuse's limit, which the
user can raise, always applies first.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagecodecs
import imageio.v3 as iio
import numpy as np
from PIL import Image

from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.files import atomic_write_bytes

# DEFAULT_MAX_PIXELS, pixel_limit and set_max_pixels are re-exported: io is where image readers look for them
from mmfuse_cli.limits import DEFAULT_MAX_PIXELS as DEFAULT_MAX_PIXELS
from mmfuse_cli.limits import MAX_PIXELS_ENV, current_pixel_limit, pixel_limit
from mmfuse_cli.limits import set_max_pixels as set_max_pixels


def _pillow_bomb_check_off() -> None:
    """Pillow's own ``MAX_IMAGE_PIXELS`` refusal off (again, should anyone have set it since): mmfuse's limit,
    checked first and raisable by the user, decides alone, with its own message."""
    Image.MAX_IMAGE_PIXELS = None


_pillow_bomb_check_off()

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
"""File extensions mmfuse reads (case-insensitive)."""

SIXTEEN_BIT_EXTENSIONS = (".png", ".tif", ".tiff")
"""Formats that can store 16-bit samples; JPEG and BMP are 8-bit only."""


class ImageError(ValueError):
    """An image could not be read or written; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageSize:
    """What an image file's header says it holds: ``width`` x ``height`` pixels, ``frames`` of them (a TIFF
    stack or an animated PNG; 1 for a still)."""

    width: int
    height: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        """Pixels a decoder would produce: width x height x frames (channels and depth not counted)."""
        return self.width * self.height * self.frames

    def describe(self) -> str:
        """``12288x12288`` or ``64x64x10 frames``."""
        frames = f"x{self.frames} frames" if self.frames != 1 else ""
        return f"{self.width}x{self.height}{frames}"


class ImageTooLargeError(ImageError):
    """An image whose header asks for more pixels than the limit: refused before any pixel is decoded."""

    def __init__(self, path: Path, size: ImageSize, limit: int):
        super().__init__(
            f"{path}: {size.describe()} = {size.pixels} pixels, above the limit of {limit} pixels; "
            f"raise it with --max-pixels N or {MAX_PIXELS_ENV}=N (0 = no limit)"
        )
        self.path, self.size, self.limit = path, size, limit

    def __reduce__(self):
        return type(self), (self.path, self.size, self.limit)


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


def is_image_file(path: Path) -> bool:
    """True when ``path`` has one of :data:`IMAGE_EXTENSIONS`."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> LoadedImage:
    """Read an image file into float32 [0, 1].

    Gray+alpha and RGBA lose their alpha channel (with a warning). A 3-channel image whose channels are equal
    stays RGB (callers that want luminance use :func:`to_gray`).

    Args:
        path: the image file.
        max_pixels: refuse the image, from its header alone, when it has more pixels (width x height x frames)
            than this; 0 = no limit; None = :func:`mmfuse_cli.limits.current_pixel_limit` (the process limit
            of :func:`set_max_pixels`, else ``$MMFUSE_MAX_PIXELS``, else 100 megapixels).

    Raises:
        ImageTooLargeError: the image is above the pixel limit (nothing was decoded).
        ImageError: unknown extension, missing, empty, truncated or undecodable file, unsupported sample type,
            a bad ``max_pixels`` or ``$MMFUSE_MAX_PIXELS``.
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
    check_pixel_limit(path, max_pixels)
    _pillow_bomb_check_off()
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
TIFF_SIGNATURES = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
"""Classic and BigTIFF, little- and big-endian."""


def check_pixel_limit(path: Path, max_pixels: int | None = None) -> None:
    """Refuse ``path`` when its header asks for more pixels than the limit (``max_pixels`` as in
    :func:`read_image`); reads the header only, never the pixels.

    Raises:
        ImageTooLargeError: above the limit.
        ImageError: the header cannot be read, or the limit (argument or environment) is not valid.
    """
    try:
        limit = current_pixel_limit() if max_pixels is None else pixel_limit(max_pixels)
    except InvalidValueError as exc:
        raise ImageError(f"{path}: cannot check the image size ({exc})") from None
    if limit == 0:
        return
    size = read_image_size(path)
    if size.pixels > limit:
        raise ImageTooLargeError(path, size, limit)


def read_image_size(path: str | os.PathLike) -> ImageSize:
    """The size an image file's header declares, without decoding it (what is read is bounded: the PNG chunk
    headers before the first IDAT, the TIFF's directories, Pillow's lazy open of anything else).

    Raises:
        ImageError: the file is not an image any of the decoders knows, or its header is broken.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings(), open(path, "rb") as handle:
            warnings.simplefilter("ignore")  # Pillow's "corrupt EXIF" and the like: the decode will tell
            if handle.read(8).startswith(PNG_SIGNATURE):
                return _png_size(handle, path)
            handle.seek(0)
            size = _tiff_size(path) if handle.read(4) in TIFF_SIGNATURES else None
            return size or _pillow_size(path)
    except ImageError:
        raise
    except Exception as exc:  # Pillow and tifffile raise many types for broken headers
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{path}: cannot decode image ({reason})") from None


def _png_size(handle, path: Path) -> ImageSize:
    """Width and height from IHDR (bytes 16-24 of the file, big-endian), frames from an APNG's acTL chunk."""
    chunk = handle.read(25)  # length, "IHDR", width, height, depth, colour, ..., CRC
    if len(chunk) < 25 or chunk[4:8] != b"IHDR":
        raise ImageError(f"{path}: cannot decode image (PNG without an IHDR chunk)")
    width, height = struct.unpack(">II", chunk[8:16])
    return ImageSize(width, height, _png_frames(handle))


def _png_frames(handle) -> int:
    """The frame count an animated PNG's acTL chunk declares (imageio decodes them all), 1 for a still PNG.
    ``handle`` is positioned after IHDR; only the 8-byte chunk headers up to the first IDAT are read."""
    while True:
        header = handle.read(8)
        if len(header) < 8:
            return 1
        length, kind = struct.unpack(">I4s", header)
        if kind == b"acTL":
            declared = handle.read(4)
            return max(1, struct.unpack(">I", declared)[0]) if len(declared) == 4 else 1
        if kind in (b"IDAT", b"IEND"):
            return 1
        handle.seek(length + 4, os.SEEK_CUR)


def _tiff_size(path: Path) -> ImageSize | None:
    """The size of the TIFF's first series (what imageio decodes: all its pages), or None when tifffile cannot
    parse the file (imageio then tries Pillow, and so does :func:`read_image_size`)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0] if tif.series else None
            shape, axes = (series.shape, series.axes) if series is not None else ((), "")
    except Exception:  # noqa: BLE001 - not for tifffile: Pillow decides
        return None
    if not shape:
        return None
    dims = dict(zip(axes, shape))
    width, height = int(dims.get("X", 1)), int(dims.get("Y", 1))
    total = math.prod(int(n) for axis, n in zip(axes, shape) if axis != "S")
    return ImageSize(width, height, total // (width * height) if width * height else 1)


def _pillow_size(path: Path) -> ImageSize:
    """Pillow's lazy size (JPEG, BMP, or a file whose content is not what its extension says); frames counted
    where imageio decodes them all (GIF, APNG)."""
    _pillow_bomb_check_off()
    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1) if image.format in ("GIF", "PNG") else 1
        return ImageSize(image.width, image.height, max(1, frames))


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
    dropping precision. The file appears under its final name only once it is complete (a symlink's target
    likewise; a device or FIFO is written through: see :func:`mmfuse_cli.files.atomic_write_bytes`).

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
        extra: dict[str, Any] = {"quality": 95} if ext in (".jpg", ".jpeg") else {}
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

"""Thumbnails for the report page: small 8-bit JPEG files under ``report/thumbs/``, named by a hash of the source
file's path, size and modification time, so a second report of the same run reuses them and a changed file gets a
new one (a link or other node under a thumbnail's name is left alone: that image gets no thumbnail). A file that is missing or cannot be decoded gets no thumbnail (the page says so); nothing here raises
for a bad image.

A medical volume (a NIfTI file or a DICOM series folder, :mod:`mmfuse_cli.report.planes`) gets one thumbnail of
its three mid-planes side by side, each plane ``THUMB_SIZE`` square.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image

from mmfuse_cli.io import ImageError, read_image, write_image
from mmfuse_cli.report.planes import is_volume_source, source_key, volume_planes

THUMB_SIZE = 192
"""Longest side of a thumbnail, in pixels (images smaller than that are kept at their size)."""


def thumb_name(path: Path) -> str | None:
    """The thumbnail's file name for ``path`` (``<hash>.jpg``), or None when the file does not exist."""
    try:
        if is_volume_source(path):
            key = f"{os.path.abspath(path)}\0planes\0{source_key(path)}\0{THUMB_SIZE}"
        else:
            st = Path(path).stat()
            key = f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\0{THUMB_SIZE}"
    except OSError:
        return None
    return hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:20] + ".jpg"


def downscale(pixels: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """Float [0, 1] image (gray or RGB) reduced so its longest side is at most ``size`` (antialiased)."""
    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return pixels
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    return np.asarray(img.resize(target, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def make_thumb(source: Path, folder: Path, size: int = THUMB_SIZE) -> str | None:
    """Write (or reuse) the thumbnail of ``source`` in ``folder``; its file name, or None when the source is
    missing or unreadable."""
    name = thumb_name(source)
    if name is None:
        return None
    target = Path(folder) / name
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError:
        return None
    if mode is not None:  # made by an earlier report; anything but a regular file is never written through
        return name if stat.S_ISREG(mode) else None
    try:
        if is_volume_source(source):  # VolumeError is a ValueError
            pixels = volume_planes(source, size)
        else:
            pixels = downscale(read_image(source).pixels, size)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_image(target, pixels, 8)
    except (ImageError, OSError, ValueError):
        return None
    return name

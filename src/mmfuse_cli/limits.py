"""How many pixels an input image may have: the guard against decompression bombs.

A 150 KB compressed TIFF or PNG can ask for tens of gigabytes once decoded, so :func:`mmfuse_cli.io.read_image`
reads the image's size from its header and refuses it, before decoding a single pixel, when it has more than the
limit. The limit is a count of pixels (width x height, times the frames of a stack), whatever the channels and
the sample depth: at the default a 16-bit RGB image needs about 0.6 GB decoded and 1.2 GB as float32.

Where the limit comes from, first match wins:

1. a value given explicitly (``--max-pixels N``, ``read_image(path, max_pixels=N)``);
2. the process limit set by :func:`set_max_pixels` (what a command does with its ``--max-pixels`` flag);
3. the environment variable ``MMFUSE_MAX_PIXELS``;
4. :data:`DEFAULT_MAX_PIXELS`.

``0`` means no limit. Pure Python (no numpy), so that command modules can import it at start-up.
"""

from __future__ import annotations

import os

from mmfuse_cli.errors import InvalidValueError

DEFAULT_MAX_PIXELS = 100_000_000
"""Default limit: 100 megapixels (a 10000 x 10000 image passes, a 12288 x 12288 one does not)."""

MAX_PIXELS_ENV = "MMFUSE_MAX_PIXELS"
"""Environment variable overriding :data:`DEFAULT_MAX_PIXELS` (a whole number >= 0; 0 = no limit)."""

_PROBLEM = "must be a whole number of pixels >= 0 (0 = no limit)"

_process_limit: int | None = None  # set_max_pixels()'s value; None: the environment, then the default


def pixel_limit(value: int | None = None) -> int:
    """The pixel limit to apply: ``value`` when given, else ``$MMFUSE_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`. 0 = no limit. Does not look at :func:`set_max_pixels`.

    Raises:
        InvalidValueError: field ``max_pixels`` for a bad ``value`` (negative, not an integer), field
            ``MMFUSE_MAX_PIXELS`` for a bad environment value.
    """
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidValueError("max_pixels", f"{_PROBLEM}, got {value!r}")
        return value
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        number = int(text, 10)
    except ValueError:
        number = -1
    if number < 0:
        raise InvalidValueError(MAX_PIXELS_ENV, f"{_PROBLEM}, got {text!r}")
    return number


def set_max_pixels(value: int | None) -> int:
    """Resolve ``value`` with :func:`pixel_limit` (flag > environment > default) and make the result the limit of
    every later :func:`~mmfuse_cli.io.read_image` in this process (all its threads) that is given no
    ``max_pixels``. Other processes (Ray actors) do not see it: pass ``max_pixels`` to them explicitly.

    Returns:
        The limit now in force (pixels; 0 = none).

    Raises:
        InvalidValueError: as :func:`pixel_limit`, before anything is changed.
    """
    global _process_limit
    _process_limit = pixel_limit(value)
    return _process_limit


def current_pixel_limit() -> int:
    """The limit a :func:`~mmfuse_cli.io.read_image` without ``max_pixels`` applies: :func:`set_max_pixels`'s,
    else the environment's, else the default (pixels; 0 = none).

    Raises:
        InvalidValueError: (field ``MMFUSE_MAX_PIXELS``) nothing was set and the environment value is bad.
    """
    return pixel_limit() if _process_limit is None else _process_limit


__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "current_pixel_limit", "pixel_limit", "set_max_pixels"]

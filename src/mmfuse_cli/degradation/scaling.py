"""Every normalisation constant of a degradation parameter, in one place (pure Python, no torch).

The network and the learned damping see each source's degradation as numbers roughly in [0, 1]; the Wiener
pseudo-inverse is regularised by the noise it must not amplify. These constants are part of the trained
checkpoints' meaning: changing one changes what every shipped model is told, so they live here and nowhere else.

=====================  ==========  ===========================================================================
constant               value       meaning
=====================  ==========  ===========================================================================
NOISE_UNIT             0.1         noise std (intensity units, [0, 1]) that the network sees as 1
BLUR_UNIT              2.5         Gaussian blur std (pixels) that the network sees as 1
LOG2_SCALE_UNIT        2.0         log2 of the scale factor that the network sees as 1 (x4 -> 1)
DAMPING_NOISE_UNIT     0.05        noise std in the learned damping ``sigmoid(u - v sigma / 0.05)``
WIENER_EPS_PER_VAR     20.0        Wiener regularisation ``eps = 20 sigma^2`` ...
WIENER_EPS_MIN         1e-3        ... but never below 1e-3 (clean observations)
=====================  ==========  ===========================================================================
"""

from __future__ import annotations

import math

NOISE_UNIT = 0.1
BLUR_UNIT = 2.5
LOG2_SCALE_UNIT = 2.0
DAMPING_NOISE_UNIT = 0.05
WIENER_EPS_PER_VAR = 20.0
WIENER_EPS_MIN = 1e-3


def noise_feature(noise: float) -> float:
    """Noise std (intensity units) as the network sees it: ``noise / 0.1``."""
    return noise / NOISE_UNIT


def blur_feature(blur: float) -> float:
    """Blur std (pixels) as the network and the damping see it: ``blur / 2.5``."""
    return blur / BLUR_UNIT


def scale_feature(scale: int) -> float:
    """Integer scale factor as the network sees it: ``log2(scale) / 2`` (0 for x1, 1 for x4)."""
    return math.log2(scale) / LOG2_SCALE_UNIT


def wiener_eps_for_noise(sigma: float) -> float:
    """Regularisation of the Wiener pseudo-inverse for noise std ``sigma`` ([0, 1] units).

    ``1e-3`` for clean observations (A A+ A ~= A to about 1e-2), growing as ``20 sigma^2`` so that noise is not
    amplified by more than about ``1 / (2 sqrt(eps))`` (x3.2 at sigma = 0.05).
    """
    return max(WIENER_EPS_MIN, WIENER_EPS_PER_VAR * float(sigma) ** 2)


def quantisation_feature(bits: int) -> float:
    """Rounding step of ``bits``-bit samples in 8-bit units, ``q = 255 / (2^bits - 1)``: 1 for 8-bit files,
    0.0039 for 16-bit, 0 for exact values (``bits = 0``). A quantisation-aware model sees it."""
    return 255.0 / (2**bits - 1) if bits else 0.0


def quantisation_std(bits: int) -> float:
    """Std of the rounding noise of ``bits``-bit samples, ``step / sqrt(12)`` in [0, 1] units (0 when exact)."""
    return quantisation_feature(bits) / (255.0 * 12**0.5)


LUMA_NOISE_GAIN = math.sqrt(0.299**2 + 0.587**2 + 0.114**2)
"""Std of the BT.601 luminance of independent per-channel noise of std 1: 0.668. A colour source's noise is stated
per channel (what ``mmfuse degrade`` adds); the luminance the model fuses carries this share of it."""

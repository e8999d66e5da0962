"""Training data: clean aligned pairs from folders, the validation hold-out, random crops and their observations.

Every draw comes from the generators the caller passes (seeded by ``(seed, step)`` in the loop), in a fixed order,
so that a run is reproducible for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.degradation.synth import degrade_tensor
from mmfuse_cli.io import is_image_file, read_image, to_gray
from mmfuse_cli.pairing import pair_folders
from mmfuse_cli.sampling.observation import Observation, ObservationBatch
from mmfuse_cli.training.config import TASK_SPLITS, TrainConfig


@dataclass
class PairImages:
    """One clean aligned pair of a training set."""

    key: str
    a: np.ndarray  # float32 [0, 1] (H, W), luminance
    b: np.ndarray


def training_folders(cfg: TrainConfig) -> list[tuple[Path, Path]]:
    """The (a_dir, b_dir) folders a run trains on: ``cfg.folders`` if given, else the task's splits under ``data``."""
    if cfg.folders:
        return [(Path(a), Path(b)) for a, b in cfg.folders]
    root = Path(cfg.data)
    return [(root / a, root / b) for a, b in TASK_SPLITS[cfg.task]]


def load_pairs(
    folders: list[tuple[Path, Path]],
    min_size: int = 0,
    log: Callable[[str], None] = print,
    root: Path | None = None,
) -> list[PairImages]:
    """Every pair of aligned clean images in ``folders`` (paired by stem) as gray float32 arrays in [0, 1].

    Missing folders are skipped (a data root may lack a split). Pairs whose two images differ in size, or that are
    smaller than ``min_size`` on a side, are left out with one log line each. Keys are ``a_dir/stem`` with
    ``a_dir`` relative to ``root`` when it lies below it (the validation hold-out is chosen by sorted key).
    """
    pairs: list[PairImages] = []
    for a_dir, b_dir in folders:
        if not a_dir.is_dir() or not b_dir.is_dir():
            continue
        for pair in pair_folders(a_dir, b_dir).pairs:
            a = to_gray(read_image(pair.a).pixels)
            b = to_gray(read_image(pair.b).pixels)
            if a.shape != b.shape:
                log(
                    f"skipped {pair.a}: {a.shape[1]}x{a.shape[0]} but its partner {pair.b} is {b.shape[1]}x{b.shape[0]}"
                )
                continue
            if min(a.shape) < min_size:
                log(f"skipped {pair.a}: {a.shape[1]}x{a.shape[0]} is smaller than the {min_size}-pixel crop")
                continue
            label = a_dir.relative_to(root).as_posix() if root and a_dir.is_relative_to(root) else str(a_dir)
            pairs.append(PairImages(f"{label}/{pair.key}", a, b))
    if not pairs:
        shown = ", ".join(f"{a} + {b}" for a, b in folders)
        raise ValueError(f"no usable training pairs in {shown}")
    return pairs


def load_singles(
    folders: list[Path], min_size: int = 0, log: Callable[[str], None] = print
) -> list[np.ndarray]:
    """Every image in ``folders`` (single clean images, e.g. natural photographs) as gray float32 in [0, 1].

    Images smaller than ``min_size`` on a side are left out with one log line each; an empty result raises
    ``ValueError`` naming the folders.
    """
    images: list[np.ndarray] = []
    for folder in folders:
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if not is_image_file(path):
                continue
            pixels = to_gray(read_image(path).pixels)
            if min(pixels.shape) < min_size:
                log(
                    f"skipped {path}: {pixels.shape[1]}x{pixels.shape[0]} is smaller than the {min_size}-pixel crop"
                )
                continue
            images.append(pixels)
    if not images:
        raise ValueError(f"no usable images in {', '.join(str(f) for f in folders)}")
    return images


def split_pairs(pairs: list[PairImages], val_fraction: float) -> tuple[list[PairImages], list[PairImages]]:
    """Deterministic hold-out: every ``round(1 / val_fraction)``-th pair (sorted by key) goes to validation.

    A set too small to reach the first hold-out position still gives up its middle pair, so that validation is
    never empty; fewer than 2 pairs raise ``ValueError``.
    """
    ordered = sorted(pairs, key=lambda p: p.key)
    if len(ordered) < 2:
        raise ValueError(
            f"training needs at least 2 pairs (one is held out for validation), found {len(ordered)}"
        )
    every = max(2, round(1 / val_fraction))
    held = every // 2 if len(ordered) > every // 2 else len(ordered) // 2
    val = [p for i, p in enumerate(ordered) if i % every == held]
    train = [p for i, p in enumerate(ordered) if i % every != held]
    return train, val


class CropBatch(NamedTuple):
    """Training crops: clean sources ``a``, ``b`` (float32 in [0, 1], ``(n, 1, size, size)``) and ``from_single``
    (bool, ``(n,)``): True where the pair was made from single images, not cut from a fusion pair."""

    a: torch.Tensor
    b: torch.Tensor
    from_single: torch.Tensor


def random_crops(
    pairs: list[PairImages],
    n: int,
    size: int,
    rng: np.random.Generator,
    align: int = 1,
    zoom_fraction: float = 0.0,
    max_zoom: float = 2.0,
    singles: list[np.ndarray] | None = None,
    single_fraction: float = 0.0,
) -> CropBatch:
    """``n`` aligned random crops (with random flips): a :class:`CropBatch` of two ``(n, 1, size, size)`` tensors.

    ``align``: the crop's top-left corner lies on multiples of it. Images that were enlarged by pixel replication
    (the Harvard atlas's PET and SPECT are 128 x 128 scans stored as 2 x 2 blocks at 256 x 256) keep their block
    grid in every crop with ``align=2``, as they do in a whole file, so a model can learn that grid; with ``size``
    even, the flips keep it too. ``align=1`` draws exactly what the trainer drew before the option existed.

    ``zoom_fraction``: the share of crops cut from a smaller window that is enlarged by a random factor in
    ``[1.25, max_zoom]`` (bilinear or bicubic, both sources alike), so that the clean targets include
    band-limited images, as files that were resized before they reached the user are (docs/TRAINING.md,
    stage 8). Zoomed crops ignore ``align``. With 0 nothing extra is drawn from ``rng``.

    ``single_fraction``: the share of crops that are a pair made from ``singles`` (clean single images such as
    natural photographs, see :func:`single_image_pair`), so that the restoration learns textures no fusion
    dataset holds; ``from_single`` marks them. With 0 nothing extra is drawn from ``rng``.
    """
    a_out = np.empty((n, 1, size, size), np.float32)
    b_out = np.empty_like(a_out)
    from_single = np.zeros(n, bool)
    for i in range(n):
        if single_fraction > 0 and singles and rng.random() < single_fraction:
            a, b = single_image_pair(singles, size, rng)
            from_single[i] = True
        else:  # the pair first, then the zoom draw: the order every earlier run drew in
            a, b = _pair_crop(pairs[rng.integers(len(pairs))], size, rng, align, zoom_fraction, max_zoom)
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if rng.random() < 0.5:
            a, b = a[::-1], b[::-1]
        a_out[i, 0], b_out[i, 0] = a, b
    return CropBatch(torch.from_numpy(a_out), torch.from_numpy(b_out), torch.from_numpy(from_single))


def _pair_crop(
    p: PairImages, size: int, rng: np.random.Generator, align: int, zoom_fraction: float, max_zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    if zoom_fraction > 0 and rng.random() < zoom_fraction:
        return _zoomed_crop(p, size, rng, max_zoom)
    h, w = p.a.shape
    top = rng.integers((h - size) // align + 1) * align
    left = rng.integers((w - size) // align + 1) * align
    return p.a[top : top + size, left : left + size], p.b[top : top + size, left : left + size]


def single_image_pair(
    singles: list[np.ndarray], size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` training pair made from single clean images (float32 in [0, 1]).

    Source a is a random crop of one image. Source b is, at even odds, the same crop seen by another "sensor"
    (:func:`remap_intensity`: same edges, different intensities and contrast polarity, like a scene's IR and
    visible images) or a crop of another image (nothing shared, so each source must be restored on its own).
    """
    a = _random_window(singles[rng.integers(len(singles))], size, rng)
    if rng.random() < 0.5:
        return a, remap_intensity(a, rng)
    return a, _random_window(singles[rng.integers(len(singles))], size, rng)


def remap_intensity(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` (float32 in [0, 1]) through a random monotone tone curve (gamma 0.5-2), inverted at even odds,
    into a random sub-range ``[lo, hi]`` with ``lo`` in [0, 0.3] and ``hi`` in [0.7, 1]; float32 in [0, 1]."""
    gamma = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    y = np.power(np.clip(x, 0.0, 1.0), gamma)
    if rng.random() < 0.5:
        y = 1.0 - y
    lo, hi = rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)
    return (lo + (hi - lo) * y).astype(np.float32)


def _random_window(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape
    top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
    return image[top : top + size, left : left + size]


def _zoomed_crop(
    p: PairImages, size: int, rng: np.random.Generator, max_zoom: float
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` crop of ``p`` enlarged by a random factor in ``[1.25, max_zoom]`` (values in [0, 1])."""
    zoom = float(rng.uniform(1.25, max(1.25, max_zoom)))
    mode = "bicubic" if rng.random() < 0.5 else "bilinear"
    margin = 2  # source pixels kept on each side, so the interpolation never sees the window's edge
    window = math.ceil(size / zoom) + 2 * margin
    h, w = p.a.shape
    window = min(window, h, w)
    top, left = rng.integers(h - window + 1), rng.integers(w - window + 1)
    window_pair = torch.from_numpy(np.stack([p.a, p.b])[:, top : top + window, left : left + window])[None]
    big = F.interpolate(window_pair, scale_factor=zoom, mode=mode, align_corners=False)[0]
    offset = max(0, min(round(margin * zoom), (big.shape[-1] - size) // 2, (big.shape[-2] - size) // 2))
    out = big[:, offset : offset + size, offset : offset + size]
    if out.shape[-2:] != (size, size):  # an image too small for this zoom: enlarge the window to exactly size
        out = F.interpolate(window_pair, size=(size, size), mode=mode, align_corners=False)[0]
    pixels = out.clamp(0.0, 1.0).numpy()
    return pixels[0], pixels[1]


def observe(
    clean: torch.Tensor,
    degradations: list[Degradation],
    gen: torch.Generator,
    bits: int = 8,
    exact_fraction: float = 0.0,
) -> ObservationBatch:
    """Degrade each sample of ``clean`` ``(N, 1, H, W)`` with its own degradation and round it to ``bits``-bit
    samples (as a file would store it), except a random ``exact_fraction`` of them (and all when ``bits`` is 0),
    which keep exact values. Each observation records the bits it was rounded to (0 = exact)."""
    observations = []
    for i, d in enumerate(degradations):
        y = degrade_tensor(clean[i : i + 1], d, gen)
        exact = float(torch.rand(1, generator=gen)) < exact_fraction
        if bits and not exact:
            levels = 2**bits - 1
            y = torch.round(y * levels) / levels
            observations.append(Observation(y, replace(d, bits=bits)))
        else:
            observations.append(Observation(y, replace(d, bits=0)))
    return ObservationBatch(observations)


def observe_pair(
    a: torch.Tensor,
    b: torch.Tensor,
    da: list[Degradation],
    db: list[Degradation],
    gen: torch.Generator,
    cfg: TrainConfig,
) -> tuple[ObservationBatch, ObservationBatch]:
    """:func:`observe` both sources (clean ``(N, 1, H, W)`` in [0, 1]) with the run's rounding settings."""
    return (
        observe(a, da, gen, cfg.observation_bits, cfg.exact_fraction),
        observe(b, db, gen, cfg.observation_bits, cfg.exact_fraction),
    )

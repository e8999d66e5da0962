"""Training (library behind ``mmfuse train``): self-supervised end-to-end training of the unrolled sampler.

Clean aligned pairs are cropped at random, each source of each sample is degraded on the fly with its own
random operator (noise sigma 0-0.10, blur std 0-2.5, scale 1/2/4 and their composites), the T-step sampler
runs, and the loss of DESIGN.md is taken on its output:

* IVIF: ``S + 5 |f - max(x1c, x2c)| + 1 | |grad f| - max(|grad x1c|, |grad x2c|) |``
* MIF:  ``S + w_ssim [(1 - SSIM(f, x1c)) + (1 - SSIM(f, x2c))] + 5 |f - max(x1c, x2c)|`` (``w_ssim`` = 1, the authors')

with the source term ``S = 5 (|x1 - x1c| + |x2 - x2c|)`` (``src_loss="l1"``, the authors' weights; the default,
and the IVIF checkpoints' loss up to stage 5a) or ``S = 0.25 mean_i [log(|x1_i - x1c_i| + 1e-3) + log(|x2_i - x2c_i| + 1e-3)]``
per sample (``"log"``, which balances easy and hard draws; the MIF checkpoints of stages 3-5), or the same with the
per-sample RMSE in place of the L1 (``"logrmse"``: ``0.25 mean_i log(RMSE_i + 1e-3)``; for errors well above 1e-3 this
is -PSNR_i ln(10) / 20, i.e. it maximises the mean PSNR of the restored sources directly; the IVIF stage-5b and
MIF stage-6 and stage-7 checkpoints, see docs/TRAINING.md).

(``c`` = clean; Sobel gradients; L1 means.) Everything random is drawn from generators seeded by
``(seed, step)``, so a run is deterministic on CPU for a seed and resumes bit-exactly from its state file.
State (model + Adam moments + step) is saved as safetensors every ``checkpoint_every`` steps; nothing is
pickled. Source ``a`` is the IR / functional image (CT, PET, SPECT), ``b`` the visible image / MRI.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from mmfuse_cli.files import atomic_write_bytes
from mmfuse_cli.io import read_image, to_gray
from mmfuse_cli.model import (
    FiLMResBlock,
    FusionModel,
    ModelConfig,
    load_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
)
from mmfuse_cli.operators import Degradation, degrade_tensor
from mmfuse_cli.pairing import pair_folders
from mmfuse_cli.sampler import Observation, ObservationBatch, sample

# Training splits under a data root laid out as ../shared/data (see its README): (a_dir, b_dir) relative paths.
TASK_SPLITS: dict[str, list[tuple[str, str]]] = {
    "ivif": [
        ("tno/train/ir", "tno/train/vi"),
        ("llvip/train/ir", "llvip/train/vi"),
        ("drmf_ivif/train/ir", "drmf_ivif/train/vi"),
    ],
    "mif": [
        ("harvard/mri_ct/train/ct", "harvard/mri_ct/train/mri"),
        ("harvard/mri_pet/train/pet", "harvard/mri_pet/train/mri"),
        ("harvard/mri_spect/train/spect", "harvard/mri_spect/train/mri"),
        ("drmf_mif/train/ct", "drmf_mif/train/mri"),
    ],
}


@dataclass
class TrainConfig:
    """Options of a training run (recorded in the exported checkpoint)."""

    task: str = "ivif"
    data: str = "../shared/data"
    folders: list[list[str]] = field(default_factory=list)  # [[a_dir, b_dir], ...] instead of data's task splits
    out_dir: str = "runs/ivif"
    steps: int = 4000
    batch: int = 8
    crop: int = 96
    crop_align: int = 1  # crop offsets are multiples of this (2 keeps a 2x2 pixel-replication grid, see random_crops)
    zoom_fraction: float = 0.0  # share of crops enlarged x1.25..max_zoom before degrading (see random_crops)
    max_zoom: float = 2.0
    lr: float = 2e-4
    sampler_lr_scale: float = 20.0
    seed: int = 0
    # Architecture; None = as the run being resumed, else as the --init-from checkpoint, else ARCHITECTURE_DEFAULTS.
    sampler_steps: int | None = None
    base_channels: int | None = None
    levels: int | None = None
    blocks_per_level: int | None = None
    bottom_blocks: int | None = None  # extra residual blocks at the deepest level
    init_from: str | None = None  # checkpoint NAME or PATH to start from (fine-tune / grow); ignored on resume
    init_from_sha256: str | None = None  # set by train(): the exact file init_from named (names can be re-pointed)
    val_every: int = 200
    checkpoint_every: int = 100
    val_fraction: float = 0.1
    max_minutes: float | None = None
    pause_at: int | None = None  # stop after this step (state saved), as an interruption would; resume later
    threads: int | None = None
    max_noise: float = 0.10
    max_blur: float = 2.5
    kind_weights: dict = field(default_factory=dict)  # {kind: weight} over DEGRADATION_KINDS, missing = 1; {} = uniform
    w_src: float = 5.0
    src_loss: str = "l1"  # "l1": w_src * L1; "log": w_log * mean_i log(L1_i + 1e-3); "logrmse": the same with RMSE_i
    w_log: float = 0.25
    observation_bits: int = 8  # round synthetic observations to N-bit samples, like the files they stand for (0 = off)
    exact_fraction: float = 0.25  # share of observations left unrounded (they stand for 16-bit or float inputs)
    quantisation_aware: bool | None = None  # model sees each input's bit depth; None = as the resumed run, else on
    exact_final_fusion: bool | None = None  # last step enforces f = m x1 + (1-m) x2; None = as resumed/init-from, else off
    w_int: float = 5.0
    w_grad: float = 1.0
    w_ssim: float = 1.0  # MIF: weight of the fused image's structure term (1 - SSIM(f, a)) + (1 - SSIM(f, b))
    extra: dict = field(default_factory=dict)


ARCHITECTURE_DEFAULTS = {"base_channels": 16, "levels": 4, "blocks_per_level": 1, "bottom_blocks": 0, "sampler_steps": 3}


def fill_architecture(cfg: TrainConfig, known: ModelConfig | None) -> ModelConfig:
    """Complete ``cfg``'s unset architecture fields (in place) from ``known`` or the defaults; the model's config.

    ``known`` is the architecture of the run being resumed or of the ``init_from`` checkpoint, so that fine-tuning
    or resuming needs no architecture flags, while an explicit value (e.g. more ``blocks_per_level``) wins.
    """
    for name, default in ARCHITECTURE_DEFAULTS.items():
        if getattr(cfg, name) is None:
            from_known = getattr(known, "steps" if name == "sampler_steps" else name) if known else None
            setattr(cfg, name, from_known if from_known is not None else default)
    if cfg.quantisation_aware is None:
        cfg.quantisation_aware = True
    if cfg.exact_final_fusion is None:
        cfg.exact_final_fusion = known.exact_final_fusion if known else False
    return ModelConfig(
        cfg.base_channels,
        cfg.levels,
        cfg.blocks_per_level,
        cfg.sampler_steps,
        cfg.task,
        cfg.quantisation_aware,
        cfg.exact_final_fusion,
        cfg.bottom_blocks,
    )


# --- data ---------------------------------------------------------------------------------------------------


@dataclass
class PairImages:
    key: str
    a: np.ndarray  # float32 [0, 1] (H, W), luminance
    b: np.ndarray


def training_folders(cfg: TrainConfig) -> list[tuple[Path, Path]]:
    """The (a_dir, b_dir) folders a run trains on: ``cfg.folders`` if given, else the task's splits under ``data``."""
    if cfg.folders:
        return [(Path(a), Path(b)) for a, b in cfg.folders]
    if cfg.task not in TASK_SPLITS:
        raise ValueError(f"unknown task {cfg.task!r} (expected one of {', '.join(TASK_SPLITS)})")
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
                log(f"skipped {pair.a}: {a.shape[1]}x{a.shape[0]} but its partner {pair.b} is {b.shape[1]}x{b.shape[0]}")
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


def split_pairs(pairs: list[PairImages], val_fraction: float) -> tuple[list[PairImages], list[PairImages]]:
    """Deterministic hold-out: every ``round(1 / val_fraction)``-th pair (sorted by key) goes to validation.

    A set too small to reach the first hold-out position still gives up its middle pair, so that validation is
    never empty; fewer than 2 pairs raise ``ValueError``.
    """
    ordered = sorted(pairs, key=lambda p: p.key)
    if len(ordered) < 2:
        raise ValueError(f"training needs at least 2 pairs (one is held out for validation), found {len(ordered)}")
    every = max(2, round(1 / val_fraction))
    held = every // 2 if len(ordered) > every // 2 else len(ordered) // 2
    val = [p for i, p in enumerate(ordered) if i % every == held]
    train = [p for i, p in enumerate(ordered) if i % every != held]
    return train, val


def random_crops(
    pairs: list[PairImages],
    n: int,
    size: int,
    rng: np.random.Generator,
    align: int = 1,
    zoom_fraction: float = 0.0,
    max_zoom: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` aligned random crops (with random flips) -> two ``(n, 1, size, size)`` tensors.

    ``align``: the crop's top-left corner lies on multiples of it. Images that were enlarged by pixel replication
    (the Harvard atlas's PET and SPECT are 128 x 128 scans stored as 2 x 2 blocks at 256 x 256) keep their block
    grid in every crop with ``align=2``, as they do in a whole file, so a model can learn that grid; with ``size``
    even, the flips keep it too. ``align=1`` draws exactly what the trainer drew before the option existed.

    ``zoom_fraction``: the share of crops cut from a smaller window that is enlarged by a random factor in
    ``[1.25, max_zoom]`` (bilinear or bicubic, both sources alike), so that the clean targets include
    band-limited images, as files that were resized before they reached the user are (docs/TRAINING.md,
    History 18). Zoomed crops ignore ``align``. With 0 nothing extra is drawn from ``rng``.
    """
    a_out = np.empty((n, 1, size, size), np.float32)
    b_out = np.empty_like(a_out)
    for i in range(n):
        p = pairs[rng.integers(len(pairs))]
        if zoom_fraction > 0 and rng.random() < zoom_fraction:
            a, b = _zoomed_crop(p, size, rng, max_zoom)
        else:
            h, w = p.a.shape
            top = rng.integers((h - size) // align + 1) * align
            left = rng.integers((w - size) // align + 1) * align
            a = p.a[top : top + size, left : left + size]
            b = p.b[top : top + size, left : left + size]
        if rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        if rng.random() < 0.5:
            a, b = a[::-1], b[::-1]
        a_out[i, 0], b_out[i, 0] = a, b
    return torch.from_numpy(a_out), torch.from_numpy(b_out)


def _zoomed_crop(p: PairImages, size: int, rng: np.random.Generator, max_zoom: float) -> tuple[np.ndarray, np.ndarray]:
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
    out = out.clamp(0.0, 1.0).numpy()
    return out[0], out[1]


SOURCE_LOSSES = ("l1", "log", "logrmse")  # TrainConfig.src_loss, see fusion_loss

DEGRADATION_KINDS = ("clean", "noise", "blur", "down", "blur+noise", "down+noise", "blur+down", "blur+down+noise")


def random_degradation(
    rng: np.random.Generator, max_noise: float = 0.1, max_blur: float = 2.5, kind_p: np.ndarray | None = None
) -> Degradation:
    """A random degradation: its kind drawn from :data:`DEGRADATION_KINDS` (uniformly, or with the probabilities
    ``kind_p`` from :func:`kind_probabilities`), its parameters uniform in their ranges."""
    if kind_p is not None:
        kind = DEGRADATION_KINDS[rng.choice(len(DEGRADATION_KINDS), p=kind_p)]
    else:  # the draw every run before kind weights existed made: keeps those runs reproducible
        kind = DEGRADATION_KINDS[rng.integers(len(DEGRADATION_KINDS))]
    blur = float(rng.uniform(0.5, max_blur)) if "blur" in kind else 0.0
    scale = int(rng.choice([2, 4])) if "down" in kind else 1
    noise = float(rng.uniform(0.01, max_noise)) if "noise" in kind else 0.0
    return Degradation(blur=round(blur, 3), scale=scale, noise=round(noise, 4))


def parse_kind_weights(items: list[str]) -> dict[str, float]:
    """``["blur=3", "blur+noise=2"]`` -> ``{"blur": 3.0, "blur+noise": 2.0}``, checked by :func:`kind_probabilities`."""
    weights: dict[str, float] = {}
    for item in items:
        kind, _, value = item.partition("=")
        try:
            weights[kind.strip()] = float(value)
        except ValueError:
            raise ValueError(f"expected KIND=WEIGHT (e.g. blur=3), got {item!r}") from None
    if weights:
        kind_probabilities(weights)
    return weights


def kind_probabilities(kind_weights: dict) -> np.ndarray:
    """Probability of each kind in :data:`DEGRADATION_KINDS` under ``kind_weights`` (missing kinds weigh 1).

    Raises ValueError for an unknown kind, a negative weight or weights that sum to zero."""
    unknown = sorted(set(kind_weights) - set(DEGRADATION_KINDS))
    if unknown:
        raise ValueError(f"unknown degradation kind {unknown[0]!r}; kinds: {', '.join(DEGRADATION_KINDS)}")
    weights = np.array([float(kind_weights.get(kind, 1.0)) for kind in DEGRADATION_KINDS])
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"kind weights must be finite, >= 0 and not all 0, got {kind_weights}")
    return weights / weights.sum()


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
            observations.append(Observation(y, d, bits))
        else:
            observations.append(Observation(y, d))
    return ObservationBatch(observations)


# --- losses -------------------------------------------------------------------------------------------------

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:
    """|grad x| with Sobel filters (replicate borders), ``(N, 1, H, W)`` -> same shape."""
    kx = _SOBEL_X.to(x)[None, None]
    ky = kx.transpose(-1, -2)
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return torch.sqrt(F.conv2d(xp, kx) ** 2 + F.conv2d(xp, ky) ** 2 + 1e-8)


def ssim_torch(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Gaussian window, data range 1) of two ``(N, 1, H, W)`` batches; differentiable."""
    t = torch.arange(window, dtype=x.dtype, device=x.device) - window // 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum())[:, None] * (g / g.sum())[None, :]
    k = g[None, None]
    mu_x, mu_y = F.conv2d(x, k), F.conv2d(y, k)
    sxx = F.conv2d(x * x, k) - mu_x**2
    syy = F.conv2d(y * y, k) - mu_y**2
    sxy = F.conv2d(x * y, k) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean()


def fusion_loss(out, a_clean: torch.Tensor, b_clean: torch.Tensor, task: str, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """DESIGN.md losses on the sampler output against the clean sources; returns components and ``total``."""
    l1_a = (out.x1 - a_clean).abs().mean(dim=(1, 2, 3))  # per sample
    l1_b = (out.x2 - b_clean).abs().mean(dim=(1, 2, 3))
    src = l1_a.mean() + l1_b.mean()  # reported as loss_src whatever the source term
    intensity = (out.f - torch.maximum(a_clean, b_clean)).abs().mean()
    terms = {"src": src, "int": intensity}
    if cfg.src_loss in ("log", "logrmse"):
        # Per-sample log error: every sample's restoration counts by its relative (dB-like) error, so the easy
        # draws (clean, mild blur) are not drowned by the hard ones (x4 + noise 0.1) and must not get worse.
        err_a, err_b = l1_a, l1_b
        if cfg.src_loss == "logrmse":  # RMSE, what PSNR measures (+1e-12: a finite gradient at zero error)
            err_a = ((out.x1 - a_clean) ** 2).mean(dim=(1, 2, 3)).add(1e-12).sqrt()
            err_b = ((out.x2 - b_clean) ** 2).mean(dim=(1, 2, 3)).add(1e-12).sqrt()
        src_term = cfg.w_log * (torch.log(err_a + 1e-3) + torch.log(err_b + 1e-3)).mean()
    else:
        src_term = cfg.w_src * src
    total = src_term + cfg.w_int * intensity
    if task == "ivif":
        grad_target = torch.maximum(sobel_magnitude(a_clean), sobel_magnitude(b_clean))
        grad = (sobel_magnitude(out.f) - grad_target).abs().mean()
        terms["grad"] = grad
        total = total + cfg.w_grad * grad
    else:
        structure = (1 - ssim_torch(out.f, a_clean)) + (1 - ssim_torch(out.f, b_clean))
        terms["ssim"] = structure
        total = total + cfg.w_ssim * structure
    terms["total"] = total
    return terms


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of ``x`` against ``ref`` (both [0, 1]; ``x`` clipped first)."""
    mse = float(((x.clamp(0, 1) - ref) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


# --- the loop -------------------------------------------------------------------------------------------------


def _step_rng(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    return np.random.default_rng([seed, step]), torch.Generator().manual_seed(seed * 1_000_003 + step)


def make_validation_set(val_pairs: list[PairImages], cfg: TrainConfig, count: int = 16):
    """A fixed validation batch: crops + degradations drawn from a generator seeded independently of training."""
    rng, gen = _step_rng(cfg.seed + 7919, 0)
    smallest = min(min(p.a.shape) for p in val_pairs)
    size = min(max(cfg.crop, 128), smallest) // 8 * 8
    a, b = random_crops(val_pairs, count, size, rng, align=cfg.crop_align)  # never zoomed: curves stay comparable
    da = [random_degradation(rng, cfg.max_noise, cfg.max_blur) for _ in range(count)]
    db = [random_degradation(rng, cfg.max_noise, cfg.max_blur) for _ in range(count)]
    return (a, b, *observe_pair(a, b, da, db, gen, cfg))


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


@torch.no_grad()
def validate(model: FusionModel, val, cfg: TrainConfig) -> dict[str, float]:
    """PSNR of restored sources (and of their pseudo-inverse start) on the fixed validation batch."""
    a, b, oa, ob = val
    model.eval()
    out = sample(model.net, oa, ob, model.sampler)
    model.train()
    losses = fusion_loss(out, a, b, cfg.task, cfg)
    return {
        "val_loss": float(losses["total"]),
        "val_psnr_a": psnr(out.x1, a),
        "val_psnr_b": psnr(out.x2, b),
        "val_psnr_a_pinv": psnr(oa.pinv_y(), a),
        "val_psnr_b_pinv": psnr(ob.pinv_y(), b),
    }


def _save_state(path: Path, model: FusionModel, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    tensors[f"adam.{names[id(p)]}.{key}"] = st[key].contiguous()
            if "step" in st:
                tensors[f"adam.{names[id(p)]}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    meta = {"step": str(step), "config": json.dumps(asdict(cfg))}
    atomic_write_bytes(path, save_bytes(tensors, metadata=meta))


def _stored_config(path: Path) -> dict:
    """The TrainConfig (as a dict) saved with a run's state (header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["config"])


def _stored_architecture(stored: dict, task: str) -> ModelConfig:
    """The model architecture recorded in a run's stored TrainConfig (runs from before quantisation awareness
    are not quantisation-aware)."""
    return ModelConfig(
        stored["base_channels"],
        stored["levels"],
        stored["blocks_per_level"],
        stored["sampler_steps"],
        task,
        bool(stored.get("quantisation_aware", False)),
        bool(stored.get("exact_final_fusion", False)),
        int(stored.get("bottom_blocks") or 0),
    )


def _model_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's tensors out of a state file's tensors (``model.*``, prefix removed)."""
    return {k[6:]: v for k, v in state.items() if k.startswith("model.")}


def model_from_state(path: Path) -> FusionModel:
    """The model of a training run's ``state.safetensors`` as it stood at its last save, in eval mode (to score a
    run in progress without exporting it)."""
    stored = _stored_config(path)
    model = FusionModel(_stored_architecture(stored, stored["task"]))
    model.load_state_dict(_model_tensors(load_file(str(path))))
    return model.eval()


def _load_state(path: Path, model: FusionModel, opt: torch.optim.Optimizer) -> int:
    """Restore model and Adam moments; returns the step."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        step = int(handle.metadata()["step"])
    tensors = load_file(str(path))
    model.load_state_dict(_model_tensors(tensors))
    for name, p in model.named_parameters():
        if f"adam.{name}.exp_avg" in tensors:
            opt.state[p] = {
                "step": tensors[f"adam.{name}.step"][0].clone(),
                "exp_avg": tensors[f"adam.{name}.exp_avg"].clone(),
                "exp_avg_sq": tensors[f"adam.{name}.exp_avg_sq"].clone(),
            }
    return step


def initialise_from(model: FusionModel, checkpoint: Path) -> tuple[int, int]:
    """Copy a trained checkpoint into ``model`` (same task, same or larger architecture), keeping its function.

    Every tensor whose name and shape match is copied. Residual blocks the checkpoint does not have (a model grown
    with more ``blocks_per_level``) get a zero second convolution, so they start as the identity and the grown
    model computes exactly what the checkpoint computes; training then gives them something to do. A checkpoint
    that is not quantisation-aware can start one that is: the new conditioning inputs get zero weights and the
    new damping terms start at zero, so again nothing changes until training.

    Returns:
        (tensors copied, tensors left new).

    Raises:
        ValueError: other task, or a checkpoint tensor that has no place in ``model`` (a smaller architecture).
    """
    source = load_checkpoint(checkpoint)
    if source.config.task != model.config.task:
        raise ValueError(f"{checkpoint}: a {source.config.task} checkpoint cannot start a {model.config.task} run")
    target = model.state_dict()
    copied = {}
    for name, tensor in source.state_dict().items():
        if name == "net.cond_mlp.0.weight" and name in target and _widens(tensor, target[name]):
            widened = torch.zeros_like(target[name])
            widened[:, : tensor.shape[1]] = tensor
            tensor = widened
        if name not in target or target[name].shape != tensor.shape:
            raise ValueError(f"{checkpoint}: tensor {name} {tuple(tensor.shape)} does not fit the new model")
        copied[name] = tensor
    model.load_state_dict(copied, strict=False)
    for block_name, block in model.named_modules():
        if isinstance(block, FiLMResBlock) and f"{block_name}.conv2.weight" not in copied:
            torch.nn.init.zeros_(block.conv2.weight)
            torch.nn.init.zeros_(block.conv2.bias)
    return len(copied), len(target) - len(copied)


def _widens(old: torch.Tensor, new: torch.Tensor) -> bool:
    """``new`` is ``old`` with more input columns (a conditioning vector that gained entries at its end)."""
    return old.dim() == new.dim() == 2 and old.shape[0] == new.shape[0] and old.shape[1] < new.shape[1]


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Short linear warm-up, then multi-step decay (x0.5 at 60 % and 85 % of the run)."""
    warm = min(1.0, (step + 1) / 100)
    decay = 1.0
    if step >= 0.6 * cfg.steps:
        decay *= 0.5
    if step >= 0.85 * cfg.steps:
        decay *= 0.5
    return cfg.lr * warm * decay


def train(cfg: TrainConfig, log: Callable[[str], None] = print) -> FusionModel:
    """Train (or resume) a model; writes ``state.safetensors``, ``log.jsonl`` and ``model.safetensors`` in out_dir.

    Returns:
        The trained model (also exported to ``out_dir/model.safetensors``).
    """
    if cfg.src_loss not in SOURCE_LOSSES:
        raise ValueError(f"src_loss must be one of {', '.join(SOURCE_LOSSES)}, got {cfg.src_loss!r}")
    # computed once for every draw; a bad weight fails here, before minutes of data loading
    kind_p = kind_probabilities(cfg.kind_weights) if cfg.kind_weights else None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = training_folders(cfg)
    pairs = load_pairs(folders, cfg.crop, log, root=Path(cfg.data))
    train_pairs, val_pairs = split_pairs(pairs, cfg.val_fraction)
    log(f"task {cfg.task}: {len(train_pairs)} training pairs, {len(val_pairs)} validation pairs")
    state_path, log_path = out_dir / "state.safetensors", out_dir / "log.jsonl"
    resuming, source = state_path.exists(), None
    if resuming:
        stored = _stored_config(state_path)
        known = _stored_architecture(stored, cfg.task)
        if cfg.init_from_sha256 is None:
            cfg.init_from_sha256 = stored.get("init_from_sha256")
        if cfg.quantisation_aware is None:
            cfg.quantisation_aware = known.quantisation_aware
    elif cfg.init_from:
        from mmfuse_cli.weights import resolve_checkpoint, sha256_file

        source = resolve_checkpoint(cfg.init_from, task=cfg.task, progress=False)
        known = ModelConfig.from_json(read_checkpoint_metadata(source)["config"])
        cfg.init_from_sha256 = sha256_file(source)
    else:
        known = None
    model = FusionModel(fill_architecture(cfg, known))
    # The sampler's few scalars (schedule, damping) get a larger step than the network's weights: at the
    # network's rate they would barely move in a CPU-sized run.
    opt = torch.optim.Adam(
        [
            {"params": list(model.net.parameters()), "lr_scale": 1.0},
            {"params": list(model.sampler.parameters()), "lr_scale": cfg.sampler_lr_scale},
        ],
        lr=cfg.lr,
    )
    step = 0
    if resuming:
        step = _load_state(state_path, model, opt)
        log(f"resumed from {state_path} at step {step}")
    else:
        if log_path.exists():
            log_path.unlink()
        if source is not None:
            copied, new = initialise_from(model, source)
            grown = f", {new} new (identity residual blocks / zero quantisation terms: no change yet)" if new else ""
            log(f"initialised from {source}: {copied} tensors copied{grown}")
    val = make_validation_set(val_pairs, cfg)
    if source is not None and not resuming:
        # Where the starting checkpoint stands on this run's validation batch: the curve's step 0.
        record = {"step": 0, "seconds": 0.0, **{k: round(v, 3) for k, v in validate(model, val, cfg).items()}}
        with log_path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        log(json.dumps(record))
    started = time.time()
    elapsed_before = _elapsed_in_log(log_path)
    model.train()
    running: dict[str, float] = {}
    while step < cfg.steps:
        if cfg.pause_at is not None and step >= cfg.pause_at:
            _save_state(state_path, model, opt, step, cfg)
            log(f"paused at step {step}")
            return model
        if cfg.max_minutes is not None and (time.time() - started) / 60 > cfg.max_minutes:
            log(f"time budget of {cfg.max_minutes} min reached at step {step}")
            break
        rng, gen = _step_rng(cfg.seed, step)
        a, b = random_crops(
            train_pairs, cfg.batch, cfg.crop, rng,
            align=cfg.crop_align, zoom_fraction=cfg.zoom_fraction, max_zoom=cfg.max_zoom,
        )
        da = [random_degradation(rng, cfg.max_noise, cfg.max_blur, kind_p) for _ in range(cfg.batch)]
        db = [random_degradation(rng, cfg.max_noise, cfg.max_blur, kind_p) for _ in range(cfg.batch)]
        oa, ob = observe_pair(a, b, da, db, gen, cfg)
        out = sample(model.net, oa, ob, model.sampler)
        losses = fusion_loss(out, a, b, cfg.task, cfg)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step) * group["lr_scale"]
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        for key, value in losses.items():
            running[key] = running.get(key, 0.0) + value.item()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            record = {"step": step, "seconds": round(elapsed_before + time.time() - started, 1)}
            record.update({f"loss_{k}": round(v / cfg.checkpoint_every, 5) for k, v in running.items()})
            running = {}
            if step % cfg.val_every == 0 or step == cfg.steps:
                record.update({k: round(v, 3) for k, v in validate(model, val, cfg).items()})
            with log_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            _save_state(state_path, model, opt, step, cfg)
            log(json.dumps(record))
    export_path = out_dir / "model.safetensors"
    final = _last_record(log_path)
    save_checkpoint(
        model,
        export_path,
        {
            "train_config": asdict(cfg),
            "data": [f"{a}|{b}" for a, b in folders],
            "train_pairs": len(train_pairs),
            "steps_trained": step,
            "seed": cfg.seed,
            "final": final,
            "wall_seconds": round(elapsed_before + time.time() - started, 1),
        },
    )
    log(f"exported {export_path}")
    return model


def _last_record(log_path: Path) -> dict:
    if not log_path.exists():
        return {}
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def _elapsed_in_log(log_path: Path) -> float:
    return float(_last_record(log_path).get("seconds", 0.0))

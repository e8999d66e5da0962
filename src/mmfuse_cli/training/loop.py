"""The training loop behind ``mmfuse train``: set up (fresh, resumed or from a checkpoint), step, validate, export.

Everything random in a step is drawn from generators seeded by ``(seed, step)`` (:func:`_step_rng`), so a run is
deterministic on CPU for a seed and resumes bit-exactly from its state file.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mmfuse_cli.degradation.draws import kind_probabilities, random_degradation
from mmfuse_cli.files import atomic_write_bytes
from mmfuse_cli.model.checkpoint import read_checkpoint_metadata, save_checkpoint
from mmfuse_cli.model.network import FusionModel, ModelConfig
from mmfuse_cli.sampling.sampler import sample
from mmfuse_cli.training.config import TrainConfig, fill_architecture
from mmfuse_cli.training.data import (
    PairImages,
    load_pairs,
    load_singles,
    observe_pair,
    random_crops,
    split_pairs,
    training_folders,
)
from mmfuse_cli.training.losses import fusion_loss, psnr
from mmfuse_cli.training.state import (
    MOMENT_DTYPE,
    initialise_from,
    load_state,
    save_state,
    stored_architecture,
    stored_config,
)


def _step_rng(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    return np.random.default_rng([seed, step]), torch.Generator().manual_seed(seed * 1_000_003 + step)


def make_validation_set(val_pairs: list[PairImages], cfg: TrainConfig, count: int = 16):
    """A fixed validation batch: crops + degradations drawn from a generator seeded independently of training."""
    rng, gen = _step_rng(cfg.seed + 7919, 0)
    smallest = min(min(p.a.shape) for p in val_pairs)
    size = min(max(cfg.crop, 128), smallest) // 8 * 8
    a, b, _ = random_crops(
        val_pairs, count, size, rng, align=cfg.crop_align
    )  # never zoomed: curves comparable
    da = [random_degradation(rng, cfg.max_noise, cfg.max_blur) for _ in range(count)]
    db = [random_degradation(rng, cfg.max_noise, cfg.max_blur) for _ in range(count)]
    return (a, b, *observe_pair(a, b, da, db, gen, cfg))


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
    # computed once for every draw; a bad weight fails here, before minutes of data loading
    kind_p = kind_probabilities(cfg.kind_weights) if cfg.kind_weights else None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = training_folders(cfg)
    train_pairs, val_pairs = _training_set(folders, cfg, log)
    singles = _single_images(cfg, log)
    state_path, log_path = out_dir / "state.safetensors", out_dir / "log.jsonl"
    portable = Path(cfg.portable_dir) if cfg.portable_dir else None
    if portable is not None and not state_path.exists() and (portable / "state.safetensors").exists():
        state_path = portable / "state.safetensors"  # a fresh checkout: resume from the kept state
        shutil.copyfile(portable / "log.jsonl", log_path)
        log(f"resuming from the portable state in {portable}")
    resuming = state_path.exists()
    known, source = _starting_point(cfg, state_path, resuming)
    model = FusionModel(fill_architecture(cfg, known))
    opt = _optimizer(model, cfg)
    step = _restore_or_initialise(model, opt, state_path, log_path, resuming, source, log)
    val = make_validation_set(val_pairs, cfg)
    if source is not None:  # (never when resuming)
        # Where the starting checkpoint stands on this run's validation batch: the curve's step 0.
        record = {"step": 0, "seconds": 0.0, **{k: round(v, 3) for k, v in validate(model, val, cfg).items()}}
        _append_record(log_path, record)
        log(json.dumps(record))
    started = time.time()
    elapsed_before = _elapsed_in_log(log_path)
    model.train()
    running: dict[str, float] = {}
    while step < cfg.steps:
        if cfg.pause_at is not None and step >= cfg.pause_at:
            save_state(out_dir / "state.safetensors", model, opt, step, cfg)
            log(f"paused at step {step}")
            return model
        if cfg.max_minutes is not None and (time.time() - started) / 60 > cfg.max_minutes:
            log(f"time budget of {cfg.max_minutes} min reached at step {step}")
            break
        losses = _train_step(model, opt, train_pairs, singles, cfg, step, kind_p)
        step += 1
        for key, value in losses.items():
            running[key] = running.get(key, 0.0) + value.item()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            record = {"step": step, "seconds": round(elapsed_before + time.time() - started, 1)}
            record.update({f"loss_{k}": round(v / cfg.checkpoint_every, 5) for k, v in running.items()})
            running = {}
            if step % cfg.val_every == 0 or step == cfg.steps:
                record.update({k: round(v, 3) for k, v in validate(model, val, cfg).items()})
            _append_record(log_path, record)
            state_path = out_dir / "state.safetensors"
            save_state(state_path, model, opt, step, cfg)
            if portable is not None:
                _save_portable(portable, model, opt, step, cfg, log_path)
            log(json.dumps(record))
    export_path = out_dir / "model.safetensors"
    _export(model, export_path, log_path, cfg, folders, len(train_pairs), step, elapsed_before, started)
    log(f"exported {export_path}")
    return model


# --- train()'s parts, in the order it calls them ---------------------------------------------------------------


def _training_set(
    folders: list[tuple[Path, Path]], cfg: TrainConfig, log: Callable[[str], None]
) -> tuple[list[PairImages], list[PairImages]]:
    """The run's training and validation pairs (loaded from ``folders``, split by key), with one log line."""
    pairs = load_pairs(folders, cfg.crop, log, root=Path(cfg.data))
    train_pairs, val_pairs = split_pairs(pairs, cfg.val_fraction)
    log(f"task {cfg.task}: {len(train_pairs)} training pairs, {len(val_pairs)} validation pairs")
    return train_pairs, val_pairs


def _single_images(cfg: TrainConfig, log: Callable[[str], None]) -> list[np.ndarray]:
    """The run's single clean images (none unless ``single_fraction`` > 0), with one log line."""
    if cfg.single_fraction <= 0:
        return []
    singles = load_singles([Path(folder) for folder in cfg.singles], cfg.crop, log)
    log(
        f"{len(singles)} single images, {cfg.single_fraction:.0%} of the crops, "
        f"fused-image terms x{cfg.single_fusion_weight:g}"
    )
    return singles


def _starting_point(
    cfg: TrainConfig, state_path: Path, resuming: bool
) -> tuple[ModelConfig | None, Path | None]:
    """The architecture the run starts from (None: none known) and the checkpoint to initialise from, if any.

    Resuming takes the architecture (and unset ``init_from_sha256`` / ``quantisation_aware``) from the state file
    and ignores ``init_from``; a fresh run with ``init_from`` resolves it and records the file's sha256 in ``cfg``.
    """
    if resuming:
        stored = stored_config(state_path)
        known = stored_architecture(stored, cfg.task)
        if cfg.init_from_sha256 is None:
            cfg.init_from_sha256 = stored.get("init_from_sha256")
        if cfg.quantisation_aware is None:
            cfg.quantisation_aware = known.quantisation_aware
        return known, None
    if cfg.init_from:
        from mmfuse_cli.weights.resolve import resolve_checkpoint, sha256_file

        source = resolve_checkpoint(cfg.init_from, task=cfg.task, progress=False)
        known = ModelConfig.from_json(read_checkpoint_metadata(source)["config"])
        cfg.init_from_sha256 = sha256_file(source)
        return known, source
    return None, None


def _optimizer(model: FusionModel, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over the network's weights and, at ``sampler_lr_scale`` times the rate, the sampler's scalars."""
    # The sampler's few scalars (schedule, damping) get a larger step than the network's weights: at the
    # network's rate they would barely move in a CPU-sized run.
    return torch.optim.Adam(
        [
            {"params": list(model.net.parameters()), "lr_scale": 1.0},
            {"params": list(model.sampler.parameters()), "lr_scale": cfg.sampler_lr_scale},
        ],
        lr=cfg.lr,
    )


def _restore_or_initialise(
    model: FusionModel,
    opt: torch.optim.Optimizer,
    state_path: Path,
    log_path: Path,
    resuming: bool,
    source: Path | None,
    log: Callable[[str], None],
) -> int:
    """Load the saved state (resuming), else clear an old log and copy ``source`` in (if any); the first step."""
    if resuming:
        step = load_state(state_path, model, opt)
        log(f"resumed from {state_path} at step {step}")
        return step
    if log_path.exists():
        log_path.unlink()
    if source is not None:
        copied, new = initialise_from(model, source)
        grown = (
            f", {new} new (identity residual blocks / zero quantisation terms: no change yet)" if new else ""
        )
        log(f"initialised from {source}: {copied} tensors copied{grown}")
    return 0


def _train_step(
    model: FusionModel,
    opt: torch.optim.Optimizer,
    train_pairs: list[PairImages],
    singles: list[np.ndarray],
    cfg: TrainConfig,
    step: int,
    kind_p: np.ndarray | None,
) -> dict[str, torch.Tensor]:
    """One optimizer step on a batch drawn for ``step``: crops, degradations, observations; returns the losses."""
    rng, gen = _step_rng(cfg.seed, step)
    a, b, from_single = random_crops(
        train_pairs,
        cfg.batch,
        cfg.crop,
        rng,
        align=cfg.crop_align,
        zoom_fraction=cfg.zoom_fraction,
        max_zoom=cfg.max_zoom,
        singles=singles,
        single_fraction=cfg.single_fraction,
    )
    da = [random_degradation(rng, cfg.max_noise, cfg.max_blur, kind_p) for _ in range(cfg.batch)]
    db = [random_degradation(rng, cfg.max_noise, cfg.max_blur, kind_p) for _ in range(cfg.batch)]
    oa, ob = observe_pair(a, b, da, db, gen, cfg)
    out = sample(model.net, oa, ob, model.sampler)
    fusion_weight = None
    if cfg.single_fusion_weight != 1.0:
        fusion_weight = torch.where(from_single, cfg.single_fusion_weight, 1.0)
    losses = fusion_loss(out, a, b, cfg.task, cfg, fusion_weight)
    for group in opt.param_groups:
        group["lr"] = learning_rate(cfg, step) * group["lr_scale"]
    opt.zero_grad(set_to_none=True)
    losses["total"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return losses


def _export(
    model: FusionModel,
    export_path: Path,
    log_path: Path,
    cfg: TrainConfig,
    folders: list[tuple[Path, Path]],
    train_pairs: int,
    steps_trained: int,
    elapsed_before: float,
    started: float,
) -> None:
    """Save the trained model as a checkpoint with the run's record (config, data, steps, last log line, time)."""
    final = _last_record(log_path)
    save_checkpoint(
        model,
        export_path,
        {
            "train_config": asdict(cfg),
            "data": [f"{a}|{b}" for a, b in folders] + [f"{s}|single" for s in cfg.singles],
            "train_pairs": train_pairs,
            "steps_trained": steps_trained,
            "seed": cfg.seed,
            "final": final,
            "wall_seconds": round(elapsed_before + time.time() - started, 1),
        },
    )


def _save_portable(
    folder: Path, model: FusionModel, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig, log_path: Path
) -> None:
    """The run's compact state (16-bit moments) and its log in ``folder``: what a fresh checkout resumes from."""
    folder.mkdir(parents=True, exist_ok=True)
    save_state(folder / "state.safetensors", model, opt, step, cfg, moment_dtype=MOMENT_DTYPE)
    atomic_write_bytes(folder / "log.jsonl", log_path.read_bytes())


# --- log.jsonl ------------------------------------------------------------------------------------------------


def _append_record(log_path: Path, record: dict) -> None:
    with log_path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _last_record(log_path: Path) -> dict:
    if not log_path.exists():
        return {}
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}


def _elapsed_in_log(log_path: Path) -> float:
    return float(_last_record(log_path).get("seconds", 0.0))

"""A training run's state file (``state.safetensors``: model + Adam moments + step, nothing pickled), and
starting a model from a trained checkpoint (fine-tuning, or growing an architecture without changing its function).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes

from mmfuse_cli.files import atomic_write_bytes
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.model.network import FiLMResBlock, FusionModel, ModelConfig
from mmfuse_cli.tasks import Task
from mmfuse_cli.training.config import TrainConfig, architecture_config

MOMENT_DTYPE = torch.bfloat16
"""How a portable state stores Adam's moments: 16 bits, with float32's exponent range (float16 would flush the
second moments of rarely-updated weights, often below 1e-8, to zero, and Adam would then divide by ``eps``)."""


def save_state(
    path: Path,
    model: FusionModel,
    opt: torch.optim.Optimizer,
    step: int,
    cfg: TrainConfig,
    moment_dtype: torch.dtype | None = None,
) -> None:
    """Write a run's state (model, Adam moments and step as tensors; ``step`` and ``cfg`` as metadata) atomically.

    ``moment_dtype`` (:data:`MOMENT_DTYPE` for a portable state, kept in the repository so that a fresh checkout
    resumes the run) stores the moments at 16 bits: half the file, and a resume that is exact in the weights and
    rounds the moments (relative error below 0.4 %). ``None``: float32, a bit-exact resume.
    """
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    moment = st[key] if moment_dtype is None else st[key].to(moment_dtype)
                    tensors[f"adam.{names[id(p)]}.{key}"] = moment.contiguous()
            if "step" in st:
                tensors[f"adam.{names[id(p)]}.step"] = torch.as_tensor(
                    st["step"], dtype=torch.float32
                ).reshape(1)
    meta = {"step": str(step), "config": json.dumps(asdict(cfg))}
    atomic_write_bytes(path, save_bytes(tensors, metadata=meta))


def stored_config(path: Path) -> dict:
    """The TrainConfig (as a dict) saved with a run's state (header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["config"])


def stored_architecture(stored: dict, task: Task) -> ModelConfig:
    """The model architecture recorded in a run's stored TrainConfig (runs from before quantisation awareness
    are not quantisation-aware)."""
    return architecture_config(
        stored,
        task,
        bool(stored.get("quantisation_aware", False)),
        bool(stored.get("exact_final_fusion", False)),
    )


def _model_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's tensors out of a state file's tensors (``model.*``, prefix removed)."""
    return {k[6:]: v for k, v in state.items() if k.startswith("model.")}


def model_from_state(path: Path) -> FusionModel:
    """The model of a training run's ``state.safetensors`` as it stood at its last save, in eval mode (to score a
    run in progress without exporting it)."""
    stored = stored_config(path)
    model = FusionModel(stored_architecture(stored, stored["task"]))
    model.load_state_dict(_model_tensors(load_file(str(path))))
    return model.eval()


def load_state(path: Path, model: FusionModel, opt: torch.optim.Optimizer) -> int:
    """Restore model and Adam moments; returns the step."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        step = int(handle.metadata()["step"])
    tensors = load_file(str(path))
    model.load_state_dict(_model_tensors(tensors))
    for name, p in model.named_parameters():
        if f"adam.{name}.exp_avg" in tensors:
            opt.state[p] = {  # a portable state's 16-bit moments come back as the parameter's float32
                "step": tensors[f"adam.{name}.step"][0].clone(),
                "exp_avg": tensors[f"adam.{name}.exp_avg"].to(p.dtype).clone(),
                "exp_avg_sq": tensors[f"adam.{name}.exp_avg_sq"].to(p.dtype).clone(),
            }
    return step


def initialise_from(model: FusionModel, checkpoint: Path) -> tuple[int, int]:
    """Copy a trained checkpoint into ``model`` (same task, same or larger architecture), keeping its function.

    Every tensor whose name and shape match is copied. Residual blocks the checkpoint does not have (a model grown
    with more ``blocks_per_level``, ``bottom_blocks`` or ``top_blocks``) get a zero second convolution, so they
    start as the identity and the grown model computes exactly what the checkpoint computes; training then gives them something to do. A checkpoint
    that is not quantisation-aware can start one that is: the new conditioning inputs get zero weights and the
    new damping terms start at zero, so again nothing changes until training.

    Returns:
        (tensors copied, tensors left new).

    Raises:
        ValueError: other task, or a checkpoint tensor that has no place in ``model`` (a smaller architecture).
    """
    source = load_checkpoint(checkpoint)
    if source.config.task != model.config.task:
        raise ValueError(
            f"{checkpoint}: a {source.config.task} checkpoint cannot start a {model.config.task} run"
        )
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
            assert block.conv2.bias is not None  # FiLMResBlock's convs are built with a bias
            torch.nn.init.zeros_(block.conv2.bias)
    return len(copied), len(target) - len(copied)


def _widens(old: torch.Tensor, new: torch.Tensor) -> bool:
    """``new`` is ``old`` with more input columns (a conditioning vector that gained entries at its end)."""
    return old.dim() == new.dim() == 2 and old.shape[0] == new.shape[0] and old.shape[1] < new.shape[1]

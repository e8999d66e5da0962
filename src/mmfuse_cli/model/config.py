"""The network's architecture as data: :class:`ModelConfig` (stored in every checkpoint's metadata) and the one
table of architecture defaults. No torch here, so a command can read defaults and headers without loading it."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from mmfuse_cli.tasks import DEFAULT_TASK, Task

COND_DIM = 8  # 6 degradation descriptors + noise level + k/T (+ 2 quantisation levels if quantisation-aware)

ARCHITECTURE_DEFAULTS: dict[str, int | bool] = {
    "base_channels": 16,
    "levels": 4,
    "blocks_per_level": 1,
    "bottom_blocks": 0,
    "top_blocks": 0,
    "unshuffle": 1,
    "max_channels": 0,
    "steps": 3,
    "quantisation_aware": True,
    "exact_final_fusion": False,
}
"""The one table of architecture defaults: :class:`ModelConfig`'s field defaults and what a new training run
builds when nothing else says (``mmfuse_cli.training.config``)."""

ABSENT_IN_OLD_CHECKPOINTS: dict[str, int | bool] = {
    "quantisation_aware": False,
    "exact_final_fusion": False,
    "bottom_blocks": 0,
    "top_blocks": 0,
    "unshuffle": 1,
    "max_channels": 0,
}
"""What a field means in a checkpoint written before the field existed (:meth:`ModelConfig.from_json`)."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`FusionUNet` and the sampler (stored in checkpoint metadata).

    Attributes:
        base_channels: channels at full resolution (doubles per level).
        levels: resolution levels (input size must be a multiple of ``2 ** (levels - 1)``).
        blocks_per_level: residual blocks per level on the way down and up.
        steps: sampler steps T the model was trained with.
        task: ``ivif`` or ``mif``.
        quantisation_aware: the network and the damping also see each observation's quantisation ``q``
            (:attr:`mmfuse_cli.degradation.spec.Degradation.quantisation`); checkpoints older than this field are not.
        exact_final_fusion: the sampler's last step applies the (noise-free) fusion constraint undamped, so the
            fused image is exactly ``m x1 + (1-m) x2`` of the restored sources (see
            :class:`mmfuse_cli.sampling.schedule.SamplerParameters`); checkpoints older than this field do not.
        bottom_blocks: extra residual blocks at the deepest (coarsest) level, after its ``blocks_per_level``;
            each costs about as much compute as a block at any other level; checkpoints older than this field
            have none.
        top_blocks: extra residual blocks at the working resolution, after the last up-sampling level's blocks
            and before the head; checkpoints older than this field have none.
        unshuffle: the working resolution is the input's divided by this factor (1 or 2): the input is
            pixel-unshuffled (``5 x unshuffle^2`` channels) before the stem and the head's output pixel-shuffled
            back, so a wide network (v2: 64 channels) costs what a 4x narrower one costs at full resolution
            (FFDNet's front end). 1 is the v1 architecture; checkpoints older than this field have 1.
        max_channels: channels stop doubling at this width (0: no cap), so the coarse levels of a wide network do
            not hold most of its parameters; checkpoints older than this field have no cap.
    """

    base_channels: int = int(ARCHITECTURE_DEFAULTS["base_channels"])
    levels: int = int(ARCHITECTURE_DEFAULTS["levels"])
    blocks_per_level: int = int(ARCHITECTURE_DEFAULTS["blocks_per_level"])
    steps: int = int(ARCHITECTURE_DEFAULTS["steps"])
    task: Task = DEFAULT_TASK
    quantisation_aware: bool = bool(ARCHITECTURE_DEFAULTS["quantisation_aware"])
    exact_final_fusion: bool = bool(ARCHITECTURE_DEFAULTS["exact_final_fusion"])
    bottom_blocks: int = int(ARCHITECTURE_DEFAULTS["bottom_blocks"])
    top_blocks: int = int(ARCHITECTURE_DEFAULTS["top_blocks"])
    unshuffle: int = int(ARCHITECTURE_DEFAULTS["unshuffle"])
    max_channels: int = int(ARCHITECTURE_DEFAULTS["max_channels"])

    @property
    def cond_dim(self) -> int:
        """Length of the network's conditioning vector."""
        return COND_DIM + (2 if self.quantisation_aware else 0)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """The config stored in a checkpoint; a field it predates takes :data:`ABSENT_IN_OLD_CHECKPOINTS`."""
        data = {**ABSENT_IN_OLD_CHECKPOINTS, **json.loads(text)}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


__all__ = ["ABSENT_IN_OLD_CHECKPOINTS", "ARCHITECTURE_DEFAULTS", "COND_DIM", "ModelConfig"]

"""The options of a training run: :class:`TrainConfig`, the default architecture and each task's data layout."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmfuse_cli.degradation.draws import kind_probabilities
from mmfuse_cli.errors import InvalidValueError
from mmfuse_cli.model.config import ABSENT_IN_OLD_CHECKPOINTS, ARCHITECTURE_DEFAULTS, ModelConfig
from mmfuse_cli.tasks import DEFAULT_TASK, TASKS, Task, check_task

SOURCE_LOSSES = ("l1", "log", "logrmse")  # TrainConfig.src_loss, see losses.fusion_loss

# Training splits under a data root laid out as docs/TRAINING.md ("Data layout") says: (a_dir, b_dir) relative paths.
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
if tuple(TASK_SPLITS) != TASKS:  # every task has a data layout, and only the tasks do
    raise RuntimeError(f"TASK_SPLITS covers {tuple(TASK_SPLITS)}, mmfuse_cli.tasks.TASKS is {TASKS}")


@dataclass
class TrainConfig:
    """Options of a training run (recorded in the exported checkpoint), validated on construction.

    Raises:
        InvalidValueError: naming the field (``task``, ``src_loss``, ``crop``, ``folders``, ``kind_weights``,
            ``single_fraction``).
    """

    task: Task = DEFAULT_TASK
    data: str = "../shared/data"
    # [[a_dir, b_dir], ...] instead of data's task splits
    folders: list[list[str]] = field(default_factory=list)
    out_dir: str = "runs/ivif"
    # a folder (inside the repository) that keeps a compact copy of the run's latest state and its log, so that a
    # fresh checkout resumes the run (see loop.train); None = out_dir only
    portable_dir: str | None = None
    steps: int = 4000
    batch: int = 8
    crop: int = 96
    # crop offsets are multiples of this (2 keeps a 2x2 pixel-replication grid, see data.random_crops)
    crop_align: int = 1
    # folders of single clean images (e.g. natural photographs) mixed in as pairs (see data.single_image_pair)
    singles: list[str] = field(default_factory=list)
    single_fraction: float = 0.0  # share of crops drawn from ``singles``
    # weight of those crops in the fused-image loss terms (1 = like fusion pairs, 0 = restoration only; see losses)
    single_fusion_weight: float = 1.0
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
    top_blocks: int | None = None  # extra residual blocks at the working resolution, before the head
    unshuffle: int | None = None  # working resolution = input / unshuffle (1: v1, 2: v2's front end)
    max_channels: int | None = None  # channels stop doubling at this width (0: no cap)
    # checkpoint NAME or PATH to start from (fine-tune / grow); ignored on resume
    init_from: str | None = None
    # set by train(): the exact file init_from named (names can be re-pointed)
    init_from_sha256: str | None = None
    val_every: int = 200
    checkpoint_every: int = 100
    val_fraction: float = 0.1
    max_minutes: float | None = None
    pause_at: int | None = None  # stop after this step (state saved), as an interruption would; resume later
    threads: int | None = None
    max_noise: float = 0.10
    max_blur: float = 2.5
    # {kind: weight} over mmfuse_cli.degradation.draws.DEGRADATION_KINDS, missing = 1; {} = uniform
    kind_weights: dict = field(default_factory=dict)
    w_src: float = 5.0
    # "l1": w_src * L1; "log": w_log * mean_i log(L1_i + 1e-3); "logrmse": the same with RMSE_i (see losses)
    src_loss: str = "l1"
    w_log: float = 0.25
    # round synthetic observations to N-bit samples, like the files they stand for (0 = off)
    observation_bits: int = 8
    # share of observations left unrounded (they stand for 16-bit or float inputs)
    exact_fraction: float = 0.25
    # model sees each input's bit depth; None = as the resumed run, else on
    quantisation_aware: bool | None = None
    # last step enforces f = m x1 + (1-m) x2; None = as resumed/init-from, else off
    exact_final_fusion: bool | None = None
    w_int: float = 5.0
    w_grad: float = 1.0
    w_ssim: float = 1.0  # MIF: weight of the fused image's structure term (1 - SSIM(f, a)) + (1 - SSIM(f, b))
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.task = check_task(self.task)
        if self.src_loss not in SOURCE_LOSSES:
            raise InvalidValueError(
                "src_loss", f"must be one of {', '.join(SOURCE_LOSSES)}, got {self.src_loss!r}"
            )
        if self.crop % 8 or self.crop < 32:
            raise InvalidValueError("crop", f"must be a multiple of 8 and >= 32, got {self.crop}")
        if any(len(pair) != 2 for pair in self.folders):
            raise InvalidValueError("folders", "give one b folder per a folder")
        if not 0.0 <= self.single_fraction <= 1.0:
            raise InvalidValueError("single_fraction", f"must be in [0, 1], got {self.single_fraction}")
        if not 0.0 <= self.single_fusion_weight <= 1.0:
            raise InvalidValueError(
                "single_fusion_weight", f"must be in [0, 1], got {self.single_fusion_weight}"
            )
        if self.single_fraction > 0 and not self.singles:
            raise InvalidValueError("single_fraction", "needs at least one folder of single images")
        if self.kind_weights:
            try:
                kind_probabilities(self.kind_weights)
            except ValueError as exc:
                raise InvalidValueError("kind_weights", str(exc)) from None


ARCHITECTURE_FIELDS: dict[str, str] = {
    "base_channels": "base_channels",
    "levels": "levels",
    "blocks_per_level": "blocks_per_level",
    "bottom_blocks": "bottom_blocks",
    "top_blocks": "top_blocks",
    "unshuffle": "unshuffle",
    "max_channels": "max_channels",
    "sampler_steps": "steps",
}
"""TrainConfig's architecture fields -> the :class:`ModelConfig` field each sets (defaults:
:data:`mmfuse_cli.model.network.ARCHITECTURE_DEFAULTS`)."""


def fill_architecture(cfg: TrainConfig, known: ModelConfig | None) -> ModelConfig:
    """Complete ``cfg``'s unset architecture fields (in place) from ``known`` or the defaults; the model's config.

    ``known`` is the architecture of the run being resumed or of the ``init_from`` checkpoint, so that fine-tuning
    or resuming needs no architecture flags, while an explicit value (e.g. more ``blocks_per_level``) wins.
    """
    for name, model_field in ARCHITECTURE_FIELDS.items():
        if getattr(cfg, name) is None:
            from_known = getattr(known, model_field) if known else None
            setattr(cfg, name, from_known if from_known is not None else ARCHITECTURE_DEFAULTS[model_field])
    if cfg.quantisation_aware is None:
        cfg.quantisation_aware = bool(ARCHITECTURE_DEFAULTS["quantisation_aware"])
    if cfg.exact_final_fusion is None:
        cfg.exact_final_fusion = (
            known.exact_final_fusion if known else bool(ARCHITECTURE_DEFAULTS["exact_final_fusion"])
        )
    return architecture_config(
        {name: getattr(cfg, name) for name in ARCHITECTURE_FIELDS},
        cfg.task,
        cfg.quantisation_aware,
        cfg.exact_final_fusion,
    )


def architecture_config(
    values: dict, task: Task, quantisation_aware: bool, exact_final_fusion: bool
) -> ModelConfig:
    """The :class:`ModelConfig` of architecture ``values`` named as TrainConfig's fields
    (:data:`ARCHITECTURE_FIELDS`); a name missing or ``None`` takes what it means in a run from before the field
    existed (:data:`~mmfuse_cli.model.network.ABSENT_IN_OLD_CHECKPOINTS`, else the default)."""
    arch = {}
    for name, model_field in ARCHITECTURE_FIELDS.items():
        value = values.get(name)
        if value is None:
            value = ABSENT_IN_OLD_CHECKPOINTS.get(model_field, ARCHITECTURE_DEFAULTS[model_field])
        arch[model_field] = int(value)
    return ModelConfig(
        **arch, task=task, quantisation_aware=quantisation_aware, exact_final_fusion=exact_final_fusion
    )

"""What the benchmarks share: the test splits, the degradation scenarios, loading clean pairs, and observing
them exactly as ``mmfuse degrade`` writes files (imported by the scripts beside it; Python puts a script's own
folder first on ``sys.path``, so ``import _common`` needs no path tricks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mmfuse_cli.degradation.operators import build_operator
from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.degradation.synth import degrade_array, file_seed
from mmfuse_cli.io import quantize, read_image, to_gray
from mmfuse_cli.pairing import pair_folders

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
"""The data root beside the project (``../shared/data``), the default of every benchmark's ``--data``; laid out
as described in docs/TRAINING.md, "Data layout"."""

SPLITS: dict[str, tuple[str, str, str]] = {
    # name: (task, a folder, b folder) relative to the data root
    "tno": ("ivif", "tno/test/ir", "tno/test/vi"),
    "msrs": ("ivif", "msrs/test/ir", "msrs/test/vi"),
    "llvip": ("ivif", "llvip/test/ir", "llvip/test/vi"),
    "mri_ct": ("mif", "harvard/mri_ct/test/ct", "harvard/mri_ct/test/mri"),
    "mri_pet": ("mif", "harvard/mri_pet/test/pet", "harvard/mri_pet/test/mri"),
    "mri_spect": ("mif", "harvard/mri_spect/test/spect", "harvard/mri_spect/test/mri"),
    # scans of the CDDFuse test set that are not in the Harvard atlas: no model trained
    # on them, the held-out medical splits of issue 26
    "cddfuse_pet": ("mif", "cddfuse_med/mri_pet/test/pet", "cddfuse_med/mri_pet/test/mri"),
    "cddfuse_spect": ("mif", "cddfuse_med/mri_spect/test/spect", "cddfuse_med/mri_spect/test/mri"),
}

SCENARIOS: dict[str, tuple[Degradation, Degradation]] = {
    "clean": (Degradation(), Degradation()),
    "noise": (Degradation(noise=0.05), Degradation(noise=0.05)),
    "blur": (Degradation(blur=1.5), Degradation(blur=1.5)),
    "composite": (Degradation(blur=1.5, scale=2, noise=0.05), Degradation(blur=1.5, noise=0.05)),
}

HELD_OUT_SPLITS = ("cddfuse_pet", "cddfuse_spect")
"""Splits added for issue 26; benchmarks that predate them (estimation) keep to the others."""

# Sources stored enlarged by pixel replication (the Harvard atlas's PET and SPECT: 128 x 128 scans at 256 x 256;
# docs/BENCHMARKS.md, "Pixel-replicated sources"): (grid of a, grid of b). With --declared-grid mmfuse is told
# them.
KNOWN_GRIDS: dict[str, tuple[int, int]] = {"mri_pet": (2, 1), "mri_spect": (2, 1)}


def write_result(out_dir: Path, name: str, result: dict, tag: str = "") -> Path:
    """Write a benchmark's result as ``out_dir/NAME-DATE[-TAG].json`` (``result["date"]``) and say so."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{result['date']}{'-' + tag if tag else ''}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    return path


def load_clean_pairs(data: Path, split: str, limit: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Clean luminance pairs, cropped to a multiple of 8 (scale 2 and the network's grid)."""
    _, a_rel, b_rel = SPLITS[split]
    pairs = pair_folders(data / a_rel, data / b_rel).pairs
    step = max(1, len(pairs) // limit) if limit else 1
    chosen = pairs[::step][:limit] if limit else pairs
    out = []
    for pair in chosen:
        a = to_gray(read_image(pair.a).pixels)
        b = to_gray(read_image(pair.b).pixels)
        h, w = (min(a.shape[0], b.shape[0]) // 8) * 8, (min(a.shape[1], b.shape[1]) // 8) * 8
        out.append((pair.key, a[:h, :w], b[:h, :w]))
    return out


def observe(clean: np.ndarray, degradation: Degradation, key: str, side: str, seed: int) -> np.ndarray:
    """The degraded 8-bit observation `mmfuse degrade` would write for this file."""
    y = degrade_array(clean, degradation, file_seed(seed, f"{side}/{key}"))
    return quantize(y, 8).astype(np.float32) / 255.0


def pseudo_inverse(y: np.ndarray, degradation: Degradation) -> np.ndarray:
    with torch.inference_mode():
        t = torch.from_numpy(y)[None, None]
        return build_operator(degradation).pinv(t)[0, 0].clamp(0, 1).numpy()


def load_model(spec: str, task: str | None = None):
    """A checkpoint NAME/PATH, or a training run's ``state.safetensors`` (its config and ``model.*`` tensors)."""
    from mmfuse_cli.model.checkpoint import load_checkpoint
    from mmfuse_cli.training.state import model_from_state
    from mmfuse_cli.weights.resolve import resolve_checkpoint

    if Path(spec).name == "state.safetensors":
        return model_from_state(Path(spec))
    return load_checkpoint(resolve_checkpoint(spec, task=task, progress=False))

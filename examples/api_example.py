"""Using mmfuse as a library: load the shipped model, fuse one degraded pair, score it.

Run: python examples/api_example.py demo      (after examples/quickstart.sh has made demo/)
"""

from __future__ import annotations

import sys
from pathlib import Path

from mmfuse_cli.degradation.spec import Degradation
from mmfuse_cli.engine.config import FuseConfig
from mmfuse_cli.engine.fuser import Fuser
from mmfuse_cli.io import read_image, to_gray, write_image
from mmfuse_cli.metrics import compute_metrics
from mmfuse_cli.model.checkpoint import load_checkpoint
from mmfuse_cli.weights.resolve import resolve_checkpoint

work = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")

# The default IVIF checkpoint ships inside the package (verified by sha256 before loading).
model = load_checkpoint(resolve_checkpoint(None, task="ivif"))
# steps=3, fp32 on CPU; FuseConfig(tile=512) for very large images, FuseConfig(flip_ensemble=True) for a little
# more quality at about 4x the time (docs/BENCHMARKS.md, "Flip self-ensemble")
fuser = Fuser(model, FuseConfig(device="cpu"))

ir = read_image(work / "degraded/ir/astronaut.png").pixels  # float32 [0, 1], 128x160 (x2 low-res)
vi = read_image(work / "degraded/vi/astronaut.png").pixels  # float32 [0, 1], 256x320x3
result = fuser.fuse(
    ir,
    vi,
    Degradation(blur=1.5, scale=2, noise=0.05, bits=8),  # what degraded the IR image; an 8-bit file
    Degradation(blur=1.5, noise=0.05, bits=8),  # what degraded the visible image
)
write_image(work / "astronaut_fused.png", result.fused, 8)  # RGB: fused luminance + visible chroma

clean_ir = read_image(work / "clean/ir/astronaut.png").pixels
clean_vi = to_gray(read_image(work / "clean/vi/astronaut.png").pixels)
scores = compute_metrics(to_gray(result.fused), clean_ir, clean_vi, ["Qabf", "VIF", "SSIM", "EN"])
print({k: round(v, 4) for k, v in scores.items()})
